// The ThingsBoard device API over CoAP (/api/v1/**, /fw, /sw), independent of the transport.
//
// `TbCoapService.handle(req, res, auth)` takes a node-coap request/response pair (or anything
// shaped like one: see CoapReq/CoapRes) plus how the peer authenticated at the transport level:
//   { kind: 'token' }                     plain UDP, the access token is in the URL
//   { kind: 'x509', certSha3?: string }   DTLS; certSha3 = SHA3-256 hex of the client cert's base64 DER
// Behaviour follows docs/thingsboard-coap.md §1 and §4 (PSM).

import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Device, JsonObject, JsonValue, OtaPackage, PowerSettings, RpcRecord, Store } from './store';
import { provisionDevice } from './store';
import { parseLenientJson } from './json';
import { compileProfile, fixedMessages, ProtoConvertError } from './proto-profile';
import type { ProtoProfile } from './proto-profile';

export type Auth = { kind: 'token' } | { kind: 'x509'; certSha3?: string };

/** The parts of a node-coap IncomingMessage the handler uses. */
export interface CoapReq {
  url: string;
  method: string;
  payload: Buffer;
  headers: Record<string, unknown>;
  rsinfo: { address: string; port: number };
  _packet: { token?: Buffer; confirmable?: boolean; messageId?: number };
}

/** The parts of a node-coap OutgoingMessage / ObserveWriteStream the handler uses. */
export interface CoapRes {
  statusCode: string;
  setOption(name: string, value: unknown): unknown;
  end(payload?: Buffer): unknown;
  write?(chunk: Buffer): boolean;
  on(event: 'finish' | 'close' | 'error', cb: (...a: unknown[]) => void): unknown;
  writableEnded?: boolean;
  // node-coap internals used to mimic ThingsBoard's CON response timing (optional)
  _ackTimer?: NodeJS.Timeout | null;
  _packet?: { ack?: boolean; confirmable?: boolean; messageId?: number };
  _send?: (res: unknown, packet: unknown) => void;
  _counter?: number;
}

export type ClientRpcHandler = (ctx: { device: Device; method: string; params: JsonValue }) => JsonValue | Promise<JsonValue>;

export interface HandlerOptions {
  coapTimeoutMs: number;
  piggybackTimeoutMs: number;
  /** Extra delay before answering attribute requests (GET without Observe) and client-side RPC. */
  responseDelayMs: number;
  /**
   * 'thingsboard' (default): a CON request answered within piggybackTimeoutMs gets a *separate CON
   * response with a new MID and no ACK* (what TB 4.x really does, PR #15174 unmerged); slower answers
   * get an empty ACK then a CON response. 'piggyback': RFC-style piggybacked ACK when fast.
   */
  conResponses: 'thingsboard' | 'piggyback';
  clientRpc: ClientRpcHandler;
  log: (line: string) => void;
  /**
   * Time of the PSM / eDRX state (last uplink, sleep timer) and of server-RPC expiry. Default: wall
   * time. The power simulator passes the device's virtual clock so activity windows line up with
   * the simulated modem's (tools/sim/power-cli.ts, test/power).
   */
  clock?: PowerClock;
}

/** The subset of the device's Clock (src/platform/types.ts) the PSM state needs. */
export interface PowerClock {
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** Californium's PREFERRED_BLOCK_SIZE in ThingsBoard: bodies above this go out block-wise (Block2). */
export const BLOCK_SIZE = 1024;
/** BLOCKWISE_STATUS_LIFETIME: how long the rest of a block-wise notification can be fetched. */
const BLOCK2_STATUS_LIFETIME_MS = 300_000;
const MAX_BLOCK2_STATUS = 1024;
/** Largest JSON body the device API parses (a Block1 upload can be larger; it gets 4.00). */
export const MAX_JSON_BODY = 256 * 1024;

export const DEFAULT_PSM_ACTIVITY_TIMER = 10000;
export const DEFAULT_PAGING_TRANSMISSION_WINDOW = 10000;
const CF_JSON = 50;
/** Protobuf profiles always answer application/octet-stream (TbCoapContentFormatUtil, "strict"). */
const CF_OCTET_STREAM = 42;

export const defaultClientRpc: ClientRpcHandler = ({ method }): JsonValue =>
  method === 'getTime' ? { time: Date.now() } : { error: 'no rule chain' };

const TIMED_OUT = Symbol('timed out');

type Feature = 'attributes' | 'telemetry' | 'rpc' | 'claim' | 'provision';
const FEATURES: Feature[] = ['attributes', 'telemetry', 'rpc', 'claim', 'provision'];

interface Observation {
  deviceId: string;
  feature: 'attributes' | 'rpc';
  peer: string;
  token: string;
  con: boolean;
  res: CoapRes;
  /** URL of the registration (path and query): block-wise follow-ups use it. */
  url: string;
  contentFormat: number;
  closed: boolean;
}

/** Transport-side state of one device (TbCoapClientState). */
interface ClientState {
  lastUplink: number;
  asleep: boolean;
  sleepTimer: unknown;
  firstEdrxDownlink: boolean;
  queuedUpdated: JsonObject;
  queuedDeleted: Set<string>;
  hasQueued: boolean;
  rpcPushedSinceWake: boolean;
}

interface PendingRpc {
  rec: RpcRecord;
  resolve: (v: JsonValue) => void;
  reject: (e: Error) => void;
  timer: unknown;
}

export interface RequestEvent {
  ts: number;
  peer: string;
  type: 'CON' | 'NON';
  method: string;
  /** Path with the token replaced by <device name> or <unknown token>. */
  path: string;
  device?: string;
  code: string;
  observe?: number;
}

export class RpcTimeoutError extends Error {
  constructor() { super('timeout'); }
}

export class TbCoapService {
  readonly events = new EventEmitter();
  private observations = new Set<Observation>();
  private states = new Map<string, ClientState>();
  private pending = new Map<string, Map<number, PendingRpc>>();
  /** Responses not answered yet: node-coap's deferred-ACK timers must not fire after close. */
  readonly open = new Set<CoapRes>();
  /** Bodies of block-wise notifications, for the follow-up GETs with Block2 (peer|url -> status). */
  private block2 = new Map<string, { body: Buffer; cf: number; ts: number }>();
  private closed = false;

