// MQTT 3.1.1 transport of the local ThingsBoard-compatible endpoint (MQTT on 1883, MQTTS on 8883),
// on the independent `mqtt-packet` package over node:net / node:tls (never the device's codec, so
// the two implementations check each other). It shares the Store (devices, telemetry, attributes,
// RPC log) and the CoAP service's events with the CoAP side.
//
// ThingsBoard's rules reproduced (reference thingsboard-mqtt.md; § numbers below):
// - access token = user name, password ignored; bad token => CONNACK 5, no username/password
//   with a client id => 2 (§2.2, §2.3); a TLS client certificate wins over the user name and is
//   mapped by SHA3-256 of its base64 DER (§3.4); username or client id "provision" opens a
//   provisioning session (§1.8);
// - CONNACK sessionPresent = !cleanSession, though nothing is kept (§2.6);
// - SUBSCRIBE: exact filters only, granted min(QoS, 1), else 0x80 (§1.1);
// - PUBLISH QoS 2 is answered with PUBACK (§2.5); unknown topic => PUBACK and dropped (§2.8);
//   malformed JSON, a client RPC without method, a JSON array of attribute keys => disconnect
//   without PUBACK (§1.4, §1.6, §2.8); an empty telemetry array gets no PUBACK (§1.2);
// - Remaining Length over 65536 => disconnect (§2.10); packet id 0 => disconnect;
// - one session per device: a new connection closes the older one (§2.11);
// - 600 s without any packet closes the session; keep-alive itself is not enforced (§2.7);
// - downlink QoS = the matching subscription's, or 1 without one; responses (attributes, client
//   RPC, provisioning) are sent even without a subscription (§0.4);
// - Protobuf device profiles (ThingsBoard's ProtoMqttAdaptor; decoded here with protobufjs):
//   telemetry, attributes and the server RPC request/reply use the profile's schemas; the
//   attribute request is TransportApiProtos.AttributesRequest, its response
//   GetAttributeResponseMsg, shared updates AttributeUpdateNotificationMsg, client RPC
//   RpcRequest / ToServerRpcResponseMsg, claim ClaimDevice; provisioning tries JSON first, then
//   ProvisionDeviceRequestMsg, and answers in the form it read. A body that does not decode
//   closes the connection without PUBACK, as malformed JSON does.
// - the v2 short topics (§1.1): v2/t, v2/a (publish and subscribe), v2/a/req/{id} -> v2/a/res/{id},
//   v2/r/req/+ (server RPC) with replies on v2/r/res/{id}, client RPC on v2/r/req/{id}; each with
//   /j (always JSON) and /p (always Protobuf) forms; plain v1/v2 follow the device profile. The
//   downlink topic is that of the last attribute / RPC subscription, attribute request or client
//   RPC of the session, as ThingsBoard's TopicType fields;
// - firmware / software chunks (§1.9): v2/fw/request/{reqId}/chunk/{n} (and v2/sw/...), the size
//   remembered per reqId, the package looked up once per reqId, zero-length past the end;
//   PAYLOAD_TOO_LARGE / NOT_FOUND / FAILURE on v2/fw/error, then a close; from the packages the
//   CoAP side serves (ota-packages.ts).

import * as net from 'node:net';
import * as tls from 'node:tls';
import { EventEmitter } from 'node:events';
import * as mqtt from 'mqtt-packet';
import type { Device, JsonObject, JsonValue, Store } from './store';
import { certSha3FromPem, provisionDevice, randomToken } from './store';
import type { TbCoapService } from './handler';
import { RpcTimeoutError, isObject, parseJson, typeValues } from './handler';
import { compileProfile, fixedMessages, ProtoConvertError } from './proto-profile';
import { otaChunk, otaPackageBytes } from './ota-packages';
import type { ProtoProfile } from './proto-profile';

