/*
 * What a native DTLS binding provides (hardware/dtls/): the N-API class `DtlsEndpoint` on Node and the
 * xsmc class from `dtls/native` on XS both satisfy DtlsEngine. The engine has no socket and no clock:
 * records come in through feed() and leave through onSend; the retransmission timer is reported by
 * timerMs()/timerGeneration and driven by the caller (DtlsDatagram, on the platform Clock).
 */

/** Return values of step(), feed() and timerExpired(). */
export const DTLS_WANT = 0;
/** The handshake completed during this call (reported once). */
export const DTLS_CONNECTED = 1;
/** Connected: plaintext may be waiting in read(). */
export const DTLS_DATA = 2;

export type DtlsState = 'handshaking' | 'connected' | 'closed' | 'failed';
export type DtlsAuthMode = 'none' | 'optional' | 'required';

/** Stable error codes (Error.code) thrown by engines and reported by DtlsDatagram.onError. */
export type DtlsErrorCode =
  | 'DTLS_CONFIG'
  | 'DTLS_BAD_CA_FILE'
  | 'DTLS_BAD_CERT_FILE'
  | 'DTLS_BAD_KEY_FILE'
  | 'DTLS_UNKNOWN_CA'
  | 'DTLS_HOSTNAME_MISMATCH'
  | 'DTLS_CERT_EXPIRED'
  | 'DTLS_CERT_NOT_YET_VALID'
  | 'DTLS_CERT_INVALID'
  | 'DTLS_HANDSHAKE_TIMEOUT'
  | 'DTLS_FATAL_ALERT'
  | 'DTLS_CLOSE_NOTIFY'
  | 'DTLS_NO_CLIENT_CERT'
  | 'DTLS_HANDSHAKE_FAILED'
  | 'DTLS_BAD_SESSION'
  | 'DTLS_STATE'
  | 'DTLS_TOO_LONG'
  | 'DTLS_NO_MEMORY'
  | 'DTLS_INTERNAL';

/**
 * Failures that mean "this server, or our own credentials, cannot be trusted": a reconnect cannot
 * fix them, so DTLS (coaps://) and TLS (mqtts://) clients fail closed on them.
 */
export const AUTH_FAILURES: readonly string[] = Object.freeze<DtlsErrorCode[]>([
  'DTLS_UNKNOWN_CA',
  'DTLS_HOSTNAME_MISMATCH',
  'DTLS_CERT_EXPIRED',
  'DTLS_CERT_NOT_YET_VALID',
  'DTLS_CERT_INVALID',
  'DTLS_NO_CLIENT_CERT',
  'DTLS_CONFIG',
  'DTLS_BAD_CA_FILE',
  'DTLS_BAD_CERT_FILE',
  'DTLS_BAD_KEY_FILE',
]);

/** An Error thrown by an engine. `alert` is the TLS alert number received (DTLS_FATAL_ALERT). */
export interface DtlsError extends Error {
  code: DtlsErrorCode | string;
  alert?: number;
  mbedtlsError?: number;
}

