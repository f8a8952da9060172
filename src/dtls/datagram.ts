/*
 * DtlsDatagram: a Datagram (src/platform/types.ts) that encrypts with DTLS 1.2 over a plain Datagram.
 *
 * - starts the handshake at once (or resumes a saved session), drives the engine's retransmission
 *   timer on the platform Clock;
 * - queues application datagrams (bounded) until the handshake completes;
 * - reports failures through onError with the engine's stable code (DTLS_UNKNOWN_CA, ...);
 * - on a fatal alert, close_notify or handshake timeout, starts a new handshake when there is
 *   something to send (configurable); never retries authentication failures on its own;
 * - session() returns the serialized session to keep across sleep; pass it back as `session`;
 * - across deep sleep, cheapest first: saveContext() keeps the whole connection; constructed with
 *   `context` (or restore()), it sends at once with no handshake ('restored'); if no authenticated
 *   record arrives within restoreTimeoutMs after the first send, or the restored connection fails,
 *   it falls back to resuming `session` (abbreviated handshake), which the server turns into a full
 *   handshake when it no longer knows the session. onConnected tells which path was taken.
 *
 * Device code: no Node APIs here.
 */
import type { Clock, Datagram, TimerHandle } from '../platform/types';
import {
  DTLS_CONNECTED,
  dtlsError,
  toDtlsError,
  type DtlsEngine,
  type DtlsEngineFactory,
  type DtlsEngineOptions,
  type DtlsError,
} from './engine';

/** Default initial retransmission timeout for the client. RFC 6347 says 1 s; cellular links need more. */
export const DEFAULT_RETRANSMIT_MS = 2000;
export const DEFAULT_RETRANSMIT_MAX_MS = 32000;
/** Record header (13) + CCM-8 explicit nonce (8) + tag (8). GCM/CCM-16 use 8 more. */
export const DTLS_OVERHEAD = 37;

/** Failures that a new handshake can fix. Certificate and configuration problems cannot. */
const RETRYABLE = new Set(['DTLS_FATAL_ALERT', 'DTLS_CLOSE_NOTIFY', 'DTLS_HANDSHAKE_TIMEOUT', 'DTLS_HANDSHAKE_FAILED']);

export interface DtlsDatagramOptions {
  /** The plain datagram to the server (owned: closed by close()). */
  transport: Datagram;
  clock: Clock;
  /** Creates a native engine (loadDtlsEngine().create on Node, the xsmc class on XS). */
  createEngine: DtlsEngineFactory;
  /** Engine options (ca, cert, key, psk, hostname ...); role is always client here. */
  engine: Omit<DtlsEngineOptions, 'role' | 'session'>;
  /** A saved session (session()) to resume. */
  session?: Uint8Array;
  /** Initial handshake retransmission timeout, ms (default 2000, doubling). ThingsBoard's server uses 9 s. */
  retransmitMs?: number;
  /** Retransmission stops once the timeout has reached this, ms (default 32000: sends at 0, 2, 6, 14, 30 s; fails at 62 s). */
  retransmitMaxMs?: number;
  /** Datagrams held while handshaking (default 16); the oldest is dropped on overflow. */
  maxQueue?: number;
  /** Start a new handshake after a fatal alert, close_notify or timeout (default true). */
  rehandshake?: boolean;
  /** Consecutive failed handshakes before giving up until the next send() (default 3). */
  maxRehandshakes?: number;
  /** Delay before a new handshake, ms (default 1000, times the attempt number). */
  rehandshakeDelayMs?: number;
  /**
   * A saved connection (saveContext()) to restore instead of handshaking. Its bytes must never be
   * loaded twice: see onRestore. Pass `session` too, for the fallback.
   */
  context?: Uint8Array;
  /**
   * A restored connection that has not yet brought one authenticated record back this long after
   * its first send is given up: resume `session` (or handshake in full). Default 2 x retransmitMs (4 s).
   */
  restoreTimeoutMs?: number;
  /**
   * Called synchronously just before a saved connection is loaded, before any record leaves:
   * invalidate every stored copy of it there (the flash record), so that a reboot never loads the
   * same bytes again (record sequence numbers, the AEAD nonces, would repeat).
   */
  onRestore?: () => void;
  /**
   * Called when a session is up: a handshake completed ('full' or 'resumed'), or a restored
   * connection brought its first authenticated record ('restored').
   */
  onConnected?: (info: DtlsConnectedInfo) => void;
}

/** How the current session came about, cheapest first. */
export type DtlsPath = 'restored' | 'resumed' | 'full';

