/*
 * ThingsBoard device API over CoAP (reference thingsboard-coap.md §1).
 *
 * Paths: token devices use /api/v1/$TOKEN/<feature>; X.509 devices (mutual DTLS) use
 * /api/v1/<feature> with no token. The token is never logged nor put in an error message.
 *
 * Codes: 2.01/2.03/2.05 succeed; 4.01 stops this client (no further request is sent until
 * resume() is called with new credentials) and is reported; 5.xx sets a back-off the caller
 * can read from `retryAfter`; everything else becomes a TbError.
 */
import type { CoapClient, Observation } from '../coap/client';
import { RESPONSE_HEADROOM } from '../coap/client';
import type { CoapRequest, CoapResponse, Method } from '../coap/types';
import type { Clock, Log } from '../platform/types';
import { silentLog } from '../platform/types';
import type { FirmwareChunkRequest } from './api';
import { errorForCode, FIRMWARE_X509_UNSUPPORTED, TbError } from './errors';
import type {
  AttributeSnapshot,
  AttributeUpdate,
  PayloadCodec,
  ProvisionRequest,
  ProvisionResult,
  RpcRequest,
  TbObject,
  TbValue,
  TelemetryRecord,
} from './payload';
import { jsonCodec, PayloadError } from './payload';

export type Credentials = { kind: 'token'; token: string } | { kind: 'x509' };

export interface ThingsBoardClientOptions {
  credentials: Credentials;
  clock: Clock;
  codec?: PayloadCodec;
  log?: Log;
  /**
   * How telemetry and attribute POSTs travel:
   * - 'con' (default): CON request. ThingsBoard answers with a separate CON response that we ACK:
   *   three datagrams per report.
   * - 'non': NON request; ThingsBoard answers NON (reference §1.5), and the 2.01 is awaited for
   *   `responseTimeout`: two datagrams, still confirmed end to end. Nothing is retransmitted at the
   *   CoAP layer: a loss surfaces as a timeout and the caller replays (with the same `ts`, so the
   *   server stores the point once).
   * - 'non-no-response': NON with No-Response (RFC 7967) for 2.xx: one datagram, unconfirmed.
   *   Error responses still come back and are acted on (a 4.01 still stops the client).
   */
  uplink?: UplinkMode;
  /** First back-off after a 5.xx, doubled per consecutive failure up to backoffMaxMs. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export type UplinkMode = 'con' | 'non' | 'non-no-response';

export type RpcHandler = (request: RpcRequest) => TbValue | Promise<TbValue>;

/**
 * Answers one server-side RPC request, for the CoAP and the MQTT client alike: the handler's result
 * goes to `client.replyRpc` ({} when it returns nothing); a handler that throws answers
 * {"error": message}; a reply that fails is logged, never thrown. Called straight from the
 * notification callback, in place of a method: no extra call depth on the receive path.
 */
export async function answerRpc(client: { replyRpc(id: number, result: TbValue): Promise<void> }, handler: RpcHandler, request: RpcRequest, log: Log): Promise<void> {
  let result: TbValue;
  try {
    result = await handler(request);
  } catch (e) {
    result = { error: (e as Error).message };
  }
  try {
    await client.replyRpc(request.id, result ?? {});
  } catch (e) {
    log.warn(`RPC ${request.id} reply failed: ${(e as Error).message}`);
  }
}

export interface TbSubscription {
  /** Resolves when the server accepted the Observe registration. */
  readonly registered: Promise<unknown>;
  readonly active: boolean;
  /** Registers again with a fresh token: required after every wake-up or address change. */
  reregister(): Promise<void>;
  cancel(): Promise<void>;
}

const OK = new Set([0x41, 0x43, 0x44, 0x45]); // 2.01 2.03 2.04 2.05

export class ThingsBoardClient {
  readonly codec: PayloadCodec;
  #coap: CoapClient;
  #credentials: Credentials;
  #clock: Clock;
  #log: Log;
  #uplink: UplinkMode;
  #stoppedReason: TbError | undefined;
  #backoffInitial: number;
  #backoffMax: number;
  #backoff = 0;
  #retryAfter = 0;