  constructor(readonly store: Store, readonly opts: HandlerOptions) {}

  /** State held per client, for tests and the fuzzer. */
  stateCounts(): { observations: number; open: number; pendingRpcs: number; clientStates: number; block2: number } {
    let pendingRpcs = 0;
    for (const m of this.pending.values()) pendingRpcs += m.size;
    return { observations: this.observations.size, open: this.open.size, pendingRpcs, clientStates: this.states.size, block2: this.block2.size };
  }

  /**
   * Would a request with this method and Uri-Path be served? null = yes (or: decided later), else
   * the code it gets. The message layer asks this before it stores any Block1 body.
   */
  preauthorize(code: string, segs: string[], auth: Auth): string | null {
    const method = ({ '0.01': 'GET', '0.02': 'POST', '0.03': 'PUT', '0.04': 'DELETE' } as Record<string, string>)[code] ?? 'OTHER';
    if (segs[0] === 'fw' || segs[0] === 'sw') {
      if (method !== 'GET') return '4.05';
      return segs[1] !== undefined && this.store.byToken(segs[1]) ? null : '4.01';
    }
    if (segs[0] !== 'api') return '4.04';
    if (segs.length === 1) return '4.05';
    if (segs[1] !== 'v1') return '4.04';
    if (method !== 'GET' && method !== 'POST') return '4.05';
    if (segs.length >= 4 && asFeature(segs[3])) {
      if (auth.kind === 'x509' && auth.certSha3 && this.store.byCertSha3(auth.certSha3)) return null;
      return this.store.byToken(segs[2]) ? null : '4.01';
    }
    if (segs.length >= 3 && asFeature(segs[2])) {
      if (asFeature(segs[2]) === 'provision') return null;
      return auth.kind === 'x509' && auth.certSha3 && this.store.byCertSha3(auth.certSha3) ? null : '4.01';
    }
    return segs.includes('provision') ? null : '4.00';
  }

  // ------------------------------------------------------------------ entry point

  handle(req: CoapReq, res: CoapRes, auth: Auth = { kind: 'token' }): void {
    if (this.closed) return;
    const peer = `${req.rsinfo.address}:${req.rsinfo.port}`;
    const con = req._packet.confirmable === true;
    // Duplicate CON requests never get here: MessageLayer (message-layer.ts) deduplicates them.
    const ctx = new Ctx(this, req, res, peer, con);
    try {
      this.route(ctx, auth);
    } catch (e) {
      this.opts.log(`internal error: ${(e as Error).message}`);
      ctx.reply('5.00');
    }
  }

  private route(ctx: Ctx, auth: Auth): void {
    const [pathPart, queryPart = ''] = ctx.req.url.split('?', 2);
    const segs = pathPart.split('/').filter((s) => s.length > 0);
    ctx.query = parseQuery(queryPart);
    ctx.segs = segs;
    if (this.block2FollowUp(ctx)) return;
    if (segs[0] === 'api') {
      ctx.piggyback = true; // Californium's own answers
      if (segs.length === 1) return ctx.reply('4.05'); // plain CoapResource
      if (segs[1] !== 'v1') return ctx.reply('4.04');
      ctx.piggyback = false;
      return this.api(ctx, auth);
    }
    if (segs[0] === 'fw' || segs[0] === 'sw') return this.ota(ctx, segs[0]);
    if (segs[0] === '.well-known' && segs[1] === 'core' && ctx.req.method === 'GET') {
      ctx.cf = 40;
      return ctx.reply('2.05', '</api>,</api/v1>;obs,</fw>,</sw>');
    }
    ctx.piggyback = true; // Californium's ServerMessageDeliverer
    return ctx.reply('4.04');
  }

  /**
   * RFC 7959 §2.6: after a notification too large for one datagram (block 0 sent with M=1), the
   * client GETs the other blocks, without Observe, with Block2 num > 0. Californium serves them from
   * the block-wise status kept per (peer, URI with query); so does this.
   */
  private block2FollowUp(ctx: Ctx): boolean {
    if (ctx.req.method !== 'GET' || ctx.req.headers['Observe'] !== undefined) return false;
    const opt = ctx.options().find((o) => o.name === 'Block2');
    if (!opt || !(uintOf(opt.value) >> 4)) return false;
    const key = `${ctx.peer}|${ctx.req.url}`;
    const st = this.block2.get(key);
    if (!st || Date.now() - st.ts > BLOCK2_STATUS_LIFETIME_MS) return false;
    if (ctx.segs[0] === 'api') {
      ctx.tokenSeg = 2;
      const dev = this.store.byToken(ctx.segs[2] ?? '');
      if (dev) ctx.device = dev;
    }
    ctx.piggyback = true; // answered by Californium's BlockwiseLayer
    ctx.cf = st.cf;
    ctx.reply('2.05', st.body); // node-coap's OutMessage slices the requested block, sets Block2 and ETag
    return true;
  }

  /**
   * Writes one notification (or the registration response) on an observe stream. A body larger than
   * BLOCK_SIZE goes out as block 0 with M=1, ETag and Size2 (what Californium does); the rest is
   * served by block2FollowUp. Returns false if the stream could not take it.
   */
  private writeObserve(o: Observation, url: string, body: Buffer): boolean {
    const res = o.res;
    if (o.closed || res.writableEnded || !res.write) return false;
    const key = `${o.peer}|${url}`;
    if (body.length > BLOCK_SIZE) {
      res.setOption('Block2', Buffer.of(0x0e)); // num 0, M=1, SZX 6 (1024)
      res.setOption('ETag', etagOf(body));
      res.setOption('Size2', body.length);
      this.block2.delete(key);
      this.block2.set(key, { body, cf: o.contentFormat, ts: Date.now() });
      const now = Date.now();
      for (const [k, st] of this.block2) {
        if (this.block2.size <= MAX_BLOCK2_STATUS && now - st.ts <= BLOCK2_STATUS_LIFETIME_MS) break;
        this.block2.delete(k);
      }
      res.write(body.subarray(0, BLOCK_SIZE));
    } else {
      res.setOption('Block2', []);
      res.setOption('ETag', []);
      res.setOption('Size2', []);
      res.write(body);
    }
    return true;
  }

