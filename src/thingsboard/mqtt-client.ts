/*
 * ThingsBoard device API over MQTT 3.1.1 (reference thingsboard-mqtt.md §1), with the same public
 * surface as the CoAP ThingsBoardClient (client.ts) so the device app can use either:
 * sendTelemetry, sendAttributes, requestAttributes, subscribeAttributes, subscribeRpc, replyRpc,
 * callRpc, claim, provision, stopped/halt/resume, retryAfter.
 *
 * - The access token is the MQTT user name (never logged); X.509 devices send none (the TLS
 *   stream carries the certificate). CONNACK 5 (4) stops the client like CoAP's 4.01.
 * - Uplinks are QoS 1 and resolve at the PUBACK. PUBACK means "queued by ThingsBoard", and
 *   ThingsBoard disconnects instead of refusing, so a reconnect re-sends (DUP) what was in flight;
 *   after `responseTimeoutMs` without a PUBACK the message is dropped from the MQTT client and
 *   the promise rejects with TbError('timeout'): the caller (the app's queue) owns the replay.
 * - Attribute requests carry comma-separated key strings (a JSON array makes ThingsBoard
 *   disconnect); responses and client-RPC answers are routed by topic, with or without a
 *   subscription (ThingsBoard sends them either way).
 * - Subscribing does not push the current shared attributes on MQTT (it does on CoAP Observe), so
 *   the first update of subscribeAttributes is a requested snapshot, after the SUBACK and again
 *   after every reconnect's re-subscription.
 * - Provisioning opens its own short connection with user name "provision".
 * - Firmware chunks (requestFirmwareChunk): PUBLISH v2/fw/request/{reqId}/chunk/{n} with the
 *   chunk size, answer on v2/fw/response/{reqId}/chunk/{n} (zero-length past the end) or a status
 *   name on v2/fw/error, after which ThingsBoard disconnects. One reqId per download (title,
 *   version, chunk size); ThingsBoard caches the package per reqId for the session. The size is
 *   sent with every request, never left to the session's memory: an empty payload on a session
 *   that does not know the reqId (after a reconnect) would get the whole package in one PUBLISH.
 *   The two filters are subscribed at QoS 0 (no PUBACK per chunk; ThingsBoard never resends a
 *   downlink anyway) at the first request; the MQTT client subscribes again after each CONNACK.
 */
import { AUTH_FAILURES } from '../dtls/engine';
import { MqttClient } from '../mqtt/client';
import type { MqttControlMessage, MqttReconnectOptions } from '../mqtt/client';
import type { MqttError } from '../mqtt/errors';
import { MqttOp } from '../mqtt/codec';
import type { MqttPacket } from '../mqtt/codec';
import type { Clock, Log, Random, StreamFactory, TimerHandle } from '../platform/types';
import { silentLog } from '../platform/types';
import type { Credentials, RpcHandler, TbSubscription, ThingsBoardClient } from './client';
import { answerRpc } from './client';
import { TbError } from './errors';
import type { AttributeSnapshot, AttributeUpdate, PayloadCodec, ProvisionRequest, ProvisionResult, RpcRequest, TbObject, TbValue, TelemetryRecord } from './payload';
import { jsonCodec, PayloadError } from './payload';
import { encodeUtf8 } from '../coap/utf8';
import type { FirmwareChunkRequest, ThingsBoardDeviceApi } from './api';

export type { ThingsBoardDeviceApi } from './api';

export const MqttTopics = Object.freeze({
  telemetry: 'v1/devices/me/telemetry',
  attributes: 'v1/devices/me/attributes',
  attributeRequest: 'v1/devices/me/attributes/request/',
  attributeResponse: 'v1/devices/me/attributes/response/',
  rpcRequest: 'v1/devices/me/rpc/request/',
  rpcResponse: 'v1/devices/me/rpc/response/',
  claim: 'v1/devices/me/claim',
  provisionRequest: '/provision/request',
  provisionResponse: '/provision/response',
  /** v2/fw/request/{reqId}/chunk/{n}, payload the chunk size in ASCII decimal (reference §1.9). */
  fwRequest: 'v2/fw/request/',
  /** v2/fw/response/{reqId}/chunk/{n}: the chunk's bytes, zero-length past the end. */
  fwResponse: 'v2/fw/response/',
  /** The filters exactly as ThingsBoard's processSubscribe accepts them. */
  fwResponses: 'v2/fw/response/+/chunk/+',
  fwError: 'v2/fw/error',
});