export interface MqttListenerOptions {
  host?: string;
  /** Plain MQTT port (1883 by default, 0 = any free port, null = no plain listener). */
  port?: number | null;
  /** MQTTS: server certificate and key; client certificates are requested but optional. */
  tls?: { port?: number; cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Remaining Length limit (ThingsBoard: 65536). */
  maxPacketSize?: number;
  /** Session closed after this long without an inbound packet (ThingsBoard: 600 s). */
  inactivityMs?: number;
  /** Client-side RPC answered {"error":"timeout"} after this long (ThingsBoard: 60 s). */
  clientRpcTimeoutMs?: number;
  /** The provisioning session is closed this long after its response (ThingsBoard: 60 s). */
  provisionCloseMs?: number;
}

export interface MqttListener {
  port?: number;
  tlsPort?: number;
  /** 'connect' {device, tls}, 'connack' {code}, 'disconnect' {device, reason}, 'publish' {device, topic, bytes}, 'packet' {dir, cmd, bytes, device}. */
  events: EventEmitter;
  /** Open connections (for tests). */
  readonly connections: number;
  /** Devices with a live MQTT session. */
  sessionFor(deviceId: string): MqttSession | undefined;
  close(): Promise<void>;
}

const TOPIC = Object.freeze({
  telemetry: 'v1/devices/me/telemetry',
  attributes: 'v1/devices/me/attributes',
  attrRequest: 'v1/devices/me/attributes/request/',
  attrResponse: 'v1/devices/me/attributes/response/',
  rpcRequest: 'v1/devices/me/rpc/request/',
  rpcResponse: 'v1/devices/me/rpc/response/',
  claim: 'v1/devices/me/claim',
  provisionRequest: '/provision/request',
  provisionResponse: '/provision/response',
});

/**
 * Topic styles (ThingsBoard's TopicType): v1, v2 (the profile's payload type), v2j (always JSON),
 * v2p (always Protobuf). The style of the last attribute / RPC subscription and of the last
 * attribute request / client RPC picks the downlink topic (MqttTransportHandler l.1402-1583).
 */
type Style = 'v1' | 'v2' | 'v2j' | 'v2p';
const STYLES: Record<Style, { telemetry: string; attributes: string; attrRequest: string; attrResponse: string; rpcRequest: string; rpcResponse: string }> = {
  v1: { telemetry: TOPIC.telemetry, attributes: TOPIC.attributes, attrRequest: TOPIC.attrRequest, attrResponse: TOPIC.attrResponse, rpcRequest: TOPIC.rpcRequest, rpcResponse: TOPIC.rpcResponse },
  v2: { telemetry: 'v2/t', attributes: 'v2/a', attrRequest: 'v2/a/req/', attrResponse: 'v2/a/res/', rpcRequest: 'v2/r/req/', rpcResponse: 'v2/r/res/' },
  v2j: { telemetry: 'v2/t/j', attributes: 'v2/a/j', attrRequest: 'v2/a/req/j/', attrResponse: 'v2/a/res/j/', rpcRequest: 'v2/r/req/j/', rpcResponse: 'v2/r/res/j/' },
  v2p: { telemetry: 'v2/t/p', attributes: 'v2/a/p', attrRequest: 'v2/a/req/p/', attrResponse: 'v2/a/res/p/', rpcRequest: 'v2/r/req/p/', rpcResponse: 'v2/r/res/p/' },
};
const STYLE_NAMES = Object.freeze(['v1', 'v2', 'v2j', 'v2p'] as Style[]);

/** Firmware / software OTA topics (reference §1.9); errors of both go to v2/fw/error. */
const OTA = Object.freeze({
  fwResponses: 'v2/fw/response/+/chunk/+',
  fwError: 'v2/fw/error',
  swResponses: 'v2/sw/response/+/chunk/+',
  swError: 'v2/sw/error',
});
/** ThingsBoard's FW/SW_REQUEST_PATTERN, matched with find() (unanchored). */
const OTA_REQUEST = Object.freeze({ fw: /v2\/fw\/request\/(\d+)\/chunk\/(\d+)/, sw: /v2\/sw\/request\/(\d+)\/chunk\/(\d+)/ });

/** Every filter processSubscribe accepts (exact strings), for a device session. */
const DEVICE_FILTERS = Object.freeze([
  ...STYLE_NAMES.flatMap((st) => [STYLES[st].attributes, `${STYLES[st].attrResponse}+`, `${STYLES[st].rpcRequest}+`, `${STYLES[st].rpcResponse}+`]),
  OTA.fwResponses,
  OTA.fwError,
  OTA.swResponses,
  OTA.swError,
]);

/** Java's Integer.parseInt: optional sign, decimal digits, int32 range; else NumberFormatException (=> close). */
function parseJavaInt(s: string, what: string): number {
  if (!/^[-+]?\d+$/.test(s)) throw new Disconnect(`NumberFormatException: ${what} ${JSON.stringify(s.slice(0, 16))}`);
  const n = Number(s);
  if (n > 2147483647 || n < -2147483648) throw new Disconnect(`NumberFormatException: ${what} out of int range`);
  return n;
}

/** Does the (wildcard) filter match the topic? */
function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** OTA state of a session per reqId (ThingsBoard's chunkSizes / otaPackSessions; keyed by reqId alone, fw and sw alike). Bounded. */
const MAX_OTA_REQUEST_IDS = 256;

class Disconnect extends Error {}

/** "1234" -> 1234 the way Integer.parseInt does it (else a close, as TB's NumberFormatException). */
function requestId(topic: string, prefix: string): number {
  const s = topic.slice(prefix.length);
  if (!/^[-+]?\d{1,10}$/.test(s)) throw new Disconnect(`non-numeric request id in ${topic}`);
  const n = Number(s);
  if (n > 2147483647 || n < -2147483648) throw new Disconnect(`request id out of int range in ${topic}`);
  return n;
}

/** ThingsBoard's attribute key list: a comma string, or a JSON array of exactly one string. */
function keyList(v: JsonValue | undefined): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.split(',').map((k) => k.trim()).filter(Boolean);
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0].split(',').map((k) => k.trim()).filter(Boolean);
  throw new Disconnect('attribute request keys must be a comma-separated string');
}

export class MqttSession {
  device?: Device;
  provisioning = false;
  readonly subs = new Map<string, number>();
  /** Style of the last attribute / RPC subscription (where updates and server RPCs go). */
  attrSubStyle: Style | undefined;
  rpcSubStyle: Style | undefined;
  /** Style of the last attribute request / client RPC (where their answers go). */
  attrReqStyle: Style = 'v1';
  clientRpcStyle: Style = 'v1';
  /** reqId -> chunk size, reqId -> package served to it (ThingsBoard keeps both per session). */
  readonly otaSizes = new Map<string, number>();
  readonly otaPackages = new Map<string, { type: 'fw' | 'sw'; data: Buffer }>();
  #nextId = 1;
  #parser = mqtt.parser({ protocolVersion: 4 });
  #buf: Buffer = Buffer.alloc(0);
  #connected = false;
  #closed = false;
  #closing = false;
  #inactivity?: NodeJS.Timeout;