  // ------------------------------------------------------------------ /api/v1

  private api(ctx: Ctx, auth: Auth): void {
    const { req, segs } = ctx;
    // Redact anything in the token position before the first reply can be logged.
    if (segs.length >= 3 && !asFeature(segs[2])) ctx.tokenSeg = 2;
    if (req.method !== 'GET' && req.method !== 'POST') { ctx.piggyback = true; return ctx.reply('4.05'); }
    // Resolve X.509 first: with a DTLS session bound to a known certificate the URL token is ignored.
    let device: Device | undefined;
    if (auth.kind === 'x509' && auth.certSha3) device = this.store.byCertSha3(auth.certSha3);
    let feature: Feature | undefined;
    let id: string | undefined;
    let token: string | undefined;
    if (segs.length >= 4 && asFeature(segs[3])) {
      // /api/v1/$TOKEN/<feature>[/<id>] (the token is ignored when a certificate already identified the device)
      token = segs[2];
      feature = asFeature(segs[3]);
      id = segs[4];
    } else if (segs.length >= 3 && asFeature(segs[2])) {
      // /api/v1/<feature>[/<id>]: X.509 (DTLS) form, or provision
      feature = asFeature(segs[2]);
      id = segs[3];
    } else if (segs.includes('provision')) {
      feature = 'provision';
    }
    // Answers given before a device is known are Californium's / TB's plain exchange.respond(code)
    // (CoapDeviceAuthCallback: respond(UNAUTHORIZED)): piggybacked, no retransmission state.
    ctx.piggyback = true;
    if (!feature) return ctx.reply('4.00');
    if (feature === 'provision') {
      if (req.method !== 'POST') return ctx.reply('4.00');
      return this.provision(ctx);
    }
    if (!device && token !== undefined) device = this.store.byToken(token);
    if (!device) return ctx.reply('4.01');
    ctx.piggyback = false;
    ctx.device = device;
    if (device.protobuf) ctx.cf = CF_OCTET_STREAM;
    this.awake(device);

    const observe = req.headers['Observe'];
    if (req.method === 'GET') {
      if (feature === 'attributes') {
        if (observe === 0) return this.subscribe(ctx, 'attributes');
        if (observe === 1) return this.unsubscribe(ctx);
        return this.attributeRequest(ctx);
      }
      if (feature === 'rpc') {
        if (observe === 0) return this.subscribe(ctx, 'rpc');
        if (observe === 1) return this.unsubscribe(ctx);
        return ctx.reply('4.00');
      }
      return ctx.reply('4.00'); // GET telemetry / claim
    }
    switch (feature) {
      case 'telemetry': return this.postTelemetry(ctx);
      case 'attributes': return this.postAttributes(ctx);
      case 'claim': return this.claim(ctx);
      case 'rpc': return id !== undefined ? this.rpcReply(ctx, id) : this.clientRpc(ctx);
    }
  }

  /** The device's Protobuf profile, compiled (undefined: a JSON device). */
  private proto(dev: Device | undefined): ProtoProfile | undefined {
    return dev?.protobuf ? compileProfile(dev.protobuf) : undefined;
  }

  /**
   * A telemetry/attributes body as JSON: parsed for JSON devices; for Protobuf devices decoded with
   * the profile's schema and printed as ThingsBoard's JsonFormat printer does
   * (includingDefaultValueFields). undefined when it does not decode (4.00, logged).
   */
  private bodyJson(ctx: Ctx, feature: 'telemetry' | 'attributes'): JsonValue | undefined {
    const proto = this.proto(ctx.device);
    if (!proto) return parseJson(ctx.req.payload);
    if (!ctx.req.payload.length) return undefined;
    try {
      return proto[feature].toJson(ctx.req.payload);
    } catch (e) {
      this.opts.log(`[${ctx.device!.name}] ${feature}: payload is not a ${proto[feature].type.name} message: ${(e as Error).message}`);
      return undefined;
    }
  }

  private postTelemetry(ctx: Ctx): void {
    const json = this.bodyJson(ctx, 'telemetry');
    if (json === undefined) return ctx.reply('4.00');
    const now = Date.now();
    const entries: { ts: number; values: Record<string, JsonValue> }[] = [];
    const one = (o: JsonValue): boolean => {
      if (!isObject(o)) return false;
      if ('ts' in o && 'values' in o) {
        if (typeof o.ts !== 'number' && typeof o.ts !== 'string') return false;
        const ts = Number(o.ts);
        if (!Number.isFinite(ts) || !isObject(o.values)) return false;
        entries.push({ ts: Math.trunc(ts), values: typeValues(o.values) });
      } else {
        entries.push({ ts: now, values: typeValues(o) });
      }
      return true;
    };
    const ok = Array.isArray(json) ? json.every(one) : one(json);
    if (!ok) return ctx.reply('4.00');
    const dev = ctx.device!;
    this.store.saveTelemetry(dev.id, entries);
    this.events.emit('telemetry', { device: dev.name, deviceId: dev.id, entries });
    ctx.reply('2.01');
  }

  private postAttributes(ctx: Ctx): void {
    const json = this.bodyJson(ctx, 'attributes');
    if (!isObject(json)) return ctx.reply('4.00');
    const dev = ctx.device!;
    const values = typeValues(json);
    this.store.setClientAttributes(dev.id, values);
    this.events.emit('attributes', { device: dev.name, deviceId: dev.id, scope: 'client', values });
    ctx.reply('2.01');
  }

