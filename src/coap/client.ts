/*
 * CoAP client endpoint (RFC 7252 message layer and request/response layer) for one peer, with
 * Observe (RFC 7641) and block-wise transfer (RFC 7959).
 *
 * One exchange = one message we send (CON or NON) with its own token, waiting for one response.
 * Every wait is a Clock timer owned by an exchange; finishing an exchange clears it, so an idle
 * client holds no timers. Incoming CON messages are deduplicated by Message ID in a fixed-size
 * ring (no timers: entries expire by comparing times).
 */
import { silentLog, type Clock, type Datagram, type DatagramTooLargeError, type Log, type Random, type TimerHandle } from '../platform/types';
import { concatChunks, szxForMtu } from './block';
import {
  blockSize,
  buildUriOptions,
  decode,
  emptyMessage,
  encode,
  encodeBlock,
  decodeUint,
  encodeUint,
  getBlock,
  getOption,
  isResponseCode,
  isSuccessCode,
} from './codec';
import { CoapClosedError, CoapError, CoapFormatError, CoapResetError, CoapTimeoutError, CoapTooLargeError } from './errors';
import { isFresher } from './observe';
import {
  Code,
  CoapType,
  codeToString,
  OptionNumber,
  RFC7252_TRANSMISSION,
  type CoapMessage,
  type CoapOption,
  type CoapRequest,
  type CoapResponse,
  type Method,
  type TransmissionParams,
} from './types';

export interface CoapClientOptions {
  clock: Clock;
  random: Random;
  log?: Log;
  transmission?: Partial<TransmissionParams>;
  /** Entries in the duplicate-detection ring for incoming CON messages. Default 32. */
  dedupSize?: number;
  /** How long a received CON Message ID is remembered (ms). Default EXCHANGE_LIFETIME 247000. */
  exchangeLifetime?: number;
  /** Concurrent observations. Default 16. */
  maxObservations?: number;
  /** Token length in bytes, 0..8. Default 4. */
  tokenLength?: number;
  /** Bound on a reassembled Block2 body. Default 64 KiB. */
  maxBodySize?: number;
}

export interface CoapClientStats {
  /** Requests sent (each block of a block-wise transfer counts once; retransmissions do not). */
  requests: number;
  retransmissions: number;
  timeouts: number;
  /** Incoming CON messages recognised as duplicates by Message ID. */
  duplicatesReceived: number;
  /** RST received for our CON messages. */
  resets: number;
  /** RST we sent (unknown token, cancelled observation, unexpected request, ping). */
  resetsSent: number;
  /** Notifications (and registration responses with a payload) delivered. */
  notifications: number;
  /** Notifications dropped as older than the last one (RFC 7641 §3.4). */
  staleNotifications: number;
  bytesSent: number;
  bytesReceived: number;
  /** Datagrams that failed to decode. */
  malformed: number;
  /** Requests failed at once with CoapTooLargeError: the transport refused their datagram. */
  tooLarge: number;
}

export interface Observation {
  /** The token of the current registration (changes on reregister). */
  readonly token: Uint8Array;
  /** The current registration's response (replaced by reregister). */
  readonly registered: Promise<CoapResponse>;
  /** True from registration until the observation ends or is cancelled. */
  readonly active: boolean;
  /** Deregisters (GET with Observe=1 on the same token); stops delivering at once; never rejects. */
  cancel(): Promise<void>;
  /** New token, new Observe=0 GET: after a wake-up, reconnect or NAT rebinding. */
  reregister(): Promise<CoapResponse>;
}

interface Exchange {
  key: string;
  token: Uint8Array;
  mid: number;
  bytes: Uint8Array;
  con: boolean;
  acked: boolean;
  done: boolean;
  timeout: number;
  retransmits: number;
  timer: TimerHandle;
  hasTimer: boolean;
  params: TransmissionParams;
  resolveOnEmptyAck: boolean;
  resolve: (msg: CoapMessage | null) => void;
  reject: (error: Error) => void;
}

const EMPTY: Uint8Array = new Uint8Array(0);

const METHOD_CODES: Record<Method, number> = Object.freeze<Record<Method, number>>({
  GET: Code.GET,
  POST: Code.POST,
  PUT: Code.PUT,
  DELETE: Code.DELETE,
  FETCH: Code.FETCH,
  PATCH: Code.PATCH,
  IPATCH: Code.IPATCH,
});