  constructor(
    readonly listener: MqttListenerImpl,
    readonly socket: net.Socket,
    readonly tlsSocket: boolean,
  ) {
    socket.setNoDelay(true);
    this.#parser.on('packet', (p: mqtt.Packet) => this.#onPacket(p));
    this.#parser.on('error', (e: Error) => this.close(`malformed packet: ${e.message}`));
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', () => this.close('socket error'));
    socket.on('close', () => this.close('closed by the client'));
    this.#touch();
  }

  get peer(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inactivity) clearTimeout(this.#inactivity);
    this.socket.destroy();
    this.listener.dropped(this, reason);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes once what was written is flushed (a PUBLISH on v2/fw/error, then the disconnect). */
  closeAfterFlush(reason: string): void {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    const t = setTimeout(() => this.close(reason), 2000);
    t.unref();
    this.socket.end(() => {
      clearTimeout(t);
      this.close(reason);
    });
  }

  #touch(): void {
    if (this.#inactivity) clearTimeout(this.#inactivity);
    this.#inactivity = setTimeout(() => this.close('inactivity timeout'), this.listener.inactivityMs);
    this.#inactivity.unref();
  }

  /** Frames packets ourselves first, to refuse an oversized one before buffering it (Netty's check). */
  #onData(d: Buffer): void {
    if (this.#closed || this.#closing) return;
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    for (;;) {
      if (this.#buf.length < 2) return;
      let len = 0;
      let mult = 1;
      let i = 1;
      for (; ; i++) {
        if (i > 4) return this.close('malformed packet: Remaining Length longer than four bytes');
        if (i >= this.#buf.length) return;
        const b = this.#buf[i]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
        if (!(b & 0x80)) break;
      }
      if (len > this.listener.maxPacketSize) return this.close(`too large message: ${len} bytes`);
      const total = i + 1 + len;
      if (this.#buf.length < total) return;
      const frame = this.#buf.subarray(0, total);
      this.#buf = this.#buf.subarray(total);
      const type = frame[0]! >> 4;
      // Netty rejects packet id 0 in PUBLISH(QoS>0)/PUBACK/SUBSCRIBE/UNSUBSCRIBE.
      const qos = (frame[0]! >> 1) & 3;
      if (type === 3 && qos > 0 && len >= 2) {
        const tl = (frame[i + 1]! << 8) | frame[i + 2]!;
        const at = i + 3 + tl;
        if (at + 1 < total && frame[at] === 0 && frame[at + 1] === 0) return this.close('malformed packet: packet id 0');
      } else if ((type === 4 || type === 8 || type === 10) && len >= 2 && frame[i + 1] === 0 && frame[i + 2] === 0) {
        return this.close('malformed packet: packet id 0');
      }
      this.listener.events.emit('packet', { dir: 'in', type, bytes: total, device: this.device?.name, peer: this.peer });
      this.#parser.parse(frame);
      if (this.#closed) return;
    }
  }

  send(packet: mqtt.Packet): void {
    if (this.#closed) return;
    const bytes = mqtt.generate(packet);
    this.listener.events.emit('packet', { dir: 'out', type: bytes[0]! >> 4, bytes: bytes.length, device: this.device?.name, peer: this.peer });
    this.socket.write(bytes);
  }

  /**
   * Server -> device PUBLISH: QoS of the first subscription whose filter matches the topic, else 1
   * (ThingsBoard's getQoSForTopic). `_filter` is not needed any more (kept for callers).
   */
  publish(topic: string, body: JsonValue | string | Buffer, _filter?: string): void {
    let granted: number | undefined;
    for (const [f, q] of this.subs) {
      if (topicMatches(f, topic)) {
        granted = q;
        break;
      }
    }
    const qos = (granted ?? 1) as 0 | 1;
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const p: mqtt.IPublishPacket = { cmd: 'publish', topic, payload, qos, dup: false, retain: false };
    if (qos) {
      p.messageId = this.#nextId;
      this.#nextId = this.#nextId >= 0xffff ? 1 : this.#nextId + 1;
    }
    this.send(p);
  }

  #onPacket(p: mqtt.Packet): void {
    if (this.#closed) return;
    this.#touch();
    try {
      if (!this.#connected) {
        if (p.cmd !== 'connect') throw new Disconnect(`${p.cmd} before CONNECT`);
        this.#onConnect(p);
        return;
      }
      switch (p.cmd) {
        case 'connect': throw new Disconnect('second CONNECT');
        case 'publish': return this.#onPublish(p);
        case 'subscribe': return this.#onSubscribe(p);
        case 'unsubscribe':
          for (const t of p.unsubscriptions) {
            this.subs.delete(t);
            if (this.attrSubStyle && t === STYLES[this.attrSubStyle].attributes) this.attrSubStyle = undefined;
            if (this.rpcSubStyle && t === `${STYLES[this.rpcSubStyle].rpcRequest}+`) this.rpcSubStyle = undefined;
          }
          return this.send({ cmd: 'unsuback', messageId: p.messageId!, granted: [] });
        case 'pingreq': return this.send({ cmd: 'pingresp' });
        case 'disconnect': return this.close('DISCONNECT');
        case 'puback': return this.listener.onDownlinkAck(this, p.messageId!);
        default: return; // PUBREL/PUBREC/PUBCOMP: ignored, as ThingsBoard does
      }
    } catch (e) {
      this.close(e instanceof Disconnect ? e.message : `processing failed: ${(e as Error).message}`);
    }
  }

  #connack(code: number, sessionPresent = false): void {
    this.send({ cmd: 'connack', returnCode: code, sessionPresent });
    this.listener.events.emit('connack', { code, peer: this.peer, device: this.device?.name });
  }

  #onConnect(p: mqtt.IConnectPacket): void {
    if (p.protocolVersion !== 4 && p.protocolVersion !== 3) {
      this.#connack(1);
      return this.close('unsupported protocol version');
    }
    const store = this.listener.store;
    const username = p.username;
    const sessionPresent = !p.clean;
    if (username === 'provision' || p.clientId === 'provision') {
      this.provisioning = true;
      this.#connected = true;
      return this.#connack(0, sessionPresent);
    }
    let device: Device | undefined;
    if (this.tlsSocket) {
      const cert = (this.socket as tls.TLSSocket).getPeerCertificate?.();
      if (cert && cert.raw) {
        device = store.byCertSha3(certSha3FromPem(cert.raw.toString('base64')));
        if (!device) {
          this.#connack(5);
          return this.close('unknown client certificate');
        }
      }
    }
    if (!device) {
      const hasUser = username !== undefined && username !== '';
      const hasPass = p.password !== undefined;
      if (hasUser) device = store.byToken(username);
      if (!device) {
        const code = !hasUser && !hasPass && p.clientId ? 2 : 5;
        this.#connack(code);
        return this.close(code === 5 ? 'unknown access token' : 'identifier rejected');
      }
    }
    this.device = device;
    this.#connected = true;
    this.listener.claimSession(this);
    this.#connack(0, sessionPresent);
    this.listener.events.emit('connect', { device: device.name, tls: this.tlsSocket, peer: this.peer });
  }

  #onSubscribe(p: mqtt.ISubscribePacket): void {
    const granted: number[] = [];
    let rpc = false;
    for (const s of p.subscriptions) {
      const ok = this.provisioning ? s.topic === TOPIC.provisionResponse : DEVICE_FILTERS.includes(s.topic);
      if (!ok) {
        granted.push(0x80);
        continue;
      }
      const q = Math.min(s.qos, 1);
      this.subs.set(s.topic, q);
      granted.push(q);
      if (!this.provisioning) {
        for (const st of STYLE_NAMES) {
          if (s.topic === STYLES[st].attributes) this.attrSubStyle = st;
          if (s.topic === `${STYLES[st].rpcRequest}+`) {
            this.rpcSubStyle = st;
            rpc = true;
          }
        }
      }
    }
    this.send({ cmd: 'suback', messageId: p.messageId!, granted });
    if (rpc && this.device) this.listener.sendPendingRpcs(this);
  }

  #puback(p: mqtt.IPublishPacket): void {
    if (p.qos > 0) this.send({ cmd: 'puback', messageId: p.messageId! });
  }

  #json(p: mqtt.IPublishPacket, what: string): JsonValue {
    const v = parseJson(p.payload as Buffer);
    if (v === undefined) throw new Disconnect(`${what}: payload is not JSON`);
    return v;
  }

  /** The device's Protobuf profile, compiled (undefined: a JSON device). */
  get proto(): ProtoProfile | undefined {
    return this.device?.protobuf ? compileProfile(this.device.protobuf) : undefined;
  }

  /** A Protobuf body decoded (a failure closes the connection, as ProtoMqttAdaptor's AdaptorException does). */
  #decode<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw new Disconnect(`${what}: payload is not a valid Protobuf message: ${(e as Error).message}`);
    }
  }

  #onPublish(p: mqtt.IPublishPacket): void {
    const topic = p.topic;
    if (!topic || topic.includes('+') || topic.includes('#')) throw new Disconnect('malformed packet: invalid PUBLISH topic');
    const svc = this.listener.service;
    const store = this.listener.store;
    this.listener.events.emit('publish', { device: this.device?.name, topic, bytes: (p.payload as Buffer).length, qos: p.qos });
    if (this.provisioning) {
      if (topic !== TOPIC.provisionRequest) {
        this.#puback(p);
        throw new Disconnect(`provisioning session published to ${topic}`);
      }
      // JSON first; a body that is not JSON is read as ProvisionDeviceRequestMsg and answered
      // with ProvisionDeviceResponseMsg (MqttTransportHandler.processProvisionSessionMsg).
      const json = parseJson(p.payload as Buffer);
      const proto = json === undefined && (p.payload as Buffer).length > 0;
      const request = proto ? this.#decode('provision request', () => fixedMessages.provisionRequest(p.payload as Buffer)) : this.#json(p, 'provision request');
      const reply = this.listener.provision(request);
      this.#puback(p);
      this.publish(
        TOPIC.provisionResponse,
        proto ? fixedMessages.provisionResponse(String(reply.status), String(reply.credentialsType ?? 'ACCESS_TOKEN'), String(reply.credentialsValue ?? '')) : reply,
        TOPIC.provisionResponse,
      );
      this.listener.closeLater(this);
      return;
    }
    const dev = this.device!;
    const body = p.payload as Buffer;
    const route = routeDevicePublish(topic);
    if (!route) {
      // Unknown topic: acknowledged and dropped, the connection stays (TOPIC_NAME_INVALID in MQTT 5).
      return this.#puback(p);
    }
    if (route.kind === 'ota') return this.#onOtaRequest(p, route.type, route.reqId, route.chunk);
    const style = route.style;
    // Protobuf for v2/.../p, JSON for v2/.../j, the device profile's payload type for v1 and v2.
    const useProto = this.usesProto(style);
    /** The profile's dynamic schemas (telemetry, attributes, RPC reply) for a Protobuf topic. */
    const profile = (what: string): ProtoProfile => {
      const prof = this.proto;
      if (!prof) throw new Disconnect(`${what}: Protobuf topic ${topic} on a device without a Protobuf profile`);
      return prof;
    };
    if (route.kind === 'telemetry') {
      const json = useProto ? this.#decode('telemetry', () => profile('telemetry').telemetry.toJson(body)) : this.#json(p, 'telemetry');
      const now = Date.now();
      const entries: { ts: number; values: Record<string, JsonValue> }[] = [];
      const one = (o: JsonValue): void => {
        if (!isObject(o)) throw new Disconnect('telemetry: not an object');
        if ('ts' in o && 'values' in o) {
          const ts = Number(o.ts);
          if ((typeof o.ts !== 'number' && typeof o.ts !== 'string') || !Number.isFinite(ts) || !isObject(o.values)) throw new Disconnect('telemetry: bad ts/values');
          entries.push({ ts: Math.trunc(ts), values: typeValues(o.values) });
        } else entries.push({ ts: now, values: typeValues(o) });
      };
      if (Array.isArray(json)) json.forEach(one);
      else one(json);
      if (!entries.length) return; // [] makes no rule-engine message: ThingsBoard never acks it
      store.saveTelemetry(dev.id, entries);
      svc.events.emit('telemetry', { device: dev.name, deviceId: dev.id, entries });
      return this.#puback(p);
    }
    if (route.kind === 'attributes') {
      const json = useProto ? this.#decode('attributes', () => profile('attributes').attributes.toJson(body)) : this.#json(p, 'attributes');
      if (!isObject(json)) throw new Disconnect('attributes: not an object');
      const values = typeValues(json);
      store.setClientAttributes(dev.id, values);
      svc.events.emit('attributes', { device: dev.name, deviceId: dev.id, scope: 'client', values });
      return this.#puback(p);
    }
    if (route.kind === 'attrRequest') {
      const id = requestId(topic, route.prefix);
      const json: JsonValue = useProto ? { ...this.#decode('attribute request', () => fixedMessages.attributeRequest(body)) } : this.#json(p, 'attribute request');
      if (!isObject(json)) throw new Disconnect('attribute request: not an object');
      // Protobuf: empty strings are absent keys (StringUtils.isEmpty in ProtoConverter)
      if (useProto) for (const k of ['clientKeys', 'sharedKeys']) if (json[k] === '') delete json[k];
      const ck = keyList(json.clientKeys);
      const sk = keyList(json.sharedKeys);
      const all = store.attributes(dev.id);
      const pick = (o: JsonObject, keys: string[]): JsonObject => Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]!]));
      const client = !ck && !sk ? all.client : pick(all.client, ck ?? []);
      const shared = !ck && !sk ? all.shared : pick(all.shared, sk ?? []);
      const out: JsonObject = {};
      if (Object.keys(client).length) out.client = client;
      if (Object.keys(shared).length) out.shared = shared;
      this.attrReqStyle = style;
      this.#puback(p);
      // The response goes out in the style of the last attribute request (attrReqTopicType).
      const rs = this.attrReqStyle;
      // Protobuf: TransportProtos.GetAttributeResponseMsg with the request id (ProtoMqttAdaptor)
      this.publish(`${STYLES[rs].attrResponse}${id}`, this.usesProto(rs) ? fixedMessages.attributeResponse(client, shared, Date.now(), id) : out);
      return;
    }
    if (route.kind === 'rpcReply') {
      const id = requestId(topic, route.prefix);
      if (useProto) {
        // The profile's RPC response schema; its JSON form is the RPC result.
        const json = this.#decode('RPC reply', () => profile('RPC reply').rpcResponse.toJson(body));
        this.listener.rpcReply(this, id, json);
        return this.#puback(p);
      }
      const text = body.toString('utf8');
      // ThingsBoard passes the reply on as a string without validating it.
      const json = parseJson(body);
      this.listener.rpcReply(this, id, json === undefined ? text : json);
      return this.#puback(p);
    }
    if (route.kind === 'clientRpc') {
      const id = requestId(topic, route.prefix);
      let json: JsonValue;
      if (useProto) {
        // Fixed TransportApiProtos.RpcRequest {method, params: string}; the profile's schemas are not used.
        const r = this.#decode('client RPC', () => fixedMessages.clientRpcRequest(body));
        if (!r.method) throw new Disconnect('client RPC without method');
        json = { method: r.method, params: parseJson(Buffer.from(r.params)) ?? r.params };
      } else json = this.#json(p, 'client RPC');
      if (!isObject(json) || typeof json.method !== 'string') throw new Disconnect('client RPC without method');
      this.clientRpcStyle = style;
      this.#puback(p);
      this.listener.clientRpc(this, id, json.method, json.params ?? null);
      return;
    }
    // claim (v1 only)
    let secretKey = '';
    let durationMs = 0;
    if (body.length && useProto) {
      ({ secretKey, durationMs } = this.#decode('claim', () => fixedMessages.claim(body)));
    } else if (body.length) {
      const json = this.#json(p, 'claim');
      if (!isObject(json)) throw new Disconnect('claim: not an object');
      if (typeof json.secretKey === 'string') secretKey = json.secretKey;
      if (typeof json.durationMs === 'number') durationMs = json.durationMs;
    }
    store.updateDevice(dev, { claim: { secretKey, expiresAt: durationMs > 0 ? Date.now() + durationMs : 0 } });
    return this.#puback(p);
  }

  /** Does a message in this topic style carry Protobuf (v2/.../p, or v1/v2 on a Protobuf profile)? */
  usesProto(style: Style): boolean {
    return style === 'v2p' || (style !== 'v2j' && !!this.device?.protobuf);
  }

  /**
   * v2/fw|sw/request/{reqId}/chunk/{n} (MqttTransportHandler.getOtaPackageCallback, reference §1.9):
   * the payload is the chunk size in ASCII (Integer.parseInt: anything else closes the connection),
   * remembered per reqId; empty (or not positive) = the remembered size, 0 if none = the whole
   * package. A size over the 64 KiB packet limit: PAYLOAD_TOO_LARGE on v2/fw/error and a close;
   * no package: NOT_FOUND (FAILURE for a package without data) on v2/fw/error and a close. Else
   * PUBACK, then v2/{fw|sw}/response/{reqId}/chunk/{n} with the bytes, zero-length past the end.
   * The package is looked up once per reqId and session and served from there on.
   */
  #onOtaRequest(p: mqtt.IPublishPacket, type: 'fw' | 'sw', reqId: string, chunkText: string): void {
    const text = (p.payload as Buffer).toString('utf8');
    let size = text.length ? parseJavaInt(text, 'chunk size') : 0;
    const chunk = parseJavaInt(chunkText, 'chunk index');
    if (size > 0) {
      if (!this.otaSizes.has(reqId) && this.otaSizes.size >= MAX_OTA_REQUEST_IDS) this.otaSizes.delete(this.otaSizes.keys().next().value!);
      this.otaSizes.set(reqId, size);
    } else size = this.otaSizes.get(reqId) ?? 0;
    if (size > this.listener.maxPacketSize) return this.#otaError('PAYLOAD_TOO_LARGE');
    let pkg = this.otaPackages.get(reqId);
    let responseType = type;
    if (!pkg) {
      const stored = this.listener.store.ota(this.device!.id, type);
      if (!stored) return this.#otaError('NOT_FOUND');
      const data = otaPackageBytes(stored);
      if (!data.length) return this.#otaError('FAILURE');
      pkg = { type: stored.type, data };
      responseType = stored.type;
      if (this.otaPackages.size >= MAX_OTA_REQUEST_IDS) this.otaPackages.delete(this.otaPackages.keys().next().value!);
      this.otaPackages.set(reqId, pkg);
    }
    this.#puback(p);
    const part = otaChunk(pkg.data, size, chunk);
    if (!part) return this.listener.log(`mqtt: [${this.device!.name}] OTA chunk ${chunk} of ${size} bytes: start past the int range, nothing sent`);
    this.listener.events.emit('ota-chunk', { device: this.device!.name, type: responseType, reqId, chunk, size, bytes: part.length });
    this.publish(`v2/${responseType}/response/${reqId}/chunk/${chunk}`, part);
  }

  /** sendOtaPackageError: the status name on v2/fw/error (for software too), then the connection closes. */
  #otaError(status: string): void {
    this.listener.log(`mqtt: [${this.device!.name}] OTA request refused: ${status}`);
    this.publish(OTA.fwError, Buffer.from(status));
    this.closeAfterFlush(`OTA ${status}`);
  }
}