  private attributeRequest(ctx: Ctx): void {
    const dev = ctx.device!;
    const ck = splitKeys(ctx.query.clientKeys);
    const sk = splitKeys(ctx.query.sharedKeys);
    this.later(ctx, this.opts.responseDelayMs, () => {
      const all = this.store.attributes(dev.id);
      let client: JsonObject;
      let shared: JsonObject;
      if (!ck && !sk) {
        client = all.client;
        shared = all.shared;
      } else {
        client = pick(all.client, ck ?? []);
        shared = pick(all.shared, sk ?? []);
      }
      const body: JsonObject = {};
      if (Object.keys(client).length) body.client = client;
      if (Object.keys(shared).length) body.shared = shared;
      if (!Object.keys(body).length) return ctx.reply('4.04');
      // Protobuf profiles: TransportProtos.GetAttributeResponseMsg (reference §2)
      if (dev.protobuf) return ctx.reply('2.05', fixedMessages.attributeResponse(client, shared, Date.now()));
      ctx.reply('2.05', JSON.stringify(body));
    });
  }

  private claim(ctx: Ctx): void {
    let secretKey = '';
    let durationMs = 0;
    if (ctx.req.payload.length && ctx.device!.protobuf) {
      // TransportApiProtos.ClaimDevice
      try {
        ({ secretKey, durationMs } = fixedMessages.claim(ctx.req.payload));
      } catch {
        return ctx.reply('4.00');
      }
    } else if (ctx.req.payload.length) {
      const json = parseJson(ctx.req.payload);
      if (!isObject(json)) return ctx.reply('4.00');
      if (typeof json.secretKey === 'string') secretKey = json.secretKey;
      if (typeof json.durationMs === 'number') durationMs = json.durationMs;
    }
    const dev = ctx.device!;
    this.store.updateDevice(dev, { claim: { secretKey, expiresAt: durationMs > 0 ? Date.now() + durationMs : 0 } });
    ctx.reply('2.01');
  }

  private provision(ctx: Ctx): void {
    ctx.cf = null; // provision responses carry no Content-Format
    ctx.piggyback = true; // and may be truly piggybacked
    let json = parseJson(ctx.req.payload);
    // JSON first; on a parse failure ThingsBoard reads ProvisionDeviceRequestMsg and answers in
    // ProvisionDeviceResponseMsg.
    let proto = false;
    if (json === undefined && ctx.req.payload.length) {
      try {
        json = fixedMessages.provisionRequest(ctx.req.payload);
        proto = true;
      } catch {
        /* neither */
      }
    }
    if (!isObject(json)) return ctx.reply('4.00');
    const key = json.provisionDeviceKey;
    const secret = json.provisionDeviceSecret;
    if (typeof key !== 'string' || typeof secret !== 'string') return ctx.reply('4.00');
    // Same rules as the MQTT endpoint (store.ts provisionDevice); ThingsBoard's JSON reading
    // (JsonConverter.buildProvisionRequestMsg) needs both fields, and a missing one is 4.00 with no body.
    const reply = provisionDevice(this.store, json, () => randomBytes(15).toString('base64url').slice(0, 20));
    if (reply.status !== 'SUCCESS') {
      return ctx.reply('4.00', proto ? fixedMessages.provisionResponse(reply.status, 'ACCESS_TOKEN', '') : JSON.stringify({ errorMsg: reply.errorMsg, status: reply.status }));
    }
    const dev = reply.device;
    ctx.device = dev;
    this.opts.log(`provisioned device ${dev.name} (${reply.credentialsType === 'X509_CERTIFICATE' ? 'X.509 certificate registered' : 'access token'})`);
    if (proto) return ctx.reply('2.01', fixedMessages.provisionResponse('SUCCESS', reply.credentialsType, reply.credentialsValue));
    ctx.reply('2.01', JSON.stringify({
      credentialsValue: reply.credentialsValue,
      credentialsType: reply.credentialsType,
      status: 'SUCCESS',
    }));
  }

  // ------------------------------------------------------------------ RPC

  private clientRpc(ctx: Ctx): void {
    let json: JsonValue | undefined;
    const protoDevice = ctx.device!.protobuf !== undefined;
    if (protoDevice) {
      // Fixed TransportApiProtos.RpcRequest {method, params: string}; the profile's schema is ignored.
      try {
        const r = fixedMessages.clientRpcRequest(ctx.req.payload);
        json = { method: r.method, params: parseJson(Buffer.from(r.params)) ?? r.params };
      } catch {
        json = undefined;
      }
    } else json = parseJson(ctx.req.payload);
    // Missing method or malformed JSON: TB never answers (only the deferred empty ACK).
    if (!isObject(json) || typeof json.method !== 'string') return ctx.noResponse();
    const dev = ctx.device!;
    const method = json.method;
    const params = json.params ?? null;
    this.later(ctx, this.opts.responseDelayMs, async () => {
      let result: JsonValue | typeof TIMED_OUT;
      let timer: NodeJS.Timeout | undefined;
      const budget = this.opts.coapTimeoutMs - Math.max(0, this.opts.responseDelayMs);
      try {
        result = await Promise.race([
          Promise.resolve(this.opts.clientRpc({ device: dev, method, params })),
          new Promise<typeof TIMED_OUT>((r) => { timer = setTimeout(() => r(TIMED_OUT), budget); timer.unref(); }),
        ]);
      } catch (e) {
        result = { error: (e as Error).message };
      } finally {
        if (timer) clearTimeout(timer);
      }
      // COAP_TIMEOUT: the sync session expires silently
      if (result === TIMED_OUT) return ctx.noResponse();
      if (protoDevice) return ctx.reply('2.05', fixedMessages.clientRpcResponse(JSON.stringify(result)));
      ctx.reply('2.05', JSON.stringify(result));
    });
  }