/** Options that the client itself manages and strips from follow-up block requests. */
/** Bytes a response needs beside its body when it fits one message: header 4, token up to 8, Content-Format and spare. */
export const RESPONSE_HEADROOM = 16;

const MANAGED_OPTIONS = new Set<number>([OptionNumber.OBSERVE, OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.SIZE1]);

function tokenKey(token: Uint8Array): string {
  let s = '';
  for (let i = 0; i < token.length; i++) s += String.fromCharCode(token[i]!);
  return s;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The value of an elective uint option, or undefined when it is absent or malformed (longer than
 * RFC 7252 Table 4 / RFC 7641 allow): RFC 7252 §5.4.3 treats a malformed elective option like an
 * unrecognized one, which is silently ignored; it must not cost the whole message.
 */
function electiveUint(msg: CoapMessage, number: number, maxLength: number): number | undefined {
  const o = getOption(msg, number);
  return o && o.value.length <= maxLength ? decodeUint(o.value) : undefined;
}

/** Longest well-formed Content-Format (RFC 7252 §5.10) and Observe (RFC 7641 §2: a longer one is ignored, as if absent). */
const CONTENT_FORMAT_MAX = 2;
const OBSERVE_MAX = 3;

function toResponse(msg: CoapMessage, payload: Uint8Array = msg.payload): CoapResponse {
  const response: CoapResponse = { code: msg.code, payload, options: msg.options, type: msg.type };
  const cf = electiveUint(msg, OptionNumber.CONTENT_FORMAT, CONTENT_FORMAT_MAX);
  if (cf !== undefined) response.contentFormat = cf;
  const observe = electiveUint(msg, OptionNumber.OBSERVE, OBSERVE_MAX);
  if (observe !== undefined) response.observe = observe;
  return response;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const noop = (): void => {};

class ObservationImpl implements Observation {
  token: Uint8Array = EMPTY;
  key = '';
  registered!: Promise<CoapResponse>;
  active = false;
  ended = false;
  /** Bumped by reregister/cancel so late answers to an older registration are ignored. */
  generation = 0;
  last: number | undefined;
  lastTime = 0;
  readonly req: CoapRequest;
  readonly onNotification: (r: CoapResponse) => void;
  readonly onEnd: ((reason?: Error) => void) | undefined;
  readonly #cancel: (o: ObservationImpl) => Promise<void>;
  readonly #register: (o: ObservationImpl) => Promise<CoapResponse>;

  constructor(
    req: CoapRequest,
    onNotification: (r: CoapResponse) => void,
    onEnd: ((reason?: Error) => void) | undefined,
    cancel: (o: ObservationImpl) => Promise<void>,
    register: (o: ObservationImpl) => Promise<CoapResponse>,
  ) {
    this.req = req;
    this.onNotification = onNotification;
    this.onEnd = onEnd;
    this.#cancel = cancel;
    this.#register = register;
  }

  cancel(): Promise<void> {
    return this.#cancel(this);
  }

  reregister(): Promise<CoapResponse> {
    return this.#register(this);
  }
}

export class CoapClient {
  readonly stats: CoapClientStats = {
    requests: 0,
    retransmissions: 0,
    timeouts: 0,
    duplicatesReceived: 0,
    resets: 0,
    resetsSent: 0,
    notifications: 0,
    staleNotifications: 0,
    bytesSent: 0,
    bytesReceived: 0,
    malformed: 0,
    tooLarge: 0,
  };

  #transport: Datagram;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Log;
  readonly #transmission: TransmissionParams;
  readonly #exchangeLifetime: number;
  readonly #maxObservations: number;
  readonly #tokenLength: number;
  readonly #maxBodySize: number;
  #nextMid: number;
  #closed = false;

  readonly #byMid = new Map<number, Exchange>();
  readonly #byToken = new Map<string, Exchange>();
  readonly #observations = new Map<string, ObservationImpl>();
  readonly #observers = new Set<ObservationImpl>();

  // Duplicate detection ring for incoming CON: Message ID, time received, reply sent.
  readonly #dedupMids: Int32Array;
  readonly #dedupTimes: Float64Array;
  readonly #dedupReplies: (Uint8Array | null)[];
  #dedupNext = 0;

  readonly #onReceive = (data: Uint8Array): void => this.#receive(data);
  readonly #onError = (error: Error): void => {
    if (this.#tooLarge(error)) return;
    this.#log.warn(`coap: transport error: ${error.message}`);
    this.onTransportError?.(error);
  };

  /**
   * A DatagramTooLargeError (Datagram.onError) for one of our pending requests: fails that exchange
   * at once with CoapTooLargeError (its retransmissions would be refused too). True if handled.
   */
  #tooLarge(error: Error): boolean {
    const e = error as Partial<DatagramTooLargeError>;
    const d = e.datagram;
    if (!(d instanceof Uint8Array) || d.length < 4) return false;
    const ex = this.#byMid.get((d[2]! << 8) | d[3]!);
    if (!ex || ex.done || !bytesEqual(ex.bytes, d)) {
      // a retransmission of an exchange already failed, or a reply of ours (ACK/RST): nothing pending
      this.#log.debug(`coap: datagram of ${d.length} bytes not sent (larger than the transport carries)`);
      return true;
    }
    this.stats.tooLarge++;
    this.#log.warn(`coap: request of ${d.length} bytes not sent: larger than the transport carries (${e.mtu ?? '?'} bytes)`);
    this.#finish(ex, null, new CoapTooLargeError(d.length, typeof e.mtu === 'number' ? e.mtu : 0));
    return true;
  }

  /** Called with each transport failure (socket error, DTLS alert or certificate failure). */
  onTransportError?: (error: Error) => void;

  constructor(transport: Datagram, options: CoapClientOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#log = options.log ?? silentLog;
    this.#transmission = { ...RFC7252_TRANSMISSION, ...options.transmission };
    this.#exchangeLifetime = options.exchangeLifetime ?? 247_000;
    this.#maxObservations = options.maxObservations ?? 16;
    const tokenLength = options.tokenLength ?? 4;
    if (!(tokenLength >= 0 && tokenLength <= 8)) throw new RangeError('tokenLength must be 0..8');
    this.#tokenLength = tokenLength;
    this.#maxBodySize = options.maxBodySize ?? 64 * 1024;
    const dedupSize = options.dedupSize ?? 32;
    this.#dedupMids = new Int32Array(dedupSize).fill(-1);
    this.#dedupTimes = new Float64Array(dedupSize);
    this.#dedupReplies = new Array<Uint8Array | null>(dedupSize).fill(null);
    this.#nextMid = Math.floor(this.#random.next() * 0x10000) & 0xffff;
    this.#transport = transport;
    transport.onReceive = this.#onReceive;
    transport.onError = this.#onError;
  }

  /** Continues on a new socket (reconnect, NAT rebinding); pending exchanges carry on over it. */
  setTransport(transport: Datagram): void {
    const old = this.#transport;
    if (old.onReceive === this.#onReceive) old.onReceive = undefined;
    if (old.onError === this.#onError) old.onError = undefined;
    this.#transport = transport;
    if (!this.#closed) {
      transport.onReceive = this.#onReceive;
      transport.onError = this.#onError;
    }
  }

  /** Rejects every pending exchange with CoapClosedError, ends observations, clears all timers. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ex of [...this.#byToken.values()]) this.#finish(ex, null, new CoapClosedError());
    for (const ex of [...this.#byMid.values()]) this.#finish(ex, null, new CoapClosedError());
    for (const obs of [...this.#observers]) this.#end(obs, new CoapClosedError());
    this.#observations.clear();
    const t = this.#transport;
    if (t.onReceive === this.#onReceive) t.onReceive = undefined;
    if (t.onError === this.#onError) t.onError = undefined;
  }

  /**
   * Rejects every pending request with `error` (e.g. the DTLS layer refused the server's
   * certificate: nothing will be answered), registrations included. The client stays usable.
   */
  failPending(error: Error): void {
    for (const ex of [...this.#byToken.values()]) this.#finish(ex, null, error);
    for (const ex of [...this.#byMid.values()]) this.#finish(ex, null, error);
  }

  /** The largest datagram the transport carries now (DTLS: its record limit), when it says. */
  get mtu(): number | undefined {
    return this.#transport.mtu;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a request and resolves with its response (any code: 4.xx/5.xx resolve too). Bodies
   * larger than one block go out with Block1; Block2 responses are fetched and reassembled.
   */
  async request(req: CoapRequest): Promise<CoapResponse> {
    if (this.#closed) throw new CoapClosedError();
    const params = this.#paramsFor(req);
    const payload = req.payload ?? EMPTY;
    const code = METHOD_CODES[req.method];
    if (code === undefined) throw new CoapError(`unknown method ${String(req.method)}`, 'method');
    const fit = szxForMtu(this.#transport.mtu);
    const mtu = this.#transport.mtu;
    const fitsWhole = req.maxResponseBody !== undefined && mtu !== undefined && req.maxResponseBody + RESPONSE_HEADROOM <= mtu;
    if (req.block2Szx === undefined && fit < 6 && !fitsWhole && (req.method === 'GET' || req.method === 'FETCH')) {
      // RFC 7959 §2.4 early negotiation: ask for blocks that fit our transport. A server's default
      // 1024-byte block does not fit one DTLS record (libcoap's coap-server-openssl then fails to
      // send it, and the GET ends in re-handshakes and timeouts).
      req = { ...req, block2Szx: fit };
    }
    let szx = req.block1Szx ?? fit;
    let blockwise = payload.length > blockSize(szx);
    let retried = false;
    for (;;) {
      let first: CoapMessage;
      if (blockwise) {
        first = await this.#sendBlock1(req, code, params, payload, szx);
      } else {
        const options = this.#requestOptions(req, payload.length > 0);
        if (req.block2Szx !== undefined) options.push({ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 0, more: false, szx: req.block2Szx }) });
        first = await this.#exchangeMessage(code, options, payload, req.confirmable !== false, params);
      }
      if (first.code === Code.REQUEST_ENTITY_TOO_LARGE && !retried && payload.length > 0) {
        // RFC 7959 §2.9.3: the server may name the block size it prefers in Block1.
        retried = true;
        const b1 = getBlock(first, OptionNumber.BLOCK1);
        const smaller = b1 && b1.szx < szx ? b1.szx : szx - 1;
        if (smaller >= 0 && payload.length > blockSize(smaller)) {
          this.#log.debug(`coap: 4.13, retrying block-wise with ${blockSize(smaller)}-byte blocks`);
          szx = smaller;
          blockwise = true;
          continue;
        }
      }
      return this.#continueBlock2(req, params, first);
    }
  }

  /**
   * Registers an observation (RFC 7641). The registration response resolves `registered`, and is
   * also passed to onNotification when it has a payload. onEnd is called once when the observation
   * ends: server declined (no Observe in the response), error or 2.02 notification, failure of the
   * registration, close() — or cancel(), with no reason. Throws CoapError when maxObservations are
   * already active.
   */
  observe(req: CoapRequest, onNotification: (r: CoapResponse) => void, onEnd?: (reason?: Error) => void): Observation {
    if (this.#closed) throw new CoapClosedError();
    if (this.#observers.size >= this.#maxObservations) {
      throw new CoapError(`too many observations (max ${this.#maxObservations})`, 'observe-limit');
    }
    const obs = new ObservationImpl(
      req,
      onNotification,
      onEnd,
      (o) => this.#cancelObservation(o),
      (o) => this.#register(o),
    );
    this.#register(obs);
    return obs;
  }

  // ---- observe ----

  #register(obs: ObservationImpl): Promise<CoapResponse> {
    const gen = ++obs.generation;
    if (obs.key !== '' || obs.token.length > 0) {
      // Forget the old relation: its notifications now get RST, which ends it at the server (§3.6).
      if (this.#observations.get(obs.key) === obs) this.#observations.delete(obs.key);
      const pending = this.#byToken.get(obs.key);
      if (pending) this.#finish(pending, null, new CoapError('superseded by a new registration', 'superseded'));
    }
    const p = this.#registerOnce(obs, gen);
    obs.registered = p;
    p.catch(noop); // the caller may not await it; the reason also goes to onEnd
    return p;
  }

  async #registerOnce(obs: ObservationImpl, gen: number): Promise<CoapResponse> {
    if (this.#closed) throw new CoapClosedError();
    if (!this.#observers.has(obs) && this.#observers.size >= this.#maxObservations) {
      throw new CoapError(`too many observations (max ${this.#maxObservations})`, 'observe-limit');
    }
    obs.active = true;
    obs.ended = false;
    obs.last = undefined;
    this.#observers.add(obs);
    const req = obs.req;
    const params = this.#paramsFor(req);
    try {
      const token = this.#newToken();
      obs.token = token;
      obs.key = tokenKey(token);
      const options = this.#requestOptions(req, false);
      options.push({ number: OptionNumber.OBSERVE, value: EMPTY });
      if (req.block2Szx !== undefined) options.push({ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 0, more: false, szx: req.block2Szx }) });
      const first = await this.#exchangeMessage(Code.GET, options, EMPTY, req.confirmable !== false, params, token);
      if (gen !== obs.generation) return toResponse(first);
      const seq = electiveUint(first, OptionNumber.OBSERVE, OBSERVE_MAX);
      const accepted = isSuccessCode(first.code) && first.code !== Code.DELETED && seq !== undefined;
      if (accepted && obs.active) {
        // Listen before any remaining blocks are fetched: notifications may arrive meanwhile.
        obs.last = seq;
        obs.lastTime = this.#clock.now();
        this.#observations.set(obs.key, obs);
      }
      const response = await this.#continueBlock2(req, params, first);
      if (gen !== obs.generation) return response;
      if (!accepted) {
        this.#end(obs, new CoapError(`observe not accepted: ${codeToString(first.code)}${seq === undefined ? ' without Observe' : ''}`, 'observe-declined', response));
        return response;
      }
      if (obs.active && response.payload.length > 0) this.#deliver(obs, response);
      return response;
    } catch (e) {
      if (gen === obs.generation) this.#end(obs, e instanceof Error ? e : new CoapError(String(e)));
      throw e;
    }
  }

  async #cancelObservation(obs: ObservationImpl): Promise<void> {
    obs.generation++;
    const key = obs.key;
    const token = obs.token;
    if (this.#observations.get(key) === obs) this.#observations.delete(key);
    const pending = this.#byToken.get(key);
    if (pending) this.#finish(pending, null, new CoapError('observation cancelled', 'cancelled'));
    const wasActive = obs.active;
    this.#end(obs, undefined);
    if (!wasActive || this.#closed) return;
    const req = obs.req;
    const options = this.#requestOptions(req, false);
    options.push({ number: OptionNumber.OBSERVE, value: encodeUint(1) });
    try {
      await this.#exchange(Code.GET, options, EMPTY, req.confirmable !== false, this.#paramsFor(req), token, true);
    } catch (e) {
      this.#log.debug(`coap: deregistration of ...${req.path.slice(req.path.lastIndexOf('/'))}: ${errorMessage(e)}`); // the path may hold a token
    }
  }

  #end(obs: ObservationImpl, reason: Error | undefined): void {
    if (this.#observations.get(obs.key) === obs) this.#observations.delete(obs.key);
    this.#observers.delete(obs);
    obs.active = false;
    if (obs.ended) return;
    obs.ended = true;
    try {
      obs.onEnd?.(reason);
    } catch (e) {
      this.#log.error(`coap: onEnd threw: ${errorMessage(e)}`);
    }
  }

  #deliver(obs: ObservationImpl, response: CoapResponse): void {
    this.stats.notifications++;
    try {
      obs.onNotification(response);
    } catch (e) {
      this.#log.error(`coap: onNotification threw: ${errorMessage(e)}`);
    }
  }

  #notification(obs: ObservationImpl, msg: CoapMessage): void {
    const seq = electiveUint(msg, OptionNumber.OBSERVE, OBSERVE_MAX);
    if (!isSuccessCode(msg.code) || msg.code === Code.DELETED) {
      this.#end(obs, new CoapError(`observation ended by ${codeToString(msg.code)}`, 'observe-ended', toResponse(msg)));
      return;
    }
    if (seq === undefined) {
      // A response without Observe ends the relation (RFC 7641 §3.2); its content is still current.
      if (msg.payload.length > 0) this.#deliver(obs, toResponse(msg));
      this.#end(obs, new CoapError('observation ended by a response without Observe', 'observe-ended', toResponse(msg)));
      return;
    }
    const now = this.#clock.now();
    if (obs.last !== undefined && !isFresher(obs.last, obs.lastTime, seq, now)) {
      this.stats.staleNotifications++;
      this.#log.debug(`coap: stale notification ${seq} after ${obs.last} dropped`);
      return;
    }
    obs.last = seq;
    obs.lastTime = now;
    const b2 = getBlock(msg, OptionNumber.BLOCK2);
    if (b2 && b2.more) {
      // RFC 7959 §2.6: fetch the rest with plain GETs, deliver the whole body.
      const gen = obs.generation;
      this.#continueBlock2(obs.req, this.#paramsFor(obs.req), msg).then(
        (response) => {
          if (obs.active && gen === obs.generation && obs.last === seq) this.#deliver(obs, response);
        },
        (e) => this.#log.warn(`coap: notification body of ...${obs.req.path.slice(obs.req.path.lastIndexOf('/'))} lost: ${errorMessage(e)}`),
      );
      return;
    }
    this.#deliver(obs, toResponse(msg));
  }

  // ---- block-wise ----

  async #sendBlock1(req: CoapRequest, code: number, params: TransmissionParams, payload: Uint8Array, szx: number): Promise<CoapMessage> {
    let offset = 0;
    for (;;) {
      const size = blockSize(szx);
      const num = offset / size;
      const end = Math.min(offset + size, payload.length);
      const more = end < payload.length;
      const options = this.#requestOptions(req, true);
      options.push({ number: OptionNumber.BLOCK1, value: encodeBlock({ num, more, szx }) });
      if (num === 0) options.push({ number: OptionNumber.SIZE1, value: encodeUint(payload.length) });
      if (!more && req.block2Szx !== undefined) {
        options.push({ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 0, more: false, szx: req.block2Szx }) });
      }
      const response = await this.#exchangeMessage(code, options, payload.subarray(offset, end), req.confirmable !== false, params);
      if (!more || response.code !== Code.CONTINUE) return response;
      offset = end;
      const b1 = getBlock(response, OptionNumber.BLOCK1);
      if (b1 && b1.szx < szx) szx = b1.szx; // server asks for smaller blocks (RFC 7959 §2.5)
    }
  }

  async #continueBlock2(req: CoapRequest, params: TransmissionParams, first: CoapMessage): Promise<CoapResponse> {
    let b2 = getBlock(first, OptionNumber.BLOCK2);
    if (!b2 || !b2.more) return toResponse(first);
    if (b2.num !== 0) throw new CoapError(`Block2 transfer starts at block ${b2.num}`, 'block2');
    const chunks: Uint8Array[] = [];
    let total = 0;
    let msg = first;
    let szx = Math.min(b2.szx, req.block2Szx ?? szxForMtu(this.#transport.mtu));
    const fetchCode = req.method === 'FETCH' ? Code.FETCH : Code.GET;
    const body = req.method === 'FETCH' ? (req.payload ?? EMPTY) : EMPTY;
    for (;;) {
      const size = blockSize(b2.szx);
      if (b2.num * size !== total) throw new CoapError(`Block2 offset ${b2.num * size}, expected ${total}`, 'block2');
      if (b2.more && msg.payload.length !== size) throw new CoapError(`Block2 block of ${msg.payload.length} bytes, expected ${size}`, 'block2');
      total += msg.payload.length;
      if (total > this.#maxBodySize) throw new CoapError('body too large', 'body-too-large');
      chunks.push(msg.payload);
      if (!b2.more) break;
      if (b2.szx < szx) szx = b2.szx;
      const options = this.#requestOptions(req, body.length > 0);
      options.push({ number: OptionNumber.BLOCK2, value: encodeBlock({ num: total / blockSize(szx), more: false, szx }) });
      msg = await this.#exchangeMessage(fetchCode, options, body, req.confirmable !== false, params);
      if (!isSuccessCode(msg.code)) return toResponse(msg); // e.g. 4.08 or 4.04 mid-transfer
      b2 = getBlock(msg, OptionNumber.BLOCK2);
      if (!b2) throw new CoapError('Block2 option missing in a follow-up block', 'block2');
    }
    const response = toResponse(first, concatChunks(chunks, total));
    response.code = msg.code;
    return response;
  }

  // ---- exchanges ----

  #paramsFor(req: CoapRequest): TransmissionParams {
    return req.transmission ? { ...this.#transmission, ...req.transmission } : this.#transmission;
  }

  #requestOptions(req: CoapRequest, withBody: boolean): CoapOption[] {
    const options = buildUriOptions(req.path, req.query);
    if (withBody && req.contentFormat !== undefined) options.push({ number: OptionNumber.CONTENT_FORMAT, value: encodeUint(req.contentFormat) });
    if (req.accept !== undefined) options.push({ number: OptionNumber.ACCEPT, value: encodeUint(req.accept) });
    if (req.options) for (const o of req.options) if (!MANAGED_OPTIONS.has(o.number)) options.push(o);
    return options;
  }

  #newToken(): Uint8Array {
    for (let i = 0; i < 16; i++) {
      const token = new Uint8Array(this.#tokenLength);
      this.#random.fill(token);
      const key = tokenKey(token);
      if (!this.#byToken.has(key) && !this.#observations.has(key)) return token;
    }
    throw new CoapError('no free token (too many exchanges for the token length)', 'token');
  }

  async #exchangeMessage(
    code: number,
    options: CoapOption[],
    payload: Uint8Array,
    con: boolean,
    params: TransmissionParams,
    token?: Uint8Array,
  ): Promise<CoapMessage> {
    const msg = await this.#exchange(code, options, payload, con, params, token, false);
    if (!msg) throw new CoapError('exchange ended without a response', 'no-response');
    return msg;
  }

  /** Sends one request message and waits for its response (null: resolved on an empty ACK). */
  #exchange(
    code: number,
    options: CoapOption[],
    payload: Uint8Array,
    con: boolean,
    params: TransmissionParams,
    token: Uint8Array | undefined,
    resolveOnEmptyAck: boolean,
  ): Promise<CoapMessage | null> {
    return new Promise<CoapMessage | null>((resolve, reject) => {
      if (this.#closed) throw new CoapClosedError();
      const tok = token ?? this.#newToken();
      const key = tokenKey(tok);
      if (this.#byToken.has(key)) throw new CoapError('token in use', 'token');
      const mid = this.#nextMid;
      const bytes = encode({ type: con ? CoapType.CON : CoapType.NON, code, messageId: mid, token: tok, options, payload });
      this.#nextMid = (mid + 1) & 0xffff;
      const ex: Exchange = {
        key,
        token: tok,
        mid,
        bytes,
        con,
        acked: false,
        done: false,
        timeout: 0,
        retransmits: 0,
        timer: undefined,
        hasTimer: false,
        params,
        resolveOnEmptyAck,
        resolve,
        reject,
      };
      this.#byToken.set(key, ex);
      this.#byMid.set(mid, ex); // NON too: the peer may reject it with RST

      this.stats.requests++;
      // Timer first, then send: a transport that answers synchronously must find it armed.
      if (con) {
        // RFC 7252 §4.2: initial timeout random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR].
        ex.timeout = params.ackTimeout * (1 + this.#random.next() * (params.ackRandomFactor - 1));
        this.#arm(ex, ex.timeout, this.#onAckTimeout);
      } else {
        this.#arm(ex, params.responseTimeout, this.#onResponseTimeout);
      }
      this.#send(bytes);
    });
  }

  #arm(ex: Exchange, ms: number, fn: (ex: Exchange) => void): void {
    if (ex.hasTimer) this.#clock.clearTimer(ex.timer);
    ex.hasTimer = true;
    ex.timer = this.#clock.setTimer(() => {
      ex.hasTimer = false;
      ex.timer = undefined;
      fn(ex);
    }, ms);
  }

  readonly #onAckTimeout = (ex: Exchange): void => {
    if (ex.done) return;
    if (ex.retransmits < ex.params.maxRetransmit) {
      ex.retransmits++;
      ex.timeout *= 2;
      this.stats.retransmissions++;
      this.#arm(ex, ex.timeout, this.#onAckTimeout);
      this.#send(ex.bytes);
      return;
    }
    this.stats.timeouts++;
    this.#finish(ex, null, new CoapTimeoutError(`no ACK after ${ex.retransmits} retransmissions`));
  };

  readonly #onResponseTimeout = (ex: Exchange): void => {
    if (ex.done) return;
    this.stats.timeouts++;
    this.#finish(ex, null, new CoapTimeoutError(ex.con ? 'no separate response after the empty ACK' : 'no response to NON request'));
  };

  #finish(ex: Exchange, msg: CoapMessage | null, error?: Error): void {
    if (ex.done) return;
    ex.done = true;
    if (ex.hasTimer) {
      this.#clock.clearTimer(ex.timer);
      ex.hasTimer = false;
      ex.timer = undefined;
    }
    if (this.#byToken.get(ex.key) === ex) this.#byToken.delete(ex.key);
    if (this.#byMid.get(ex.mid) === ex) this.#byMid.delete(ex.mid);
    if (error) ex.reject(error);
    else ex.resolve(msg);
  }

  #send(bytes: Uint8Array): void {
    this.stats.bytesSent += bytes.length;
    try {
      this.#transport.send(bytes);
    } catch (e) {
      if (e instanceof Error && this.#tooLarge(e)) return;
      this.#log.warn(`coap: send failed: ${errorMessage(e)}`);
    }
  }

  // ---- receiving ----

  #receive(data: Uint8Array): void {
    this.stats.bytesReceived += data.length;
    if (this.#closed) return;
    let msg: CoapMessage;
    try {
      msg = decode(data);
    } catch (e) {
      this.stats.malformed++;
      this.#log.debug(`coap: malformed datagram (${data.length} bytes): ${e instanceof CoapFormatError ? e.reason : errorMessage(e)}`);
      // RFC 7252 §4.2: a CON with a format error is rejected with RST (if its header is readable).
      if (data.length >= 4 && data[0]! >> 6 === 1 && ((data[0]! >> 4) & 3) === CoapType.CON) {
        this.#reply(emptyMessage(CoapType.RST, (data[2]! << 8) | data[3]!), -1, true);
      }
      return;
    }
    try {
      this.#dispatch(msg);
    } catch (e) {
      if (e instanceof CoapFormatError) {
        this.stats.malformed++;
        this.#log.debug(`coap: bad option value: ${e.reason}`);
      } else {
        this.#log.error(`coap: receive failed: ${errorMessage(e)}`);
      }
    }
  }

  #dispatch(msg: CoapMessage): void {
    const mid = msg.messageId;
    if (msg.type === CoapType.ACK) {
      const ex = this.#byMid.get(mid);
      if (!ex || !ex.con) return; // duplicate or late ACK (NON is never ACKed)
      if (msg.code === 0) {
        if (ex.acked) return;
        ex.acked = true;
        this.#byMid.delete(mid);
        if (ex.resolveOnEmptyAck) this.#finish(ex, null);
        else this.#arm(ex, ex.params.responseTimeout, this.#onResponseTimeout);
        return;
      }
      if (!bytesEqual(msg.token, ex.token)) {
        this.#log.debug(`coap: ACK ${mid} with a foreign token ignored`);
        return;
      }
      this.#finish(ex, msg);
      return;
    }
    if (msg.type === CoapType.RST) {
      const ex = this.#byMid.get(mid);
      if (!ex) return;
      this.stats.resets++;
      this.#finish(ex, null, new CoapResetError());
      return;
    }
    const con = msg.type === CoapType.CON;
    if (con) {
      const dup = this.#dedupLookup(mid);
      if (dup >= 0) {
        this.stats.duplicatesReceived++;
        const reply = this.#dedupReplies[dup];
        if (reply) this.#send(reply);
        return;
      }
    }
    if (!isResponseCode(msg.code)) {
      // Ping (empty CON), a request (we serve no resources) or a reserved class: RST if CON.
      if (con) this.#reply(emptyMessage(CoapType.RST, mid), mid, true);
      return;
    }
    const key = tokenKey(msg.token);
    const ex = this.#byToken.get(key);
    if (ex) {
      if (con) this.#reply(emptyMessage(CoapType.ACK, mid), mid, false);
      this.#finish(ex, msg);
      return;
    }
    const obs = this.#observations.get(key);
    if (obs) {
      if (con) this.#reply(emptyMessage(CoapType.ACK, mid), mid, false);
      this.#notification(obs, msg);
      return;
    }
    // Unknown token: reject a CON (RFC 7252 §4.2; RFC 7641 §3.6 ends a stale relation this way).
    if (con) this.#reply(emptyMessage(CoapType.RST, mid), mid, true);
    else this.#log.debug(`coap: NON response with unknown token ignored`);
  }

  #reply(bytes: Uint8Array, mid: number, rst: boolean): void {
    if (rst) this.stats.resetsSent++;
    this.#send(bytes);
    if (mid >= 0) this.#dedupRecord(mid, bytes);
  }

  #dedupLookup(mid: number): number {
    const mids = this.#dedupMids;
    const now = this.#clock.now();
    for (let i = 0; i < mids.length; i++) {
      if (mids[i] === mid && now - this.#dedupTimes[i]! < this.#exchangeLifetime) return i;
    }
    return -1;
  }

  #dedupRecord(mid: number, reply: Uint8Array | null): void {
    const n = this.#dedupMids.length;
    if (n === 0) return;
    const i = this.#dedupNext;
    this.#dedupMids[i] = mid;
    this.#dedupTimes[i] = this.#clock.now();
    this.#dedupReplies[i] = reply;
    this.#dedupNext = (i + 1) % n;
  }
}