type DeviceRoute =
  | { kind: 'telemetry' | 'attributes' | 'claim'; style: Style }
  | { kind: 'attrRequest' | 'rpcReply' | 'clientRpc'; style: Style; prefix: string }
  | { kind: 'ota'; type: 'fw' | 'sw'; reqId: string; chunk: string };

/** processDevicePublish's order: v1 topics, claim, the OTA patterns, then the v2 short topics. */
function routeDevicePublish(topic: string): DeviceRoute | undefined {
  const v1 = STYLES.v1;
  if (topic === v1.attributes) return { kind: 'attributes', style: 'v1' };
  if (topic === v1.telemetry) return { kind: 'telemetry', style: 'v1' };
  if (topic.startsWith(v1.attrRequest)) return { kind: 'attrRequest', style: 'v1', prefix: v1.attrRequest };
  if (topic.startsWith(v1.rpcResponse)) return { kind: 'rpcReply', style: 'v1', prefix: v1.rpcResponse };
  if (topic.startsWith(v1.rpcRequest)) return { kind: 'clientRpc', style: 'v1', prefix: v1.rpcRequest };
  if (topic === TOPIC.claim) return { kind: 'claim', style: 'v1' };
  for (const type of ['fw', 'sw'] as const) {
    const m = OTA_REQUEST[type].exec(topic);
    if (m) return { kind: 'ota', type, reqId: m[1]!, chunk: m[2]! };
  }
  const v2 = ['v2', 'v2j', 'v2p'] as const;
  for (const st of v2) if (topic === STYLES[st].telemetry) return { kind: 'telemetry', style: st };
  for (const st of v2) if (topic === STYLES[st].attributes) return { kind: 'attributes', style: st };
  // j and p before the plain prefix, which is a prefix of both
  const order = ['v2j', 'v2p', 'v2'] as const;
  for (const st of order) if (topic.startsWith(STYLES[st].rpcResponse)) return { kind: 'rpcReply', style: st, prefix: STYLES[st].rpcResponse };
  for (const st of order) if (topic.startsWith(STYLES[st].rpcRequest)) return { kind: 'clientRpc', style: st, prefix: STYLES[st].rpcRequest };
  for (const st of order) if (topic.startsWith(STYLES[st].attrRequest)) return { kind: 'attrRequest', style: st, prefix: STYLES[st].attrRequest };
  return undefined;
}