  private rpcReply(ctx: Ctx, idStr: string): void {
    let json: JsonValue | undefined;
    const proto = this.proto(ctx.device);
    if (proto) {
      // The profile's RPC response schema; its JSON form becomes the RPC result.
      try {
        json = proto.rpcResponse.toJson(ctx.req.payload);
      } catch (e) {
        this.opts.log(`[${ctx.device!.name}] RPC reply: ${(e as Error).message}`);
      }
    } else json = parseJson(ctx.req.payload);
    if (!isObject(json)) return ctx.noResponse(); // TB: unchecked exception, no response
    const dev = ctx.device!;
    const id = Number(idStr);
    const p = this.pending.get(dev.id)?.get(id);
    if (p) {
      this.untimer(p.timer);
      this.pending.get(dev.id)!.delete(id);
      this.store.updateRpc(p.rec, { status: 'SUCCESSFUL', response: json });
      this.events.emit('rpc-reply', { device: dev.name, deviceId: dev.id, id, response: json });
      p.resolve(json);
    }
    ctx.reply('2.01'); // unknown or stale ids are accepted and dropped
  }

  /** Server-side RPC to a device; resolves with the device's reply or rejects with RpcTimeoutError. */
  sendRpc(dev: Device, r: { method: string; params?: JsonValue; timeoutMs?: number; persistent?: boolean }): Promise<{ id: number; response: JsonValue }> {
    const timeoutMs = r.timeoutMs ?? 10000;
    const rec = this.store.newRpc(dev.id, {
      method: r.method, params: r.params ?? null, persistent: r.persistent === true, expirationTime: Date.now() + timeoutMs,
    });
    return new Promise((resolve, reject) => {
      const map = this.pending.get(dev.id) ?? new Map<number, PendingRpc>();
      this.pending.set(dev.id, map);
      const timer = this.timer(() => {
        map.delete(rec.id);
        this.store.updateRpc(rec, { status: rec.status === 'QUEUED' ? 'EXPIRED' : 'TIMEOUT' });
        reject(new RpcTimeoutError());
      }, timeoutMs);
      map.set(rec.id, { rec, timer, resolve: (response) => resolve({ id: rec.id, response }), reject });
      this.pushRpc(dev.id, rec);
    });
  }

  private pushRpc(deviceId: string, rec: RpcRecord): void {
    if (![...this.observations].some((o) => o.deviceId === deviceId && o.feature === 'rpc' && !o.closed)) return;
    if (!this.downlinkAllowed(deviceId)) return; // stays pending until expiry or wake-up
    let sent = false;
    for (const o of this.observations) {
      if (o.deviceId !== deviceId || o.feature !== 'rpc' || o.closed) continue;
      this.notify(o, { id: rec.id, method: rec.method, params: rec.params });
      sent = true;
    }
    if (sent && rec.status === 'QUEUED') this.store.updateRpc(rec, { status: 'SENT' });
  }

  private sendPendingRpcs(deviceId: string): void {
    const map = this.pending.get(deviceId);
    if (!map) return;
    for (const p of map.values()) this.pushRpc(deviceId, p.rec);
  }

  // ------------------------------------------------------------------ Observe

  private subscribe(ctx: Ctx, feature: 'attributes' | 'rpc'): void {
    const { res, req } = ctx;
    const dev = ctx.device!;
    if (typeof res.write !== 'function') return ctx.reply('5.00');
    this.open.delete(res); // an observe stream has no deferred-ACK timer
    const token = req._packet.token ? req._packet.token.toString('hex') : '';
    // Re-registration (same peer, same feature): the newer relation replaces the older one.
    for (const o of [...this.observations]) {
      if (o.deviceId === dev.id && o.feature === feature && o.peer === ctx.peer) this.dropObservation(o, true);
    }
    const obs: Observation = {
      deviceId: dev.id, feature, peer: ctx.peer, token, con: ctx.con, res, url: req.url,
      contentFormat: dev.protobuf ? CF_OCTET_STREAM : typeof req.headers['Content-Format'] === 'number' ? (req.headers['Content-Format'] as number) : CF_JSON,
      closed: false,
    };
    res._counter = -1; // node-coap pre-increments: first notification carries Observe 0 like Californium
    res.on('finish', () => this.dropObservation(obs, false));
    res.on('error', () => this.dropObservation(obs, false));
    this.observations.add(obs);
    if (feature === 'attributes') {
      res.setOption('Content-Format', obs.contentFormat);
      res.statusCode = '2.05';
      const shared = this.store.attributes(dev.id).shared;
      this.writeObserve(obs, obs.url, dev.protobuf ? fixedMessages.attributeUpdate(shared, [], Date.now()) : Buffer.from(JSON.stringify(shared)));
      ctx.logged('2.05', 0);
    } else {
      res.statusCode = '2.03';
      res.write(Buffer.alloc(0));
      res.statusCode = '2.05';
      res.setOption('Content-Format', obs.contentFormat);
      ctx.logged('2.03', 0);
      this.sendPendingRpcs(dev.id);
      this.state(dev.id).rpcPushedSinceWake = true;
    }
  }

  private unsubscribe(ctx: Ctx): void {
    const token = ctx.req._packet.token ? ctx.req._packet.token.toString('hex') : '';
    for (const o of [...this.observations]) {
      if (o.peer === ctx.peer && o.token === token) this.dropObservation(o, true);
    }
    // Californium cancels the relation; the deregistering GET itself gets no 2.xx (at most an empty ACK).
    ctx.noResponse();
  }

  private dropObservation(o: Observation, end: boolean): void {
    if (o.closed) return;
    o.closed = true;
    this.observations.delete(o);
    if (end && !o.res.writableEnded) o.res.end();
  }