  constructor(coap: CoapClient, options: ThingsBoardClientOptions) {
    this.#coap = coap;
    this.#credentials = options.credentials;
    this.#clock = options.clock;
    this.codec = options.codec ?? jsonCodec;
    this.#log = options.log ?? silentLog;
    this.#uplink = options.uplink ?? 'con';
    this.#backoffInitial = options.backoffInitialMs ?? 5000;
    this.#backoffMax = options.backoffMaxMs ?? 300000;
  }

  /** Set after a 4.01: the reason this client refuses to send. */
  get stopped(): TbError | undefined {
    return this.#stoppedReason;
  }

  /** Clock time before which a caller should not retry after a 5.xx (0 = no back-off). */
  get retryAfter(): number {
    return this.#retryAfter > this.#clock.now() ? this.#retryAfter : 0;
  }

  /** Stops all sending (like a 4.01) for a reason found below CoAP, e.g. a DTLS certificate failure. */
  halt(reason: TbError): void {
    if (!this.#stoppedReason) this.#log.error(`${reason.message}; sending stopped`);
    this.#stoppedReason = reason;
  }

  /** Replaces the credentials (after provisioning or an operator fix) and lifts a 4.01 stop. */
  resume(credentials?: Credentials): void {
    if (credentials) this.#credentials = credentials;
    this.#stoppedReason = undefined;
  }

  /** `/api/v1[/$TOKEN]/<feature>[/<sub>]`. */
  path(feature: string, sub?: string): string {
    const base = this.#credentials.kind === 'token' ? `/api/v1/${this.#credentials.token}/${feature}` : `/api/v1/${feature}`;
    return sub === undefined ? base : `${base}/${sub}`;
  }

  /** CoAP /fw takes only the access-token path (ThingsBoard issue #13097). */
  get firmwareUnavailable(): string | undefined {
    return this.#credentials.kind === 'token' ? undefined : FIRMWARE_X509_UNSUPPORTED;
  }

  /**
   * Largest firmware chunk per CoAP response: what the transport carries now (DtlsDatagram.mtu over
   * coaps, the record limit) less a response's header, token and options, and at most 1008 (a
   * 1024-byte message: this device's DTLS offers Max Fragment Length 1024, and 1024 B plus headers
   * stays below IPv6's minimum MTU of 1280).
   */
  get maxFirmwareChunk(): number {
    return Math.min(1008, (this.#coap.mtu ?? 1024) - RESPONSE_HEADROOM);
  }

  /** GET /fw/$TOKEN?[title=&]version=&size=&chunk= (reference thingsboard-coap.md §1.3): undefined when unanswered. */
  async requestFirmwareChunk(req: FirmwareChunkRequest): Promise<Uint8Array | undefined> {
    if (this.#credentials.kind !== 'token') throw new TbError('bad-request', FIRMWARE_X509_UNSUPPORTED);
    const query = [...(req.queryTitle ? [`title=${req.title}`] : []), `version=${req.version}`, `size=${req.size}`, `chunk=${req.chunk}`];
    let res: CoapResponse;
    try {
      res = await this.#coap.request({
        method: 'GET',
        path: `/fw/${this.#credentials.token}`,
        query,
        maxResponseBody: req.size,
        confirmable: req.confirmable ?? false,
        transmission: { responseTimeout: req.timeoutMs },
      });
    } catch {
      return undefined; // no answer (a chunk past the end gets none either; the agent never asks for one)
    }
    if (res.code === 0x45) return res.payload;
    throw errorForCode(res.code, `firmware chunk ${req.chunk}`);
  }

  async sendTelemetry(records: TelemetryRecord | TelemetryRecord[]): Promise<void> {
    await this.#call('telemetry', 'POST', this.path('telemetry'), this.codec.encodeTelemetry(records), this.#uplink);
  }

  async sendAttributes(attributes: TbObject): Promise<void> {
    await this.#call('attributes', 'POST', this.path('attributes'), this.codec.encodeAttributes(attributes), this.#uplink);
  }

  /** GET attributes by key; no keys = all. 4.04 (nothing found) resolves to empty sections. */
  async requestAttributes(keys: { clientKeys?: string[]; sharedKeys?: string[] } = {}): Promise<AttributeSnapshot> {
    const query: string[] = [];
    if (keys.clientKeys?.length) query.push(`clientKeys=${keys.clientKeys.join(',')}`);
    if (keys.sharedKeys?.length) query.push(`sharedKeys=${keys.sharedKeys.join(',')}`);
    try {
      const res = await this.#call('attribute request', 'GET', this.path('attributes'), undefined, 'con', query);
      return this.codec.decodeAttributeSnapshot(res.payload);
    } catch (e) {
      if (e instanceof TbError && e.code === 'not-found') return { client: {}, shared: {} };
      throw e;
    }
  }

  /**
   * Shared-attribute updates (GET + Observe). The first notification is the full set of shared
   * attributes, later ones only the changed keys, deletions as `deleted`.
   */
  subscribeAttributes(onUpdate: (update: AttributeUpdate) => void, onEnd?: (reason?: Error) => void): TbSubscription {
    return this.#observe('attribute subscription', this.path('attributes'), (p) => this.codec.decodeAttributeUpdate(p), onUpdate, onEnd);
  }

  /**
   * Server-side RPC (GET + Observe on rpc; registration answered 2.03). Each request is handed to
   * `handler`; its result is POSTed to rpc/{id}. A handler that throws answers {"error": message}.
   */
  subscribeRpc(handler: RpcHandler, onEnd?: (reason?: Error) => void): TbSubscription {
    return this.#observe('RPC subscription', this.path('rpc'), (p) => this.codec.decodeRpcRequest(p), (r) => void answerRpc(this, handler, r, this.#log), onEnd);
  }

  async replyRpc(id: number, result: TbValue): Promise<void> {
    await this.#call('RPC reply', 'POST', this.path('rpc', String(id)), this.codec.encodeRpcReply(result));
  }

  /** Client-side RPC: answered by the rule chain (2.05), or never (no rule): rejects on timeout. */
  async callRpc(method: string, params: TbValue = {}): Promise<TbValue> {
    const res = await this.#call('client RPC', 'POST', this.path('rpc'), this.codec.encodeRpcCall(method, params));
    return res.payload.length ? this.codec.decodeRpcResponse(res.payload) : null;
  }

  async claim(secretKey?: string, durationMs?: number): Promise<void> {
    await this.#call('claim', 'POST', this.path('claim'), this.codec.encodeClaim(secretKey, durationMs));
  }

  /**
   * Device provisioning (no credentials needed). Resolves with the new credentials; 4.00 with
   * status NOT_FOUND / FAILURE rejects with the server's errorMsg.
   */
  async provision(request: ProvisionRequest): Promise<ProvisionResult> {
    const res = await this.#coap.request({
      method: 'POST',
      path: '/api/v1/provision',
      payload: this.codec.encodeProvisionRequest(request),
      contentFormat: this.codec.contentFormat,
    });
    let reply: TbValue = null;
    try {
      reply = res.payload.length ? this.codec.decodeProvisionResponse(res.payload) : null;
    } catch {
      /* no body the codec can read */
    }
    const obj = reply && typeof reply === 'object' && !Array.isArray(reply) ? reply : {};
    if (res.code === 0x41 && obj.status === 'SUCCESS' && typeof obj.credentialsValue === 'string') {
      return { credentialsType: String(obj.credentialsType ?? 'ACCESS_TOKEN'), credentialsValue: obj.credentialsValue };
    }
    throw errorForCode(res.code === 0x41 ? 0x80 : res.code, 'provision', typeof obj.errorMsg === 'string' ? `${obj.status}: ${obj.errorMsg}` : undefined);
  }