interface PendingMqttRpc {
  deviceId: string;
  rec: ReturnType<Store['newRpc']>;
  resolve: (v: { id: number; response: JsonValue }) => void;
  timer: NodeJS.Timeout;
}

class MqttListenerImpl implements MqttListener {
  readonly events = new EventEmitter();
  port?: number;
  tlsPort?: number;
  readonly maxPacketSize: number;
  readonly inactivityMs: number;
  readonly clientRpcTimeoutMs: number;
  readonly provisionCloseMs: number;
  readonly sessions = new Set<MqttSession>();
  readonly byDevice = new Map<string, MqttSession>();
  readonly pending = new Map<string, PendingMqttRpc>();
  readonly timers = new Set<NodeJS.Timeout>();
  servers: net.Server[] = [];
  #restore: (() => void) | undefined;

  constructor(
    readonly store: Store,
    readonly service: TbCoapService,
    readonly log: (line: string) => void,
    options: MqttListenerOptions,
  ) {
    this.maxPacketSize = options.maxPacketSize ?? 65536;
    this.inactivityMs = options.inactivityMs ?? 600000;
    this.clientRpcTimeoutMs = options.clientRpcTimeoutMs ?? 60000;
    this.provisionCloseMs = options.provisionCloseMs ?? 60000;
    this.events.on('error', () => undefined);
    this.#hookService();
  }

