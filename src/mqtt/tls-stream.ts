/*
 * TlsStream: a Stream (src/platform/types.ts) that runs TLS 1.2 over a plain Stream (TCP), on the
 * same mbedTLS core as DTLS (hardware/dtls, `transport: 'stream'`), the way DtlsDatagram is a
 * secure Datagram. For MQTTS (8883).
 *
 * - The server certificate is always verified against `ca` and the host name (the engine refuses a
 *   configuration without them: DTLS_CONFIG); mutual X.509 with `cert`/`key` (EC or RSA).
 * - onConnect is reported only after the handshake verified the server: nothing of the layer
 *   above (the MQTT CONNECT with the access token) is sent to an unauthenticated server. Bytes
 *   written earlier are held (bounded) and dropped if the handshake fails.
 * - Failures come through onError with the engine's stable codes (DTLS_UNKNOWN_CA,
 *   DTLS_HOSTNAME_MISMATCH, DTLS_CERT_EXPIRED, ... the names are shared with DTLS), then onClose.
 *   Nothing here retries: the MQTT client reconnects, and treats certificate errors as fatal.
 * - Session resumption: TlsStreamFactory keeps the last session and offers it on the next
 *   connection (abbreviated handshake by session ID); session() exposes it for flash.
 *
 * Device code: no Node APIs here.
 */
import type { Clock, Stream, StreamFactory, TimerHandle } from '../platform/types';
import { DTLS_CONNECTED, dtlsError, toDtlsError } from '../dtls/engine';
import type { DtlsEngine, DtlsEngineFactory, DtlsEngineOptions, DtlsError } from '../dtls/engine';

/** Engine options for TLS: those of DTLS without the datagram-only ones, plus the stream transport. */
export type TlsEngineOptions = Omit<DtlsEngineOptions, 'role' | 'session' | 'mtu' | 'retransmitMs' | 'retransmitMaxMs' | 'cookies' | 'cookieSecret' | 'sessionCacheSize' | 'sessionTimeout'>;

export interface TlsStreamOptions {
  /** The plain connection (owned: closed by close()). */
  transport: Stream;
  clock: Clock;
  /** 'dtls/native' create on XS (with TLS support), loadDtlsEngine().create on Node. */
  createEngine: DtlsEngineFactory;
  engine: TlsEngineOptions;
  /** A saved session to resume. */
  session?: Uint8Array;
  /** TCP connect + handshake must finish within this, ms (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Plaintext held until the handshake completes, bytes (default 4096). */
  maxPending?: number;
  onHandshake?: (info: { resumed: boolean; ciphersuite?: string }) => void;
}

export class TlsStream implements Stream {
  onConnect?: () => void;
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  onClose?: () => void;
  #o: TlsStreamOptions;
  #transport: Stream;
  #engine: DtlsEngine | null = null;
  #state: 'connecting' | 'handshaking' | 'connected' | 'closed' = 'connecting';
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #timer: TimerHandle | undefined;
  #resumed = false;
  #peerCert: Uint8Array | null = null;
  #session: Uint8Array | null = null;
  /** Bytes on the wire, both ways (TLS records), for the bench and the live view. */
  readonly stats = { bytesOut: 0, bytesIn: 0 };