  async #call(
    feature: string,
    method: Method,
    path: string,
    payload?: Uint8Array,
    mode: UplinkMode = 'con',
    query?: string[],
  ): Promise<CoapResponse> {
    if (this.#stoppedReason) throw new TbError('stopped', `${feature} not sent: stopped after ${this.#stoppedReason.message}`);
    const req: CoapRequest = { method, path, confirmable: mode === 'con' };
    if (payload) {
      req.payload = payload;
      req.contentFormat = this.codec.contentFormat;
    }
    if (query?.length) req.query = query;
    if (mode === 'non-no-response') {
      // No-Response (RFC 7967) = 2 suppresses 2.xx only: a 4.xx/5.xx still comes back, and is
      // acted on in the background (4.01 stops the client, 5.xx backs off).
      req.options = [{ number: 258, value: new Uint8Array([2]) }];
      void this.#coap.request(req).then(
        (res) => {
          try {
            this.#check(feature, res);
          } catch {
            /* logged and recorded by #check */
          }
        },
        () => undefined, // silence is success here
      );
      return { code: 0x44, payload: new Uint8Array(0), options: [], type: 1 };
    }
    let res: CoapResponse;
    try {
      res = await this.#coap.request(req);
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.code === 'timeout') throw new TbError('timeout', `${feature}: no response from server`);
      const stopped = this.stopped;
      if (stopped) throw new TbError('stopped', `${feature} not sent: ${stopped.message}`);
      throw e;
    }
    return this.#check(feature, res);
  }

  #check(feature: string, res: CoapResponse): CoapResponse {
    if (OK.has(res.code)) {
      this.#backoff = 0;
      this.#retryAfter = 0;
      return res;
    }
    const err = errorForCode(res.code, feature);
    if (err.code === 'unauthorized') {
      this.#stoppedReason = err;
      this.#log.error(`${err.message}; sending stopped until the credentials are fixed`);
    } else if (err.code === 'server-error') {
      this.#backoff = this.#backoff ? Math.min(this.#backoff * 2, this.#backoffMax) : this.#backoffInitial;
      this.#retryAfter = this.#clock.now() + this.#backoff;
      this.#log.warn(`${err.message}; backing off ${this.#backoff} ms`);
    }
    throw err;
  }

  /**
   * GET + Observe on `path`. Each non-empty 2.xx payload is decoded and handed to `deliver`; one
   * that does not decode is logged and dropped (the observation goes on).
   */
  #observe<T>(
    feature: string,
    path: string,
    decode: (payload: Uint8Array) => T,
    deliver: (value: T) => void,
    onEnd?: (reason?: Error) => void,
  ): TbSubscription {
    if (this.#stoppedReason) throw new TbError('stopped', `${feature} not sent: stopped after ${this.#stoppedReason.message}`);
    let ended = false;
    const end = (reason?: Error) => {
      if (ended) return;
      ended = true;
      onEnd?.(reason);
    };
    const observation: Observation = this.#coap.observe(
      { method: 'GET', path },
      (res) => {
        if (!OK.has(res.code) || res.payload.length === 0) return;
        let value: T;
        try {
          value = decode(res.payload);
        } catch (e) {
          this.#log.warn(`${feature}: notification ignored: ${(e as Error).message}`);
          return;
        }
        deliver(value);
      },
      (reason) => end(reason),
    );
    const check = (res: CoapResponse): CoapResponse => {
      ended = false;
      return this.#check(feature, res);
    };
    let registered = observation.registered.then(check);
    registered.catch((e: Error) => end(e));
    return {
      get registered() {
        return registered;
      },
      get active() {
        return observation.active && !ended;
      },
      reregister: async () => {
        registered = observation.reregister().then(check);
        await registered;
      },
      cancel: async () => {
        ended = true;
        await observation.cancel();
      },
    };
  }
}

export { PayloadError };