  get connections(): number {
    return this.sessions.size;
  }

  sessionFor(deviceId: string): MqttSession | undefined {
    return this.byDevice.get(deviceId);
  }

  accept(socket: net.Socket, isTls: boolean): void {
    const s = new MqttSession(this, socket, isTls);
    this.sessions.add(s);
  }

  claimSession(s: MqttSession): void {
    const old = this.byDevice.get(s.device!.id);
    this.byDevice.set(s.device!.id, s);
    if (old && old !== s) old.close('session taken over by a new connection');
  }

  dropped(s: MqttSession, reason: string): void {
    this.sessions.delete(s);
    if (s.device && this.byDevice.get(s.device.id) === s) this.byDevice.delete(s.device.id);
    this.log(`mqtt: ${s.device ? `device ${s.device.name}` : s.provisioning ? 'provisioning session' : s.peer} disconnected: ${reason}`);
    this.events.emit('disconnect', { device: s.device?.name, reason, peer: s.peer });
  }

  closeLater(s: MqttSession): void {
    const t = setTimeout(() => { this.timers.delete(t); s.close('provisioning session done'); }, this.provisionCloseMs);
    t.unref();
    this.timers.add(t);
  }

  /**
   * Shared-attribute changes and server-side RPC come from the admin side through the CoAP
   * service; both reach MQTT sessions too (wrapping the two public entry points keeps the CoAP
   * handler untouched).
   */
  #hookService(): void {
    const svc = this.service;
    const origShared = svc.sharedAttributesChanged.bind(svc);
    const origRpc = svc.sendRpc.bind(svc);
    svc.sharedAttributesChanged = (dev, updated, deleted) => {
      origShared(dev, updated, deleted);
      const s = this.byDevice.get(dev.id);
      // On the topic of the last attribute subscription (v1/devices/me/attributes, v2/a, v2/a/j, v2/a/p).
      const st = s?.attrSubStyle;
      if (!s || !st) return;
      if (s.usesProto(st)) {
        // Protobuf: TransportProtos.AttributeUpdateNotificationMsg
        s.publish(STYLES[st].attributes, fixedMessages.attributeUpdate(updated, deleted, Date.now()));
        return;
      }
      const body: JsonObject = { ...updated };
      if (deleted.length) body.deleted = deleted;
      s.publish(STYLES[st].attributes, body);
    };
    svc.sendRpc = (dev, r) => {
      const s = this.byDevice.get(dev.id);
      if (!s || !s.rpcSubStyle) return origRpc(dev, r);
      return this.#sendRpc(dev, r);
    };
    this.#restore = () => {
      svc.sharedAttributesChanged = origShared;
      svc.sendRpc = origRpc;
    };
  }

  #sendRpc(dev: Device, r: { method: string; params?: JsonValue; timeoutMs?: number; persistent?: boolean }): Promise<{ id: number; response: JsonValue }> {
    const timeoutMs = r.timeoutMs ?? 10000;
    const rec = this.store.newRpc(dev.id, { method: r.method, params: r.params ?? null, persistent: r.persistent === true, expirationTime: Date.now() + timeoutMs });
    return new Promise((resolve, reject) => {
      const key = `${dev.id}/${rec.id}`;
      const timer = setTimeout(() => {
        this.pending.delete(key);
        this.store.updateRpc(rec, { status: rec.status === 'QUEUED' ? 'EXPIRED' : 'TIMEOUT' });
        reject(new RpcTimeoutError());
      }, timeoutMs);
      timer.unref();
      this.pending.set(key, { deviceId: dev.id, rec, resolve, timer });
      const s = this.byDevice.get(dev.id);
      if (s) this.#pushRpc(s, rec);
    });
  }

  #pushRpc(s: MqttSession, rec: PendingMqttRpc['rec']): void {
    // On the topic of the last RPC subscription (v1/devices/me/rpc/request/, v2/r/req/, .../j/, .../p/).
    const st = s.rpcSubStyle ?? 'v1';
    const topic = `${STYLES[st].rpcRequest}${rec.id}`;
    if (s.usesProto(st)) {
      const proto = s.proto;
      if (!proto) {
        this.log(`mqtt: [${s.device!.name}] Failed to convert device RPC command to MQTT msg: no Protobuf profile for ${STYLES[st].rpcRequest}`);
        return;
      }
      // The profile's RPC request schema, built from {"method","requestId","params"} as
      // ThingsBoard does; object params into a string field fail there too (the params pitfall):
      // ThingsBoard logs and the device gets nothing, so the RPC times out.
      let bytes: Buffer;
      try {
        bytes = proto.rpcRequest.fromJson({ method: rec.method, requestId: rec.id, params: rec.params ?? null });
      } catch (e) {
        if (!(e instanceof ProtoConvertError)) throw e;
        this.log(`mqtt: [${s.device!.name}] Failed to convert device RPC command to MQTT msg: ${e.message} (use string/primitive params or model params as a message in the RPC request schema)`);
        return;
      }
      s.publish(topic, bytes);
    } else s.publish(topic, { method: rec.method, params: rec.params });
    if (rec.status === 'QUEUED') this.store.updateRpc(rec, { status: 'SENT' });
  }

  sendPendingRpcs(s: MqttSession): void {
    for (const p of this.pending.values()) if (p.deviceId === s.device!.id && p.rec.status === 'QUEUED') this.#pushRpc(s, p.rec);
  }

  onDownlinkAck(s: MqttSession, _id: number): void {
    void s;
  }

  rpcReply(s: MqttSession, id: number, response: JsonValue): void {
    const dev = s.device!;
    const key = `${dev.id}/${id}`;
    const p = this.pending.get(key);
    if (!p) return; // unknown or stale ids are dropped
    clearTimeout(p.timer);
    this.pending.delete(key);
    this.store.updateRpc(p.rec, { status: 'SUCCESSFUL', response });
    this.service.events.emit('rpc-reply', { device: dev.name, deviceId: dev.id, id, response });
    p.resolve({ id, response });
  }

  clientRpc(s: MqttSession, id: number, method: string, params: JsonValue): void {
    const dev = s.device!;
    let done = false;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (done) return;
      done = true;
      // In the style of the session's last client RPC (toServerRpcSubTopicType)
      const st = s.clientRpcStyle;
      s.publish(`${STYLES[st].rpcResponse}${id}`, s.usesProto(st) ? fixedMessages.clientRpcResponse(JSON.stringify({ error: 'timeout' })) : { error: 'timeout' });
    }, this.clientRpcTimeoutMs);
    timer.unref();
    this.timers.add(timer);
    Promise.resolve()
      .then(() => this.service.opts.clientRpc({ device: dev, method, params }))
      .then(
        (result) => result,
        (e: Error) => ({ error: e.message }) as JsonValue,
      )
      .then((result) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.timers.delete(timer);
        // Protobuf: TransportProtos.ToServerRpcResponseMsg, the result as JSON text in payload
        const st = s.clientRpcStyle;
        s.publish(`${STYLES[st].rpcResponse}${id}`, s.usesProto(st) ? fixedMessages.clientRpcResponse(JSON.stringify(result)) : result);
      });
  }

  /** /provision/request, the same rules as the CoAP endpoint's (reference §1.8). */
  provision(json: JsonValue): JsonObject {
    if (!isObject(json) || typeof json.provisionDeviceKey !== 'string' || typeof json.provisionDeviceSecret !== 'string') {
      throw new Disconnect('provision request without provisionDeviceKey/provisionDeviceSecret');
    }
    // The same rules as the CoAP endpoint (store.ts provisionDevice).
    const reply = provisionDevice(this.store, json, randomToken);
    if (reply.status !== 'SUCCESS') return { errorMsg: reply.errorMsg, status: reply.status };
    this.log(`mqtt: provisioned device ${reply.device.name} (${reply.credentialsType === 'X509_CERTIFICATE' ? 'X.509 certificate registered' : 'access token'})`);
    return { credentialsValue: reply.credentialsValue, credentialsType: reply.credentialsType, status: 'SUCCESS' };
  }

  async close(): Promise<void> {
    this.#restore?.();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of [...this.sessions]) s.close('server shutting down');
    await Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }
}