  constructor(options: TlsStreamOptions) {
    this.#o = options;
    this.#transport = options.transport;
    const t = this.#transport;
    this.#timer = options.clock.setTimer(() => {
      this.#timer = undefined;
      this.#fail(dtlsError('DTLS_HANDSHAKE_TIMEOUT', `TLS: no connection or handshake within ${options.handshakeTimeoutMs ?? 30000} ms`));
    }, options.handshakeTimeoutMs ?? 30000);
    try {
      const engine = options.createEngine({
        ...options.engine,
        role: 'client',
        transport: 'stream',
        ...(options.session ? { session: options.session } : {}),
      } as DtlsEngineOptions);
      engine.onSend = (record) => {
        this.stats.bytesOut += record.length;
        this.#transport.send(record);
      };
      this.#engine = engine;
    } catch (e) {
      // Configuration errors (no CA, no host name, bad files): reported once the owner listens.
      const err = toDtlsError(e);
      options.clock.setTimer(() => this.#fail(err), 0);
      return;
    }
    t.onConnect = () => {
      if (this.#state !== 'connecting') return;
      this.#state = 'handshaking';
      this.#run(() => this.#engine!.step());
    };
    t.onReceive = (data) => {
      if (this.#state === 'closed' || !this.#engine) return;
      this.stats.bytesIn += data.length;
      this.#run(() => this.#engine!.feed(data));
    };
    t.onError = (e) => this.#fail(e);
    t.onClose = () => {
      if (this.#state === 'closed') return;
      if (this.#state !== 'connected') this.#fail(dtlsError('DTLS_HANDSHAKE_FAILED', 'TLS: the server closed the connection during the handshake'));
      else this.#end();
    };
  }

  /** True when the completed handshake resumed a session. */
  get resumed(): boolean {
    return this.#resumed;
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The server's leaf certificate (DER), once connected. */
  peerCertificate(): Uint8Array | null {
    return this.#peerCert;
  }

  /** The session to resume with (keep it across sleep), once connected. */
  session(): Uint8Array | null {
    return this.#session;
  }

  send(data: Uint8Array): void {
    if (this.#state === 'closed') return;
    if (this.#state !== 'connected') {
      const limit = this.#o.maxPending ?? 4096;
      if (this.#pendingBytes + data.length > limit) {
        this.#fail(dtlsError('DTLS_TOO_LONG', `TLS: more than ${limit} bytes written before the handshake completed`));
        return;
      }
      this.#pending.push(data.slice());
      this.#pendingBytes += data.length;
      return;
    }
    this.#write(data);
  }

  close(): void {
    if (this.#state === 'closed') return;
    const wasConnected = this.#state === 'connected';
    this.#state = 'closed';
    this.#clearTimer();
    try {
      if (wasConnected) this.#engine?.close(); // close_notify
    } catch {
      /* already failed */
    }
    this.#release();
  }

  #write(data: Uint8Array): void {
    const engine = this.#engine!;
    const max = engine.maxPayload > 0 ? engine.maxPayload : 1024;
    try {
      for (let off = 0; off < data.length; off += max) engine.write(data.subarray(off, Math.min(data.length, off + max)));
    } catch (e) {
      this.#fail(toDtlsError(e));
    }
  }

  #run(fn: () => number): void {
    let r: number;
    try {
      r = fn();
    } catch (e) {
      this.#fail(toDtlsError(e));
      return;
    }
    const engine = this.#engine;
    if (!engine || this.#state === 'closed') return;
    if (r === DTLS_CONNECTED && this.#state === 'handshaking') {
      this.#state = 'connected';
      this.#clearTimer();
      this.#resumed = engine.resumed;
      this.#peerCert = engine.peerCertificate();
      this.#session = engine.saveSession();
      this.#o.onHandshake?.({ resumed: this.#resumed, ...(engine.ciphersuite ? { ciphersuite: engine.ciphersuite } : {}) });
      this.onConnect?.();
      const pending = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      for (const p of pending) if (this.#state === 'connected') this.#write(p);
    }
    for (let i = 0; i < 1024 && this.#state === 'connected'; i++) {
      const plain = engine.read();
      if (!plain) break;
      this.onReceive?.(plain instanceof Uint8Array ? new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength) : plain);
    }
  }

  #fail(error: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimer();
    this.#pending = [];
    this.#release();
    const err = error as DtlsError;
    this.onError?.(err);
    this.onClose?.();
  }

  #end(): void {
    this.#state = 'closed';
    this.#clearTimer();
    this.#release();
    this.onClose?.();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #release(): void {
    const t = this.#transport;
    t.onConnect = t.onReceive = t.onClose = undefined;
    t.onError = undefined;
    try {
      t.close();
    } catch {
      /* closed */
    }
    const engine = this.#engine;
    this.#engine = null;
    if (engine) {
      engine.onSend = null;
      try {
        engine.destroy();
      } catch {
        /* destroyed */
      }
    }
  }
}

export interface TlsStreamFactoryOptions extends Omit<TlsStreamOptions, 'transport' | 'engine'> {
  engine: Omit<TlsEngineOptions, 'hostname'> & { hostname?: string };
  /** Offer the previous connection's session on the next one (default true). */
  resume?: boolean;
}

/**
 * Opens TLS over the plain factory's connections: what the MQTT client takes as `socket` for
 * mqtts://. The host name checked is `engine.hostname`, else the host connected to.
 */
export class TlsStreamFactory implements StreamFactory {
  #tcp: StreamFactory;
  #o: TlsStreamFactoryOptions;
  #session: Uint8Array | undefined;
  last: TlsStream | undefined;

  constructor(tcp: StreamFactory, options: TlsStreamFactoryOptions) {
    this.#tcp = tcp;
    this.#o = options;
    this.#session = options.session;
  }

  /** The latest session (to keep in flash across sleep). */
  get session(): Uint8Array | undefined {
    return this.#session;
  }

  connect(host: string, port: number): TlsStream {
    const o = this.#o;
    const stream = new TlsStream({
      ...o,
      transport: this.#tcp.connect(host, port),
      engine: { ...o.engine, hostname: o.engine.hostname ?? host },
      ...(o.resume !== false && this.#session ? { session: this.#session } : {}),
      onHandshake: (info) => {
        const s = stream.session();
        if (s) this.#session = s;
        o.onHandshake?.(info);
      },
    });
    this.last = stream;
    return stream;
  }
}