export interface DtlsConnectedInfo {
  /** Abbreviated handshake (session resumed). */
  resumed: boolean;
  path: DtlsPath;
  ciphersuite?: string;
}

/** Counters over the life of a DtlsDatagram. */
export interface DtlsPathStats {
  /** Saved connections loaded (restore attempts). */
  restores: number;
  /** Restored connections confirmed by an authenticated record from the server. */
  restored: number;
  /** Restored connections given up (no answer in time, alert, or unloadable bytes): fell back to a handshake. */
  restoreFallbacks: number;
  /** Handshakes completed abbreviated (session resumed). */
  resumed: number;
  /** Handshakes completed in full. */
  full: number;
  /** Connections saved by saveContext(). */
  contextSaves: number;
}

/** 'suspended': saveContext() handed the connection out; restore() or send() loads it again. */
export type DtlsDatagramState = 'handshaking' | 'connected' | 'suspended' | 'failed' | 'closed';

export class DtlsDatagram implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;

  #opt: DtlsDatagramOptions;
  #transport: Datagram;
  #clock: Clock;
  #engine: DtlsEngine | null = null;
  #state: DtlsDatagramState = 'handshaking';
  #queue: Uint8Array[] = [];
  #timer: TimerHandle | null = null;
  #timerGen = -1;
  #retryTimer: TimerHandle | null = null;
  #session: Uint8Array | undefined;
  #attempts = 0;
  #handshakes = 0;
  #lastError: DtlsError | null = null;
  #peerCert: Uint8Array | null = null;
  #resumed = false;
  #lastMaxPayload = 0;
  #path: DtlsPath | null = null;
  /** The connection saveContext() handed out (kept to restore in this process after a light sleep). */
  #context: Uint8Array | undefined;
  /** A restored connection that has not yet brought an authenticated record. */
  #unconfirmed = false;
  #restoreTimer: TimerHandle | null = null;
  /** Datagrams written into the unconfirmed restored connection: sent again over the fallback session. */
  #sentUnconfirmed: Uint8Array[] = [];
  readonly #stats: DtlsPathStats = { restores: 0, restored: 0, restoreFallbacks: 0, resumed: 0, full: 0, contextSaves: 0 };

  constructor(options: DtlsDatagramOptions) {
    this.#opt = options;
    this.#transport = options.transport;
    this.#clock = options.clock;
    this.#session = options.session;
    this.#transport.onReceive = (d) => this.#onDatagram(d);
    this.#transport.onError = (e) => this.onError?.(e);
    if (options.context) this.#restore(options.context);
    else this.#startHandshake();
  }

  /** How the current (or last) session came about: 'restored', 'resumed', 'full'; null before any. */
  get path(): DtlsPath | null {
    return this.#path;
  }
  /** True while a restored connection waits for its first authenticated record. */
  get restorePending(): boolean {
    return this.#unconfirmed;
  }
  get stats(): Readonly<DtlsPathStats> {
    return this.#stats;
  }

  get state(): DtlsDatagramState {
    return this.#state;
  }
  /** True if the current session was resumed (abbreviated handshake). */
  get resumed(): boolean {
    return this.#resumed;
  }
  /** Number of handshakes started. */
  get handshakes(): number {
    return this.#handshakes;
  }
  get lastError(): DtlsError | null {
    return this.#lastError;
  }
  /** The server's certificate (DER) once connected. */
  get peerCertificate(): Uint8Array | null {
    return this.#peerCert;
  }
  get cidAvailable(): boolean {
    return this.#engine?.cidAvailable ?? false;
  }
  /**
   * The largest datagram that fits one record: once connected, the engine's limit for this session
   * (`maxPayload`: ciphersuite, negotiated max_fragment_length, MTU); before, an estimate for the
   * largest record overhead, capped by what the last session allowed.
   */
  get mtu(): number {
    if (this.#engine && this.#state === 'connected' && this.#engine.maxPayload > 0) return (this.#lastMaxPayload = this.#engine.maxPayload);
    const estimate = Math.min(this.#transport.mtu ?? 1024, this.#opt.engine.mtu ?? 1024) - DTLS_OVERHEAD;
    return this.#lastMaxPayload > 0 ? Math.min(estimate, this.#lastMaxPayload) : estimate;
  }

  /** The session to save before sleep (null before the first handshake completes). */
  session(): Uint8Array | null {
    if (this.#engine && this.#state === 'connected') {
      const s = this.#engine.saveSession();
      if (s) this.#session = new Uint8Array(s);
    }
    return this.#session ?? null;
  }

  /**
   * The whole connection, to keep across deep sleep (flash or RTC memory) and pass back as `context`
   * (or to restore()): the last act before sleeping. Null when it cannot be saved now (not
   * connected, a restored connection not yet answered, after a resumption until the server's first
   * record, an engine without context serialization): keep session() then. After a save this
   * datagram is 'suspended' and holds no connection: restore() (or the next send()) loads it again.
   * Call session() first if the session is wanted too (it is kept for the fallback either way).
   */
  saveContext(): Uint8Array | null {
    const engine = this.#engine;
    if (!engine || this.#state !== 'connected' || this.#unconfirmed || !engine.saveContext) return null;
    this.session(); // the fallback of the restored connection
    let ctx: Uint8Array | null;
    try {
      ctx = engine.saveContext();
    } catch {
      ctx = null;
    }
    if (!ctx) return null;
    this.#clearTimers();
    engine.destroy();
    this.#engine = null;
    this.#state = 'suspended';
    this.#context = new Uint8Array(ctx);
    this.#stats.contextSaves++;
    return new Uint8Array(ctx);
  }

  /**
   * Loads a saved connection (`context`, or the one saveContext() handed out here) and sends at once
   * with no handshake; the fallback chain of the `context` option applies. Without one, resumes
   * the session (reconnect(true)). Returns true when a connection was loaded.
   */
  restore(context?: Uint8Array): boolean {
    if (this.#state === 'closed') return false;
    const ctx = context ?? this.#context;
    if (!ctx) {
      this.reconnect(true);
      return false;
    }
    this.#attempts = 0;
    return this.#restore(ctx);
  }

  send(data: Uint8Array): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'suspended') this.restore();
    if (this.#state === 'connected' && this.#engine) {
      this.#write(data);
      if (this.#unconfirmed && this.#engine) this.#sentWhileUnconfirmed(data);
      return;
    }
    this.#enqueue(data);
    if (this.#state === 'failed' && this.#retryTimer === null) {
      const code = this.#lastError?.code ?? '';
      // Sending again is the caller's way of saying "try again": allowed for transient failures.
      if (this.#opt.rehandshake !== false && RETRYABLE.has(code)) {
        this.#attempts = 0;
        this.#startHandshake();
      }
    }
  }

  /** Drops the current session and handshakes again (e.g. the CoAP layer saw the peer stop answering). */
  reconnect(resume = true): void {
    if (this.#state === 'closed') return;
    if (!resume) this.#session = undefined;
    else this.session();
    this.#context = undefined;
    this.#attempts = 0;
    this.#startHandshake();
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimers();
    if (this.#engine) {
      try {
        this.#engine.close();
      } catch {
        /* already failed */
      }
      this.#engine.destroy();
      this.#engine = null;
    }
    this.#queue = [];
    this.#sentUnconfirmed = [];
    this.#context = undefined;
    this.#transport.close();
  }

  /** Loads a saved connection; on failure falls back to a handshake. True when loaded. */
  #restore(ctx: Uint8Array): boolean {
    this.#clearTimers();
    if (this.#engine) {
      this.#engine.destroy();
      this.#engine = null;
    }
    this.#context = undefined; // loaded at most once
    this.#sentUnconfirmed = [];
    this.#unconfirmed = false;
    this.#resumed = false;
    this.#stats.restores++;
    const o = this.#opt;
    let engine: DtlsEngine | null = null;
    try {
      o.onRestore?.();
      engine = o.createEngine({
        ...o.engine,
        role: 'client',
        retransmitMs: o.retransmitMs ?? o.engine.retransmitMs ?? DEFAULT_RETRANSMIT_MS,
        retransmitMaxMs: o.retransmitMaxMs ?? o.engine.retransmitMaxMs ?? DEFAULT_RETRANSMIT_MAX_MS,
        restore: ctx,
      });
    } catch {
      engine = null; // another mbedTLS version or build, or damaged bytes: handshake instead
    }
    if (!engine || engine.state !== 'connected' || engine.restored === false) {
      // An engine that cannot restore (or ignored the option) would handshake: start that properly.
      engine?.destroy();
      this.#stats.restoreFallbacks++;
      this.#startHandshake();
      return false;
    }
    this.#engine = engine;
    engine.onSend = (record) => this.#transport.send(record);
    this.#state = 'connected';
    this.#path = 'restored';
    this.#unconfirmed = true;
    if (engine.maxPayload > 0) this.#lastMaxPayload = engine.maxPayload;
    try {
      const s = engine.saveSession();
      if (s) this.#session = new Uint8Array(s);
    } catch {
      /* keep the session we had */
    }
    // Datagrams queued while suspended or handshaking go out at once in the restored connection.
    const queued = this.#queue;
    this.#queue = [];
    for (const d of queued) {
      if (this.#engine !== engine || this.#state !== 'connected') break;
      this.#write(d);
      if (this.#unconfirmed && this.#engine === engine) this.#sentWhileUnconfirmed(d);
    }
    return this.#engine === engine;
  }

  /** Keeps a copy for the fallback and starts the restore timer at the first send. */
  #sentWhileUnconfirmed(data: Uint8Array): void {
    const max = this.#opt.maxQueue ?? 16;
    if (this.#sentUnconfirmed.length >= max) this.#sentUnconfirmed.shift();
    this.#sentUnconfirmed.push(new Uint8Array(data));
    if (this.#restoreTimer !== null) return;
    const o = this.#opt;
    const ms = o.restoreTimeoutMs ?? 2 * (o.retransmitMs ?? o.engine.retransmitMs ?? DEFAULT_RETRANSMIT_MS);
    const engine = this.#engine;
    this.#restoreTimer = this.#clock.setTimer(() => {
      this.#restoreTimer = null;
      if (this.#engine === engine && this.#unconfirmed) this.#restoreFallback();
    }, ms);
  }

  /** The server answered inside the restored connection: it is the session now. */
  #confirmRestore(engine: DtlsEngine): void {
    this.#unconfirmed = false;
    this.#sentUnconfirmed = [];
    if (this.#restoreTimer !== null) this.#clock.clearTimer(this.#restoreTimer);
    this.#restoreTimer = null;
    this.#attempts = 0;
    this.#lastError = null;
    this.#stats.restored++;
    this.#opt.onConnected?.({ resumed: false, path: 'restored', ciphersuite: engine.ciphersuite });
  }

  /**
   * The restored connection is not answered (the server restarted, forgot the connection, or sees
   * us from another address) or failed: resume the session instead (the server answers with a full
   * handshake if it forgot that too). What was sent into it goes out again over the new session.
   */
  #restoreFallback(): void {
    this.#stats.restoreFallbacks++;
    this.#unconfirmed = false;
    const resend = this.#sentUnconfirmed;
    this.#sentUnconfirmed = [];
    const max = this.#opt.maxQueue ?? 16;
    this.#queue = [...resend, ...this.#queue].slice(-max);
    this.#startHandshake();
  }

  #enqueue(data: Uint8Array): void {
    const max = this.#opt.maxQueue ?? 16;
    if (this.#queue.length >= max) this.#queue.shift();
    this.#queue.push(new Uint8Array(data));
  }

  #write(data: Uint8Array): void {
    try {
      this.#engine!.write(data);
    } catch (e) {
      const err = toDtlsError(e);
      if (err.code === 'DTLS_TOO_LONG') {
        // Larger than one record of this session: say which datagram, so the sender fails it at
        // once instead of retransmitting it (a DatagramTooLargeError, Datagram.onError).
        const mtu = this.mtu;
        const tooLarge = dtlsError('DTLS_TOO_LONG', `datagram of ${data.length} bytes larger than one DTLS record (${mtu} bytes)`) as DtlsError & { datagram: Uint8Array; mtu: number };
        tooLarge.datagram = data;
        tooLarge.mtu = mtu;
        this.onError?.(tooLarge);
      } else if (err.code === 'DTLS_STATE') this.onError?.(err);
      else this.#fail(err);
    }
  }

  #startHandshake(): void {
    this.#clearTimers();
    if (this.#engine) {
      this.#engine.destroy();
      this.#engine = null;
    }
    this.#state = 'handshaking';
    this.#resumed = false;
    this.#unconfirmed = false;
    this.#handshakes++;
    const o = this.#opt;
    let engine: DtlsEngine;
    try {
      engine = o.createEngine({
        ...o.engine,
        role: 'client',
        retransmitMs: o.retransmitMs ?? o.engine.retransmitMs ?? DEFAULT_RETRANSMIT_MS,
        retransmitMaxMs: o.retransmitMaxMs ?? o.engine.retransmitMaxMs ?? DEFAULT_RETRANSMIT_MAX_MS,
        ...(this.#session ? { session: this.#session } : {}),
      });
    } catch (e) {
      const err = toDtlsError(e);
      if (err.code === 'DTLS_BAD_SESSION' && this.#session) {
        // A session from another firmware/mbedTLS version: fall back to a full handshake.
        this.#session = undefined;
        this.#startHandshake();
        return;
      }
      this.#fail(err, false);
      return;
    }
    this.#engine = engine;
    engine.onSend = (record) => this.#transport.send(record);
    this.#call(() => engine.step());
  }

  #onDatagram(data: Uint8Array): void {
    const engine = this.#engine;
    if (!engine || this.#state === 'closed' || this.#state === 'failed') return;
    this.#call(() => engine.feed(data));
    if (this.#engine !== engine) return;
    for (;;) {
      const m = engine.read();
      if (!m) break;
      if (this.#unconfirmed) this.#confirmRestore(engine);
      if (this.#engine !== engine) break;
      this.onReceive?.(m);
      if (this.#engine !== engine || this.#state !== 'connected') break;
    }
  }

  /** Runs one engine call, then handles completion, failure and the timer. */
  #call(fn: () => number): void {
    const engine = this.#engine;
    if (!engine) return;
    let r: number;
    try {
      r = fn();
    } catch (e) {
      this.#fail(toDtlsError(e));
      return;
    }
    if (this.#engine !== engine) return;
    if (r === DTLS_CONNECTED) this.#connected(engine);
    if (this.#engine !== engine) return; // failed or closed while flushing the queue
    this.#syncTimer(engine);
  }

  #connected(engine: DtlsEngine): void {
    this.#state = 'connected';
    this.#attempts = 0;
    this.#lastError = null;
    this.#resumed = engine.resumed;
    this.#path = engine.resumed ? 'resumed' : 'full';
    if (engine.resumed) this.#stats.resumed++;
    else this.#stats.full++;
    if (engine.maxPayload > 0) this.#lastMaxPayload = engine.maxPayload;
    this.#peerCert = engine.peerCertificate();
    const s = engine.saveSession();
    if (s) this.#session = new Uint8Array(s);
    this.#opt.onConnected?.({ resumed: engine.resumed, path: this.#path, ciphersuite: engine.ciphersuite });
    const queued = this.#queue;
    this.#queue = [];
    for (const d of queued) {
      if (this.#engine !== engine || this.#state !== 'connected') break;
      this.#write(d);
    }
  }

  #syncTimer(engine: DtlsEngine): void {
    const gen = engine.timerGeneration;
    if (gen === this.#timerGen) return;
    this.#timerGen = gen;
    if (this.#timer !== null) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = null;
    }
    const ms = engine.timerMs();
    if (ms < 0) return;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = null;
      if (this.#engine !== engine) return;
      this.#timerGen = -1; // re-read whatever the engine sets next
      this.#call(() => engine.timerExpired());
    }, ms);
  }

  #clearTimers(): void {
    if (this.#timer !== null) this.#clock.clearTimer(this.#timer);
    if (this.#retryTimer !== null) this.#clock.clearTimer(this.#retryTimer);
    if (this.#restoreTimer !== null) this.#clock.clearTimer(this.#restoreTimer);
    this.#timer = null;
    this.#retryTimer = null;
    this.#restoreTimer = null;
    this.#timerGen = -1;
  }

  #fail(err: DtlsError, retry = true): void {
    if (this.#unconfirmed && this.#state === 'connected') {
      // The restored connection ended before the server ever answered in it (an alert: it knows
      // the connection no more). Not an error of the session: fall back to a handshake at once.
      if (err.code === 'DTLS_FATAL_ALERT') this.#session = undefined;
      this.#lastError = err;
      this.#restoreFallback();
      return;
    }
    this.#clearTimers();
    this.#state = 'failed';
    this.#lastError = err;
    // A session ended by a fatal alert must not be resumed (RFC 5246 7.2.2).
    if (err.code === 'DTLS_FATAL_ALERT') this.#session = undefined;
    if (this.#engine) {
      this.#engine.destroy();
      this.#engine = null;
    }
    if (err.code === 'DTLS_UNKNOWN_CA' || err.code === 'DTLS_HOSTNAME_MISMATCH' || err.code.startsWith('DTLS_CERT')) {
      this.#queue = []; // nothing queued may go to an unauthenticated server
    }
    this.onError?.(err);
    if (this.#state !== 'failed') return; // onError closed or reconnected us
    const o = this.#opt;
    if (!retry || o.rehandshake === false || !RETRYABLE.has(err.code)) return;
    if (this.#attempts >= (o.maxRehandshakes ?? 3)) return;
    this.#attempts++;
    const delay = (o.rehandshakeDelayMs ?? 1000) * this.#attempts;
    this.#retryTimer = this.#clock.setTimer(() => {
      this.#retryTimer = null;
      if (this.#state === 'failed') this.#startHandshake();
    }, delay);
  }
}