export interface DtlsEngineOptions {
  role: 'client' | 'server';
  /** Trusted root(s), PEM or DER. Required for a client using certificates. */
  ca?: Uint8Array | string;
  /** Own certificate (chain) and private key, PEM or DER, EC P-256 or RSA. */
  cert?: Uint8Array | string;
  key?: Uint8Array | string;
  psk?: Uint8Array | string;
  pskIdentity?: Uint8Array | string;
  /** Client: the server name checked against its certificate. Always required when verifying. */
  hostname?: string;
  /** Server: client certificates none/optional/required (default none). */
  authMode?: DtlsAuthMode;
  /** Path MTU for handshake fragmentation (default 1024). */
  mtu?: number;
  /** Client: a saved session (saveSession()) to resume. */
  session?: Uint8Array;
  /**
   * Client: a saved connection (saveContext()) to load instead of handshaking: the engine is
   * 'connected' at once (`restored`), and its records continue the saved connection's. Throws
   * DTLS_BAD_SESSION when the bytes come from another mbedTLS version or build, or are damaged.
   * The same bytes must never be loaded twice (record sequence numbers, the AEAD nonces, would repeat).
   */
  restore?: Uint8Array;
  /** Initial handshake retransmission timeout, ms (engine default 2000); doubles on each retry. */
  retransmitMs?: number;
  /** Timeouts double up to this; after one wait at this value the handshake fails, ms (default 32000). */
  retransmitMaxMs?: number;
  cookieSecret?: Uint8Array | string;
  /**
   * Session tickets (RFC 5077). Client (default false): offer the session_ticket extension and resume
   * with a ticket when the server issued one; when false the client resumes by session ID, which is what
   * ThingsBoard (Scandium: no tickets) supports. Server (default true): issue tickets to clients that ask.
   */
  tickets?: boolean;
  /** Server: session-ID cache entries shared by all peers (default 256; 0 = no cache). */
  sessionCacheSize?: number;
  /** Server: lifetime of cached sessions and tickets, seconds (default 86400 = 24 h). */
  sessionTimeout?: number;
  /** Server: HelloVerifyRequest cookies (default true, as ThingsBoard). false saves a round trip but allows amplification. */
  cookies?: boolean;
}

export interface DtlsEngine {
  /** Set by the owner: called synchronously with each outgoing datagram. */
  onSend?: ((record: Uint8Array) => void) | null;
  /** Starts or continues the handshake (the client sends its ClientHello on the first call). */
  step(): number;
  /** Hands in one received datagram. Throws a DtlsError on a fatal failure. */
  feed(datagram: Uint8Array): number;
  /** Next decrypted datagram, or null. */
  read(): Uint8Array | null;
  /** Encrypts and sends one datagram (at most maxPayload bytes). */
  write(plaintext: Uint8Array): number;
  /** Milliseconds until the retransmission timer is due (from when timerGeneration last changed); -1 = none. */
  timerMs(): number;
  /** Changes each time the engine sets or cancels its timer. */
  readonly timerGeneration: number;
  /** The timer is due: retransmits, or throws DTLS_HANDSHAKE_TIMEOUT. */
  timerExpired(): number;
  /** Serialized session for resumption after sleep (client), or null before the handshake completes. */
  saveSession(): Uint8Array | null;
  /**
   * The whole connection (client, connected, nothing pending), to keep across deep sleep and load
   * with `restore`; null when it cannot be saved now (handshaking; after a resumption until the
   * server's first record; engine without MBEDTLS_SSL_CONTEXT_SERIALIZATION). After a save the
   * engine no longer holds the connection (state 'closed', no close_notify sent). Optional: engines
   * without it are always handshaken.
   */
  saveContext?(): Uint8Array | null;
  /** True when this engine was loaded from a saved connection (restore) instead of handshaking. */
  readonly restored?: boolean;
  /** DER of the peer's leaf certificate, or null. */
  peerCertificate(): Uint8Array | null;
  /** Sends close_notify. */
  close(): void;
  /** Frees native memory now. */
  destroy(): void;
  readonly state: DtlsState;
  /** True when the completed handshake was abbreviated (session resumed). */
  readonly resumed: boolean;
  /** False with mbedTLS 2.28 (Debian): Connection ID not compiled in. */
  readonly cidAvailable: boolean;
  readonly cidInUse?: boolean;
  /** Largest datagram write() accepts once connected. */
  readonly maxPayload: number;
  readonly ciphersuite?: string;
}

export type DtlsEngineFactory = (options: DtlsEngineOptions) => DtlsEngine;

/** Wraps anything thrown by an engine into a DtlsError. */
export function toDtlsError(e: unknown): DtlsError {
  if (e instanceof Error) {
    const err = e as DtlsError;
    if (typeof err.code !== 'string') err.code = 'DTLS_INTERNAL';
    return err;
  }
  const err = new Error(String(e)) as DtlsError;
  err.code = 'DTLS_INTERNAL';
  return err;
}

export function dtlsError(code: DtlsErrorCode, message: string): DtlsError {
  const err = new Error(message) as DtlsError;
  err.code = code;
  return err;
}