  /**
   * A notification body in the device's payload type. Protobuf: shared attributes as
   * AttributeUpdateNotificationMsg; server RPC as the profile's RPC request message, built from
   * {"method","requestId","params"} as ThingsBoard does. When that fails (the params pitfall:
   * object params into a string field) ThingsBoard logs, cancels the RPC subscription and sends
   * nothing: so does this (undefined).
   */
  private notificationBody(o: Observation, body: JsonValue): Buffer | undefined {
    const dev = this.store.findDevice(o.deviceId);
    const proto = this.proto(dev);
    if (!proto || !isObject(body)) return Buffer.from(JSON.stringify(body));
    if (o.feature === 'attributes') {
      const { deleted, ...updated } = body;
      return fixedMessages.attributeUpdate(updated, Array.isArray(deleted) ? deleted.map(String) : [], Date.now());
    }
    try {
      return proto.rpcRequest.fromJson({ method: body.method ?? null, requestId: body.id ?? null, params: body.params ?? null });
    } catch (e) {
      if (!(e instanceof ProtoConvertError)) throw e;
      this.opts.log(
        `[${dev?.name}] Failed to convert device RPC command to CoAP msg: ${e.message}. ` +
          `RPC observe subscription cancelled (ThingsBoard does the same; use string/primitive params or model params as a message in the RPC request schema)`,
      );
      this.dropObservation(o, true);
      return undefined;
    }
  }

  private notify(o: Observation, body: JsonValue): void {
    if (o.closed || o.res.writableEnded || !o.res.write) return;
    const payload = this.notificationBody(o, body);
    if (!payload) return;
    o.res.statusCode = '2.05';
    if (!this.writeObserve(o, o.url, payload)) return;
    const dev = this.store.findDevice(o.deviceId);
    this.emitRequest({
      ts: Date.now(), peer: o.peer, type: o.con ? 'CON' : 'NON', method: 'NOTIFY',
      path: `/api/v1/<${dev?.name}>/${o.feature}`, device: dev?.name, code: '2.05', observe: (o.res._counter ?? 0),
    });
  }

  /** Called by the admin side after shared attributes changed. */
  sharedAttributesChanged(dev: Device, updated: JsonObject, deleted: string[]): void {
    const obs = [...this.observations].filter((o) => o.deviceId === dev.id && o.feature === 'attributes');
    if (!obs.length) return;
    if (this.downlinkAllowed(dev.id)) {
      const body: JsonObject = { ...updated };
      if (deleted.length) body.deleted = deleted;
      for (const o of obs) this.notify(o, body);
      return;
    }
    const st = this.state(dev.id);
    for (const [k, v] of Object.entries(updated)) { st.queuedUpdated[k] = v; st.queuedDeleted.delete(k); }
    for (const k of deleted) { delete st.queuedUpdated[k]; st.queuedDeleted.add(k); }
    st.hasQueued = true;
    this.opts.log(`queued shared-attribute update for sleeping device ${dev.name}`);
  }

  // ------------------------------------------------------------------ PSM / DRX / eDRX

  private state(deviceId: string): ClientState {
    let st = this.states.get(deviceId);
    if (!st) {
      st = { lastUplink: 0, asleep: false, sleepTimer: null, firstEdrxDownlink: true, queuedUpdated: {}, queuedDeleted: new Set(), hasQueued: false, rpcPushedSinceWake: false };
      this.states.set(deviceId, st);
    }
    return st;
  }

  static power(dev: Device): PowerSettings {
    const p = dev.power;
    return {
      powerMode: p?.powerMode ?? 'DRX',
      psmActivityTimer: p?.psmActivityTimer || DEFAULT_PSM_ACTIVITY_TIMER,
      pagingTransmissionWindow: p?.pagingTransmissionWindow || DEFAULT_PAGING_TRANSMISSION_WINDOW,
      ...(p?.edrxCycle ? { edrxCycle: p.edrxCycle } : {}),
    };
  }

  /** clients.awake(state): every authenticated /api/v1 request. */
  private awake(dev: Device): void {
    const st = this.state(dev.id);
    const p = TbCoapService.power(dev);
    const wasAsleep = st.asleep;
    st.lastUplink = this.now();
    st.asleep = false;
    st.firstEdrxDownlink = true;
    if (st.sleepTimer) { this.untimer(st.sleepTimer); st.sleepTimer = null; }
    if (p.powerMode === 'PSM' || p.powerMode === 'E_DRX') {
      const ms = p.powerMode === 'PSM' ? p.psmActivityTimer : p.pagingTransmissionWindow;
      st.sleepTimer = this.timer(() => { st.asleep = true; st.sleepTimer = null; }, ms);
    }
    if (wasAsleep) {
      st.rpcPushedSinceWake = false;
      // sendMsgsAfterSleeping; deferred so the waking request is processed (and observations registered) first
      setImmediate(() => this.afterWake(dev.id));
    }
  }

  private afterWake(deviceId: string): void {
    if (this.closed) return;
    const st = this.state(deviceId);
    // (skipped when the waking request was the RPC observe registration, which already pushed them)
    if (!st.rpcPushedSinceWake) this.sendPendingRpcs(deviceId);
    if (st.hasQueued) {
      const obs = [...this.observations].filter((o) => o.deviceId === deviceId && o.feature === 'attributes');
      if (obs.length) {
        const body: JsonObject = { ...st.queuedUpdated };
        if (st.queuedDeleted.size) body.deleted = [...st.queuedDeleted];
        for (const o of obs) this.notify(o, body);
      }
      st.queuedUpdated = {};
      st.queuedDeleted.clear();
      st.hasQueued = false;
    }
  }

  /** isDownlinkAllowed (DefaultCoapClientContext). Consumes the single eDRX downlink when used. */
  private downlinkAllowed(deviceId: string): boolean {
    const dev = this.store.findDevice(deviceId);
    if (!dev) return false;
    const p = TbCoapService.power(dev);
    const st = this.state(deviceId);
    const since = this.now() - st.lastUplink;
    if (p.powerMode === 'PSM') return !st.asleep && since <= p.psmActivityTimer;
    if (p.powerMode === 'E_DRX') {
      if (!st.asleep && since <= p.pagingTransmissionWindow) return true;
      if (st.firstEdrxDownlink) { st.firstEdrxDownlink = false; return true; }
      return false;
    }
    return true;
  }