/** Topic, packet id and length bytes a firmware chunk PUBLISH adds to its payload, at most. */
const FW_PUBLISH_OVERHEAD = 64;

export interface MqttThingsBoardOptions {
  /** TCP (mqtt://) or TLS over TCP (mqtts://). */
  stream: StreamFactory;
  host: string;
  port?: number;
  credentials: Credentials;
  clock: Clock;
  random?: Random;
  log?: Log;
  codec?: PayloadCodec;
  /** MQTT client id; any string (ThingsBoard ignores it for token devices). Never "provision". */
  clientId?: string;
  /** Keep-alive, ms. Default 60 s (ThingsBoard closes idle sessions after 600 s). */
  keepAliveMs?: number;
  /** Wait for a PUBACK, an attribute response or a client-RPC answer. Default 30 s. */
  responseTimeoutMs?: number;
  reconnect?: MqttReconnectOptions;
  maxPacketSize?: number;
  maxInflight?: number;
  tap?: (direction: 'out' | 'in', packet: MqttPacket, bytes: number) => void;
}

interface Waiter {
  resolve: (v: Uint8Array) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
  /** The request's QoS 1 packet id (response waiters). */
  packetId?: number;
}

interface Sub {
  topic: string;
  registered: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  promise: Promise<void>;
  ended: boolean;
  onEnd: ((reason?: Error) => void) | undefined;
  onMessage: (topic: string, payload: Uint8Array) => void;
  /** After each (re-)subscription is acknowledged. */
  onSubscribed?: () => void;
}

export class MqttThingsBoardClient implements ThingsBoardDeviceApi {
  readonly codec: PayloadCodec;
  #o: MqttThingsBoardOptions;
  #clock: Clock;
  #log: Log;
  #credentials: Credentials;
  #mqtt: MqttClient | undefined;
  #stoppedReason: TbError | undefined;
  #timeout: number;
  /** PUBACK waiters by packet id. */
  #pubacks = new Map<number, Waiter>();
  /** Attribute-response and client-RPC waiters by topic. */
  #responses = new Map<string, Waiter>();
  #subs: Sub[] = [];
  #requestId = 0;

  /** MQTT serves firmware to any authenticated session (token or X.509). */
  readonly firmwareUnavailable: string | undefined = undefined;

  /** The download the current reqId belongs to (title, version, chunk size). */
  #fwKey = '';
  #fwRequestId = 0;
  /** The MQTT client the v2/fw filters were given to (it re-subscribes them after every CONNACK). */
  #fwSubscribedOn: MqttClient | undefined;