async function listen(server: net.Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/** Starts the MQTT (and with `tls`, MQTTS) listener over the endpoint's store and CoAP service. */
export async function startMqttListener(
  opts: MqttListenerOptions & { store: Store; service: TbCoapService; log?: (line: string) => void },
): Promise<MqttListener> {
  const host = opts.host ?? '127.0.0.1';
  const l = new MqttListenerImpl(opts.store, opts.service, opts.log ?? (() => {}), opts);
  try {
    if (opts.port !== null) {
      const srv = net.createServer((sock) => l.accept(sock, false));
      l.servers.push(srv);
      l.port = await listen(srv, opts.port ?? 1883, host);
    }
    if (opts.tls) {
      const t = opts.tls;
      // Like ThingsBoard: a client certificate is wanted, not needed, and not checked against a
      // trust store; the device is found by the leaf's SHA3-256 at CONNECT.
      const srv = tls.createServer({ cert: t.cert, key: t.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (sock) => l.accept(sock, true));
      srv.on('tlsClientError', (e: Error) => l.log(`mqtts: handshake failed: ${e.message}`));
      // TLS 1.2 session-ID resumption, as Java's JSSE cache gives ThingsBoard (node:tls resumes by
      // ID only with these two handlers). Bounded: oldest sessions dropped first.
      const sessions = new Map<string, Buffer>();
      srv.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => {
        sessions.set(id.toString('hex'), data);
        if (sessions.size > 1000) sessions.delete(sessions.keys().next().value!);
        cb();
      });
      srv.on('resumeSession', (id: Buffer, cb: (err: Error | null, data: Buffer | null) => void) => cb(null, sessions.get(id.toString('hex')) ?? null));
      l.servers.push(srv);
      l.tlsPort = await listen(srv, t.port ?? 8883, host);
    }
  } catch (e) {
    await l.close();
    throw e;
  }
  return l;
}