  /** Power mode changed by the admin: restart the sleep timer from the last uplink. */
  powerChanged(dev: Device): void {
    const st = this.state(dev.id);
    if (st.sleepTimer) { this.untimer(st.sleepTimer); st.sleepTimer = null; }
    const p = TbCoapService.power(dev);
    if (p.powerMode === 'DRX') { st.asleep = false; return; }
    const ms = p.powerMode === 'PSM' ? p.psmActivityTimer : p.pagingTransmissionWindow;
    const left = st.lastUplink + ms - this.now();
    if (left <= 0) { st.asleep = true; return; }
    st.sleepTimer = this.timer(() => { st.asleep = true; st.sleepTimer = null; }, left);
  }

  isAsleep(dev: Device): boolean { return this.state(dev.id).asleep; }

  /** PSM clock: the device's virtual clock when given (opts.clock), else wall time. */
  private now(): number { return this.opts.clock ? this.opts.clock.now() : Date.now(); }
  private timer(fn: () => void, ms: number): unknown {
    if (this.opts.clock) return this.opts.clock.setTimer(fn, ms);
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }
  private untimer(h: unknown): void {
    if (this.opts.clock) this.opts.clock.clearTimer(h);
    else clearTimeout(h as NodeJS.Timeout);
  }

  // ------------------------------------------------------------------ OTA (/fw, /sw)

  private ota(ctx: Ctx, type: 'fw' | 'sw'): void {
    const { req, segs } = ctx;
    ctx.tokenSeg = 1;
    if (req.method !== 'GET') return ctx.reply('4.05');
    ctx.cf = null;
    // OtaPackageTransportResource calls exchange.accept() first: empty ACK, then a separate response.
    if (this.opts.conResponses === 'thingsboard') ctx.acceptNow();
    const dev = segs[1] !== undefined ? this.store.byToken(segs[1]) : undefined;
    if (!dev) return ctx.reply('4.01');
    ctx.device = dev;
    const pkg: OtaPackage | undefined = this.store.ota(dev.id, type);
    if (!pkg) return ctx.reply('4.04');
    const q = ctx.query;
    if ((q.title !== undefined && q.title !== pkg.title) || (q.version !== undefined && q.version !== pkg.version)) {
      return ctx.reply('4.00');
    }
    const data = Buffer.from(pkg.data, 'base64');
    const size = q.size !== undefined ? Number(q.size) : 0;
    if (!size || !Number.isFinite(size) || size <= 0) return ctx.reply('2.05', data);
    const chunk = q.chunk !== undefined ? Number(q.chunk) : 0;
    const part = data.subarray(size * chunk, size * (chunk + 1));
    if (!part.length) return ctx.noResponse(); // past the end: TB sends nothing
    ctx.reply('2.05', part);
  }

  // ------------------------------------------------------------------ helpers

  /** Runs fn after delayMs; if that exceeds COAP_TIMEOUT the sync session expires and nothing is sent. */
  private later(ctx: Ctx, delayMs: number, fn: () => void | Promise<void>): void {
    if (delayMs <= 0) { void fn(); return; }
    if (delayMs >= this.opts.coapTimeoutMs) { ctx.noResponse(); return; }
    const t = setTimeout(() => { if (!this.closed) void fn(); }, delayMs);
    t.unref();
  }

  emitRequest(e: RequestEvent): void {
    this.events.emit('request', e);
    const obs = e.observe !== undefined ? ` obs=${e.observe}` : '';
    this.opts.log(`${new Date(e.ts).toISOString()} ${e.peer} ${e.type} ${e.method} ${e.path} -> ${e.code}${obs}${e.device ? ` [${e.device}]` : ''}`);
  }

  close(): void {
    this.closed = true;
    for (const st of this.states.values()) if (st.sleepTimer) this.untimer(st.sleepTimer);
    for (const map of this.pending.values()) {
      for (const p of map.values()) { this.untimer(p.timer); p.reject(new Error('server closed')); }
    }
    this.pending.clear();
    for (const o of [...this.observations]) this.dropObservation(o, false);
    this.block2.clear();
    for (const res of this.open) {
      if (res._ackTimer) { clearTimeout(res._ackTimer); res._ackTimer = null; }
    }
    this.open.clear();
  }
}

/** Path segments a log may show as they are (anything else might be a token). */
const SAFE_SEGMENT = /^(api|v\d|attributes|telemetry|rpc|claim|provision|fw|sw|\.well-known|core|\d{1,10})$/i;
const SAFE_QUERY = /^(title|version|size|chunk|clientKeys|sharedKeys)$/;

/** One request in flight: how to answer it and how to log it. */
class Ctx {
  segs: string[] = [];
  query: Record<string, string> = {};
  device?: Device;
  tokenSeg = -1;
  /** Content-Format for the reply; null = none. JSON profiles echo the request's format, else 50. */
  cf: number | null;
  piggyback = false;
  private done = false;

  constructor(readonly svc: TbCoapService, readonly req: CoapReq, readonly res: CoapRes, readonly peer: string, readonly con: boolean) {
    const rcf = req.headers['Content-Format'];
    this.cf = typeof rcf === 'number' ? rcf : CF_JSON;
    svc.open.add(res);
  }

  /** The request's raw options (node-coap IncomingMessage.options). */
  options(): { name: string; value: Buffer }[] {
    return (this.req as unknown as { options?: { name: string; value: Buffer }[] }).options ?? [];
  }

  /**
   * The path for logs and 'request' events: the token position shows <device> or <unknown token>,
   * and every other segment that is not a known word of the API (or a number) shows ***, whatever
   * the form (/api/v2/T/.., /API/v1/T, /api/v1/telemetry/T); query values only for known names.
   */
  safePath(): string {
    const [p, q] = this.req.url.split('?', 2);
    const segs = p.split('/').filter((s) => s.length > 0);
    for (let i = 0; i < segs.length; i++) {
      if (i === this.tokenSeg) segs[i] = this.device ? `<${this.device.name}>` : '<unknown token>';
      else if (!SAFE_SEGMENT.test(segs[i])) segs[i] = '***';
    }
    let out = '/' + segs.join('/');
    if (q) out += '?' + q.split('&').map((kv) => (SAFE_QUERY.test(kv.split('=', 1)[0]) ? kv : `${kv.split('=', 1)[0].slice(0, 32)}=***`)).join('&');
    return out;
  }