  /**
   * Largest firmware chunk per PUBLISH: what the receive buffer (maxPacketSize, default 16 KiB)
   * holds after the topic, less ThingsBoard's 64 KiB limit; the OTA agent asks for at most 1024.
   */
  get maxFirmwareChunk(): number {
    return Math.min(this.#o.maxPacketSize ?? 16384, 65536) - FW_PUBLISH_OVERHEAD;
  }

  /**
   * v2/fw/request/{reqId}/chunk/{n} -> v2/fw/response/{reqId}/chunk/{n} (reference
   * thingsboard-mqtt.md §1.9): the chunk's bytes (empty past the end), undefined without an answer
   * within req.timeoutMs, TbError for a status on v2/fw/error (NOT_FOUND -> not-found;
   * PAYLOAD_TOO_LARGE, FAILURE -> bad-request).
   */
  async requestFirmwareChunk(req: FirmwareChunkRequest): Promise<Uint8Array | undefined> {
    if (!(req.size >= 1 && req.size <= this.maxFirmwareChunk && Math.floor(req.size) === req.size)) {
      throw new TbError('bad-request', `firmware chunk size ${req.size}: this MQTT client takes 1..${this.maxFirmwareChunk} bytes per chunk (maxPacketSize)`);
    }
    if (!(req.chunk >= 0 && Math.floor(req.chunk) === req.chunk && req.chunk <= 0x7fffffff)) throw new TbError('bad-request', `firmware chunk index ${req.chunk}`);
    this.#checkStopped('firmware chunk request');
    const key = `${req.title}\n${req.version}\n${req.size}`;
    if (key !== this.#fwKey) {
      this.#fwKey = key;
      this.#fwRequestId = this.#fwRequestId >= 0x7fffffff ? 1 : this.#fwRequestId + 1;
    }
    const mqtt = this.#client();
    if (this.#fwSubscribedOn !== mqtt) {
      try {
        mqtt.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: MqttTopics.fwResponses, QoS: 0 }, { topic: MqttTopics.fwError, QoS: 0 }] });
        this.#fwSubscribedOn = mqtt;
      } catch (e) {
        // Not fatal: ThingsBoard sends the chunk (at QoS 1) without a subscription too.
        this.#log.warn(`firmware: subscribing to ${MqttTopics.fwResponses} failed: ${(e as Error).message}`);
      }
    }
    const id = this.#fwRequestId;
    try {
      return await this.#request(
        `firmware chunk ${req.chunk}`,
        `${MqttTopics.fwRequest}${id}/chunk/${req.chunk}`,
        `${MqttTopics.fwResponse}${id}/chunk/${req.chunk}`,
        encodeUtf8(String(req.size)),
        req.timeoutMs,
      );
    } catch (e) {
      if (e instanceof TbError && e.code === 'timeout') return undefined;
      throw e;
    }
  }

  /** A status name on v2/fw/error: every firmware request waiting fails with it (ThingsBoard disconnects next). */
  #onFirmwareError(payload: Uint8Array): void {
    let status = '';
    for (let i = 0; i < payload.length && i < 40; i++) {
      const c = payload[i]!;
      status += (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f ? String.fromCharCode(c) : '?';
    }
    const code = status === 'NOT_FOUND' ? 'not-found' : status === 'PAYLOAD_TOO_LARGE' || status === 'FAILURE' ? 'bad-request' : 'server-error';
    const detail =
      status === 'NOT_FOUND'
        ? 'no firmware assigned to this device'
        : status === 'FAILURE'
          ? 'the package cannot be served over MQTT (an external fw_url package?)'
          : status === 'PAYLOAD_TOO_LARGE'
            ? "chunk size over the server's MQTT payload limit"
            : 'refused';
    let n = 0;
    for (const [topic, w] of [...this.#responses]) {
      if (!topic.startsWith(MqttTopics.fwResponse)) continue;
      this.#responses.delete(topic);
      this.#clock.clearTimer(w.timer);
      // ThingsBoard never acknowledges a refused request: sent again after the reconnect it would
      // be refused again, and the connection closed again, for ever.
      if (w.packetId !== undefined && this.#mqtt?.abandon(w.packetId)) this.#pubacks.delete(w.packetId);
      w.reject(new TbError(code, `firmware chunk: v2/fw/error ${status || '(empty)'}: ${detail}`));
      n++;
    }
    if (!n) this.#log.warn(`firmware: v2/fw/error ${status || '(empty)'} with no request waiting`);
  }

  constructor(options: MqttThingsBoardOptions) {
    this.#o = options;
    this.#clock = options.clock;
    this.#log = options.log ?? silentLog;
    this.#credentials = options.credentials;
    this.codec = options.codec ?? jsonCodec;
    this.#timeout = options.responseTimeoutMs ?? 30000;
    if (options.clientId === 'provision') throw new TbError('protocol', 'client id "provision" opens a provisioning session on ThingsBoard');
  }

  /** The underlying MQTT client (created at the first call), for tests and the live view. */
  get mqtt(): MqttClient | undefined {
    return this.#mqtt;
  }

  get stopped(): TbError | undefined {
    return this.#stoppedReason;
  }

  /** While the MQTT connection is down and waiting to reconnect: when the next attempt is due. */
  get retryAfter(): number {
    const at = this.#mqtt?.reconnectAt ?? 0;
    return at > this.#clock.now() ? at : 0;
  }

  halt(reason: TbError): void {
    if (!this.#stoppedReason) this.#log.error(`${reason.message}; sending stopped`);
    this.#stoppedReason = reason;
    this.#shutdown(reason);
  }

  resume(credentials?: Credentials): void {
    if (credentials) {
      this.#credentials = credentials;
      // The next call connects with the new user name; what waited on the old connection fails now.
      this.#shutdown(new TbError('timeout', 'connection replaced: new credentials'), false);
    }
    this.#stoppedReason = undefined;
    if (!this.#mqtt && this.#subs.some((s) => !s.ended)) this.#client();
  }

  /** Disconnects (DISCONNECT sent) and rejects what is pending; a later call connects again. */
  close(): void {
    this.#shutdown(new TbError('stopped', 'MQTT client closed'));
  }

  async sendTelemetry(records: TelemetryRecord | TelemetryRecord[]): Promise<void> {
    await this.#publish('telemetry', MqttTopics.telemetry, this.codec.encodeTelemetry(records));
  }

  async sendAttributes(attributes: TbObject): Promise<void> {
    await this.#publish('attributes', MqttTopics.attributes, this.codec.encodeAttributes(attributes));
  }

  /** Attribute request; no keys = all client and shared attributes. */
  async requestAttributes(keys: { clientKeys?: string[]; sharedKeys?: string[] } = {}): Promise<AttributeSnapshot> {
    // Comma-separated strings: ThingsBoard disconnects on a JSON array of more than one key; a
    // Protobuf profile sends them in TransportApiProtos.AttributesRequest (the profile's schemas
    // are not used for requests).
    const body = this.codec.encodeAttributeRequest(keys.clientKeys?.join(',') ?? '', keys.sharedKeys?.join(',') ?? '');
    const id = this.#nextRequestId();
    const response = await this.#request('attribute request', `${MqttTopics.attributeRequest}${id}`, `${MqttTopics.attributeResponse}${id}`, body);
    return this.codec.decodeAttributeSnapshot(response);
  }

  subscribeAttributes(onUpdate: (update: AttributeUpdate) => void, onEnd?: (reason?: Error) => void): TbSubscription {
    const sub = this.#subscribe('attribute subscription', MqttTopics.attributes, onEnd, (_topic, payload) => {
      let update: AttributeUpdate;
      try {
        update = this.codec.decodeAttributeUpdate(payload);
      } catch (e) {
        this.#log.warn(`attribute update ignored: ${(e as Error).message}`);
        return;
      }
      onUpdate(update);
    });
    // MQTT pushes no snapshot on subscription: ask for the shared attributes after every SUBACK.
    sub.onSubscribed = () => {
      this.requestAttributes().then(
        (snapshot) => {
          if (!sub.ended) onUpdate({ shared: snapshot.shared, deleted: [] });
        },
        (e: Error) => this.#log.warn(`shared-attribute snapshot failed: ${e.message}`),
      );
    };
    return this.#handle(sub);
  }

  subscribeRpc(handler: RpcHandler, onEnd?: (reason?: Error) => void): TbSubscription {
    const sub = this.#subscribe('RPC subscription', `${MqttTopics.rpcRequest}+`, onEnd, (topic, payload) => {
      // The id is in the topic only, and grows past 65535 (int32 on the server).
      const idText = topic.slice(MqttTopics.rpcRequest.length);
      const id = Number(idText);
      if (!/^\d{1,10}$/.test(idText)) return this.#log.warn('RPC request with a non-numeric id ignored');
      let request: RpcRequest;
      try {
        if (this.codec.name !== 'json') {
          // Protobuf profiles: the codec's RPC message (its requestId is the topic's id anyway).
          request = { ...this.codec.decodeRpcRequest(payload), id };
        } else {
          // JSON over MQTT carries no id in the body (CoAP's does): {"method", "params"}.
          const v = this.codec.decodeValue(payload);
          if (!v || typeof v !== 'object' || Array.isArray(v) || typeof v.method !== 'string') throw new PayloadError('RPC request: expected {"method":string,...}');
          request = { id, method: v.method, params: v.params ?? null };
        }
      } catch (e) {
        this.#log.warn(`RPC request ${id} ignored: ${(e as Error).message}`);
        return;
      }
      void answerRpc(this, handler, request, this.#log);
    });
    return this.#handle(sub);
  }

  async replyRpc(id: number, result: TbValue): Promise<void> {
    await this.#publish('RPC reply', `${MqttTopics.rpcResponse}${id}`, this.codec.encodeRpcReply(result));
  }

  /** Client-side RPC: the rule chain's answer ({"error":"timeout"} from ThingsBoard after 60 s). */
  async callRpc(method: string, params: TbValue = {}): Promise<TbValue> {
    const id = this.#nextRequestId();
    const response = await this.#request('client RPC', `${MqttTopics.rpcRequest}${id}`, `${MqttTopics.rpcResponse}${id}`, this.codec.encodeRpcCall(method, params));
    return response.length ? this.codec.decodeRpcResponse(response) : null;
  }

  async claim(secretKey?: string, durationMs?: number): Promise<void> {
    await this.#publish('claim', MqttTopics.claim, this.codec.encodeClaim(secretKey, durationMs));
  }

  /**
   * Device provisioning over its own connection (user name "provision", no credentials). Resolves
   * with the new credentials; NOT_FOUND / FAILURE rejects with the server's errorMsg.
   */
  async provision(request: ProvisionRequest): Promise<ProvisionResult> {
    const o = this.#o;
    const body = this.codec.encodeProvisionRequest(request);
    const payload = await new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const finish = (e: Error | undefined, p?: Uint8Array) => {
        if (done) return;
        done = true;
        this.#clock.clearTimer(timer);
        client.close();
        if (e) reject(e);
        else resolve(p!);
      };
      const timer = this.#clock.setTimer(() => finish(new TbError('timeout', 'provision: no response from server')), this.#timeout);
      const client: MqttClient = new MqttClient({
        socket: o.stream,
        host: o.host,
        ...(o.port !== undefined ? { port: o.port } : {}),
        id: 'provision',
        user: 'provision',
        clock: this.#clock,
        log: this.#log,
        reconnect: false,
        onReadable: (_n, info) => {
          const p = client.readBytes();
          if (info.topic === MqttTopics.provisionResponse && p) finish(undefined, p);
        },
        onControl: (op) => {
          if (op !== MqttOp.CONNACK) return;
          client.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: MqttTopics.provisionResponse, QoS: 1 }] });
          client.write(body, { topic: MqttTopics.provisionRequest, QoS: 1 });
        },
        onError: (e) => finish(new TbError(e.code === 'timeout' ? 'timeout' : 'protocol', `provision: ${e.message}`)),
      });
    });
    let obj: TbObject = {};
    try {
      obj = this.codec.decodeProvisionResponse(payload);
    } catch {
      /* undecodable: reported below as no status */
    }
    if (obj.status === 'SUCCESS' && typeof obj.credentialsValue === 'string') {
      return { credentialsType: String(obj.credentialsType ?? 'ACCESS_TOKEN'), credentialsValue: obj.credentialsValue };
    }
    throw new TbError('bad-request', `provision: ${String(obj.status ?? 'no status')}${typeof obj.errorMsg === 'string' ? `: ${obj.errorMsg}` : ''}`);
  }

  // ------------------------------------------------------------------------------ internals

  #client(): MqttClient {
    if (this.#mqtt) return this.#mqtt;
    const o = this.#o;
    const c = this.#credentials;
    const mqtt = new MqttClient({
      socket: o.stream,
      host: o.host,
      ...(o.port !== undefined ? { port: o.port } : {}),
      id: o.clientId ?? '',
      ...(c.kind === 'token' ? { user: c.token } : {}),
      keepAlive: o.keepAliveMs ?? 60000,
      clock: this.#clock,
      ...(o.random ? { random: o.random } : {}),
      log: this.#log,
      ...(o.reconnect ? { reconnect: o.reconnect } : {}),
      ...(o.maxPacketSize ? { maxPacketSize: o.maxPacketSize } : {}),
      ...(o.maxInflight ? { maxInflight: o.maxInflight } : {}),
      ...(o.tap ? { tap: o.tap } : {}),
      onReadable: (_n, info) => {
        const payload = mqtt.readBytes();
        if (payload) this.#onMessage(info.topic, payload);
      },
      onControl: (op, msg) => this.#onControl(op, msg),
      onError: (e) => this.#onError(e),
    });
    this.#mqtt = mqtt;
    for (const s of this.#subs) if (!s.ended) mqtt.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: s.topic, QoS: 1 }] });
    return mqtt;
  }

  #checkStopped(feature: string): void {
    if (this.#stoppedReason) throw new TbError('stopped', `${feature} not sent: stopped after ${this.#stoppedReason.message}`);
  }

  #write(feature: string, topic: string, payload: Uint8Array): number {
    try {
      return this.#client().write(payload, { topic, QoS: 1 });
    } catch (e) {
      const err = e as MqttError;
      if (err.code === 'overflow') throw new TbError('timeout', `${feature}: ${err.message}`);
      if (err.code === 'too-large') throw new TbError('bad-request', `${feature}: ${err.message}`);
      throw new TbError('stopped', `${feature} not sent: ${err.message}`);
    }
  }

  /** QoS 1 PUBLISH; resolves at its PUBACK. */
  #publish(feature: string, topic: string, payload: Uint8Array): Promise<void> {
    this.#checkStopped(feature);
    const id = this.#write(feature, topic, payload);
    return new Promise<void>((resolve, reject) => {
      const timer = this.#clock.setTimer(() => {
        this.#pubacks.delete(id);
        this.#mqtt?.abandon(id);
        reject(new TbError('timeout', `${feature}: no PUBACK from server`));
      }, this.#timeout);
      this.#pubacks.set(id, { resolve: () => resolve(), reject, timer });
    });
  }

  /** PUBLISH to `topic`, then wait for a PUBLISH on `responseTopic`. */
  #request(feature: string, topic: string, responseTopic: string, payload: Uint8Array, timeoutMs = this.#timeout): Promise<Uint8Array> {
    this.#checkStopped(feature);
    // One waiter per response topic: an earlier request for the same answer gives up now.
    const earlier = this.#responses.get(responseTopic);
    if (earlier) {
      this.#responses.delete(responseTopic);
      this.#clock.clearTimer(earlier.timer);
      earlier.reject(new TbError('timeout', `${feature}: asked again`));
    }
    const id = this.#write(feature, topic, payload);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = this.#clock.setTimer(() => {
        this.#responses.delete(responseTopic);
        if (this.#mqtt?.abandon(id)) this.#pubacks.delete(id);
        reject(new TbError('timeout', `${feature}: no response from server`));
      }, timeoutMs);
      this.#responses.set(responseTopic, { resolve, reject, timer, packetId: id });
    });
  }

  #nextRequestId(): number {
    this.#requestId = this.#requestId >= 0x7fffffff ? 1 : this.#requestId + 1;
    return this.#requestId;
  }

  #subscribe(feature: string, topic: string, onEnd: ((reason?: Error) => void) | undefined, onMessage: Sub['onMessage']): Sub {
    this.#checkStopped(feature);
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    const sub: Sub = { topic, registered: false, resolve, reject, promise, ended: false, onEnd, onMessage };
    this.#subs = this.#subs.filter((s) => s.topic !== topic || s.ended);
    this.#subs.push(sub);
    const existed = this.#mqtt !== undefined;
    const mqtt = this.#client(); // a new client subscribes to every live subscription itself
    try {
      if (existed) mqtt.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic, QoS: 1 }] });
    } catch (e) {
      this.#endSub(sub, new TbError('protocol', `${feature}: ${(e as Error).message}`));
    }
    return sub;
  }

  #handle(sub: Sub): TbSubscription {
    return {
      get registered() {
        return sub.promise;
      },
      get active() {
        return !sub.ended;
      },
      // MQTT re-subscribes by itself after every reconnect; a reregister asks for a fresh snapshot.
      reregister: async () => {
        await sub.promise;
        sub.onSubscribed?.();
      },
      cancel: async () => {
        if (sub.ended) return;
        sub.ended = true;
        this.#subs = this.#subs.filter((s) => s !== sub);
        try {
          this.#mqtt?.write(undefined, { operation: MqttOp.UNSUBSCRIBE, items: [{ topic: sub.topic }] });
        } catch {
          /* closed */
        }
      },
    };
  }

  #endSub(sub: Sub, reason: Error): void {
    if (sub.ended) return;
    sub.ended = true;
    sub.reject(reason);
    try {
      sub.onEnd?.(reason);
    } catch {
      /* the app's callback */
    }
  }

  #onMessage(topic: string, payload: Uint8Array): void {
    const waiter = this.#responses.get(topic);
    if (waiter) {
      this.#responses.delete(topic);
      this.#clock.clearTimer(waiter.timer);
      waiter.resolve(payload);
      return;
    }
    if (topic === MqttTopics.fwError) return this.#onFirmwareError(payload);
    for (const s of this.#subs) {
      if (s.ended) continue;
      if (s.topic === topic || (s.topic.endsWith('/+') && topic.startsWith(s.topic.slice(0, -1)) && topic.indexOf('/', s.topic.length - 1) < 0)) {
        s.onMessage(topic, payload);
        return;
      }
    }
    // Late responses (after a timeout) and unsolicited messages end here.
  }

  #onControl(op: number, msg: MqttControlMessage): void {
    if (op === MqttOp.PUBACK && msg.id !== undefined) {
      const w = this.#pubacks.get(msg.id);
      if (!w) return;
      this.#pubacks.delete(msg.id);
      this.#clock.clearTimer(w.timer);
      w.resolve(new Uint8Array(0));
      return;
    }
    if (op === MqttOp.SUBACK && msg.topics && msg.payload) {
      for (let i = 0; i < msg.topics.length; i++) {
        const sub = this.#subs.find((s) => s.topic === msg.topics![i] && !s.ended);
        if (!sub) {
          if (msg.payload[i] === 0x80 && msg.topics[i]!.startsWith('v2/fw/')) this.#log.warn(`firmware: subscription to ${msg.topics[i]} refused (SUBACK 0x80); chunks still come at QoS 1`);
          continue;
        }
        if (msg.payload[i] === 0x80) {
          this.#endSub(sub, new TbError('bad-request', `subscription to ${sub.topic} refused by the server (SUBACK 0x80)`));
          continue;
        }
        if (!sub.registered) {
          sub.registered = true;
          sub.resolve();
        }
        sub.onSubscribed?.();
      }
    }
  }

  #onError(e: MqttError): void {
    const causeCode = (e.cause as (Error & { code?: string }) | undefined)?.code;
    if (e.code === 'refused' && e.fatal) {
      const reason = new TbError('unauthorized', `MQTT CONNACK ${e.returnCode}: ${e.returnCode === 5 || e.returnCode === 4 ? 'unknown access token or certificate' : 'connection refused'}`);
      this.#stoppedReason = reason;
      this.#log.error(`${reason.message}; sending stopped until the credentials are fixed`);
      this.#shutdown(reason);
    } else if (causeCode && AUTH_FAILURES.includes(causeCode)) {
      // Fail closed, as over DTLS: no token or data goes to a server that did not prove itself.
      this.halt(new TbError('security', `TLS ${causeCode}: ${e.cause!.message}`));
    } else if (e.fatal) {
      this.halt(new TbError('security', e.message));
    }
  }

  /** Ends the connection and everything waiting on it. */
  #shutdown(reason: TbError, endSubscriptions = reason.code === 'unauthorized' || reason.code === 'security'): void {
    const mqtt = this.#mqtt;
    this.#mqtt = undefined;
    mqtt?.close();
    const err = reason;
    for (const w of this.#pubacks.values()) {
      this.#clock.clearTimer(w.timer);
      w.reject(err);
    }
    this.#pubacks.clear();
    for (const w of this.#responses.values()) {
      this.#clock.clearTimer(w.timer);
      w.reject(err);
    }
    this.#responses.clear();
    if (!endSubscriptions) return; // kept: the next connection subscribes again
    for (const s of [...this.#subs]) this.#endSub(s, reason);
    this.#subs = [];
  }
}