  logged(code: string, observe?: number): void {
    this.svc.emitRequest({
      ts: Date.now(), peer: this.peer, type: this.con ? 'CON' : 'NON', method: this.req.method,
      path: this.safePath(), device: this.device?.name, code, ...(observe !== undefined ? { observe } : {}),
    });
  }

  /** TB's exchange.accept(): empty ACK now, the response follows as a separate CON. */
  acceptNow(): void {
    const res = this.res;
    if (!this.con || !res._ackTimer || !res._send || !res._packet) return;
    this.svc.open.delete(res);
    clearTimeout(res._ackTimer);
    res._ackTimer = null;
    res._send(res, { messageId: this.req._packet.messageId, code: '0.00', options: [], confirmable: false, ack: true, reset: false });
    res._packet.confirmable = true;
    res._packet.ack = false;
    delete res._packet.messageId;
  }

  /** Answer CON requests the way TB does when the result is ready inside the piggyback window. */
  private tbTiming(): void {
    const res = this.res;
    if (!this.con || this.piggyback || this.svc.opts.conResponses !== 'thingsboard') return;
    if (!res._ackTimer || !res._packet) return; // already past the window (empty ACK sent) or not node-coap
    clearTimeout(res._ackTimer);
    res._ackTimer = null;
    res._packet.confirmable = true;
    res._packet.ack = false;
    delete res._packet.messageId;
  }

  /** RFC 7967 No-Response, which Californium honours: 2 suppresses 2.xx, 8 4.xx, 16 5.xx. */
  private suppressed(code: string): boolean {
    const opts = (this.req as unknown as { options?: { name: string; value: Buffer }[] }).options;
    const opt = opts?.find((o) => o.name === '258' || o.name === 'No-Response');
    if (!opt) return false;
    const v = opt.value.length ? opt.value.readUIntBE(0, Math.min(opt.value.length, 4)) : 0;
    const cls = Number(code.split('.')[0]);
    const bit = cls === 2 ? 2 : cls === 4 ? 8 : cls === 5 ? 16 : 0;
    return (v & bit) !== 0;
  }

  reply(code: string, payload?: string | Buffer): void {
    if (this.done) return;
    if (this.suppressed(code)) {
      this.noResponse();
      return;
    }
    this.done = true;
    this.svc.open.delete(this.res);
    this.tbTiming();
    this.res.statusCode = code;
    if (payload !== undefined && this.cf !== null) this.res.setOption('Content-Format', this.cf);
    this.res.end(payload === undefined ? undefined : Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
    this.logged(code);
  }

  /** No CoAP response at all (node-coap still sends the deferred empty ACK for CON). */
  noResponse(): void {
    if (this.done) return;
    this.done = true;
    // forget it once node-coap's deferred empty ACK has gone out
    setTimeout(() => this.svc.open.delete(this.res), this.svc.opts.piggybackTimeoutMs + 100).unref();
    this.logged('(no response)');
  }
}

// ------------------------------------------------------------------ JSON helpers

function asFeature(s: string | undefined): Feature | undefined {
  if (!s) return undefined;
  const f = s.toLowerCase() as Feature;
  return FEATURES.includes(f) ? f : undefined;
}

function parseQuery(q: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of q.split('&')) {
    if (!part) continue;
    const i = part.indexOf('=');
    const k = i < 0 ? part : part.slice(0, i);
    const v = i < 0 ? '' : part.slice(i + 1);
    out[safeDecode(k)] = safeDecode(v);
  }
  return out;
}

function safeDecode(s: string): string {
  try { return decodeURIComponent(s); } catch { return s; }
}

function splitKeys(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const keys = v.split(',').map((s) => s.trim()).filter(Boolean);
  return keys.length ? keys : undefined;
}

function pick(o: JsonObject, keys: string[]): JsonObject {
  const out: JsonObject = {};
  for (const k of keys) if (k in o) out[k] = o[k];
  return out;
}

/**
 * A device payload as ThingsBoard reads it: Gson, lenient (json.ts), nesting bounded at 255 and the
 * body at MAX_JSON_BODY. undefined for an empty, oversized or unparseable body (the caller answers
 * 4.00, or nothing where TB answers nothing).
 */
export function parseJson(buf: Buffer | undefined): JsonValue | undefined {
  if (!buf || !buf.length || buf.length > MAX_JSON_BODY) return undefined;
  try { return parseLenientJson(buf.toString('utf8')); } catch { return undefined; }
}

function uintOf(value: Buffer): number {
  let v = 0;
  for (const b of value) v = v * 256 + b;
  return v;
}

/** node-coap's ETag for a block-wise body (XOR of 2-byte words), so block 0 and the rest agree. */
function etagOf(payload: Buffer): Buffer {
  const id = Buffer.of(0, 0);
  for (let i = 0; i < payload.length; i += 2) {
    id[0] ^= payload[i];
    id[1] ^= payload[i + 1] ?? 0;
  }
  return id;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const INT_RE = /^-?\d+$/;
const DEC_RE = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * JsonConverter typing with JSON_TYPE_CAST_ENABLED=true: numeric-looking strings become numbers
 * (integers beyond 64-bit stay strings), nulls are skipped, objects/arrays kept as JSON.
 */
export function typeValues(o: JsonObject): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === null) continue;
    if (typeof v === 'string') {
      const s = v.trim();
      if (INT_RE.test(s)) {
        const big = BigInt(s);
        out[k] = big <= 9223372036854775807n && big >= -9223372036854775808n ? Number(s) : v;
      } else if (DEC_RE.test(s)) {
        out[k] = Number(s);
      } else {
        out[k] = v;
      }
      continue;
    }
    out[k] = v;
  }
  return out;
}
