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

import * as net from 'node:net';
import * as tls from 'node:tls';
import { EventEmitter } from 'node:events';
import * as mqtt from 'mqtt-packet';
import type { Device, JsonObject, JsonValue, Store } from './store';
import { certSha3FromPem, randomToken } from './store';
import type { TbCoapService } from './handler';
import { RpcTimeoutError, isObject, parseJson, typeValues } from './handler';
import { compileProfile, fixedMessages, ProtoConvertError } from './proto-profile';
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

const DEVICE_FILTERS = Object.freeze([
  TOPIC.attributes,
  `${TOPIC.attrResponse}+`,
  `${TOPIC.rpcRequest}+`,
  `${TOPIC.rpcResponse}+`,
]);

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
  #nextId = 1;
  #parser = mqtt.parser({ protocolVersion: 4 });
  #buf: Buffer = Buffer.alloc(0);
  #connected = false;
  #closed = false;
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

  #touch(): void {
    if (this.#inactivity) clearTimeout(this.#inactivity);
    this.#inactivity = setTimeout(() => this.close('inactivity timeout'), this.listener.inactivityMs);
    this.#inactivity.unref();
  }

  /** Frames packets ourselves first, to refuse an oversized one before buffering it (Netty's check). */
  #onData(d: Buffer): void {
    if (this.#closed) return;
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

  /** Server -> device PUBLISH: QoS of the matching subscription, else 1 (ThingsBoard's rule). */
  publish(topic: string, body: JsonValue | string | Buffer, filter?: string): void {
    const granted = filter !== undefined ? this.subs.get(filter) : undefined;
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
          for (const t of p.unsubscriptions) this.subs.delete(t);
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
      if (s.topic === `${TOPIC.rpcRequest}+`) rpc = true;
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
    const proto = this.proto;
    const body = p.payload as Buffer;
    if (topic === TOPIC.telemetry) {
      const json = proto ? this.#decode('telemetry', () => proto.telemetry.toJson(body)) : this.#json(p, 'telemetry');
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
    if (topic === TOPIC.attributes) {
      const json = proto ? this.#decode('attributes', () => proto.attributes.toJson(body)) : this.#json(p, 'attributes');
      if (!isObject(json)) throw new Disconnect('attributes: not an object');
      const values = typeValues(json);
      store.setClientAttributes(dev.id, values);
      svc.events.emit('attributes', { device: dev.name, deviceId: dev.id, scope: 'client', values });
      return this.#puback(p);
    }
    if (topic.startsWith(TOPIC.attrRequest)) {
      const id = requestId(topic, TOPIC.attrRequest);
      const json: JsonValue = proto ? { ...this.#decode('attribute request', () => fixedMessages.attributeRequest(body)) } : this.#json(p, 'attribute request');
      if (!isObject(json)) throw new Disconnect('attribute request: not an object');
      // Protobuf: empty strings are absent keys (StringUtils.isEmpty in ProtoConverter)
      if (proto) for (const k of ['clientKeys', 'sharedKeys']) if (json[k] === '') delete json[k];
      const ck = keyList(json.clientKeys);
      const sk = keyList(json.sharedKeys);
      const all = store.attributes(dev.id);
      const pick = (o: JsonObject, keys: string[]): JsonObject => Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]!]));
      const client = !ck && !sk ? all.client : pick(all.client, ck ?? []);
      const shared = !ck && !sk ? all.shared : pick(all.shared, sk ?? []);
      const out: JsonObject = {};
      if (Object.keys(client).length) out.client = client;
      if (Object.keys(shared).length) out.shared = shared;
      this.#puback(p);
      // Protobuf: TransportProtos.GetAttributeResponseMsg with the request id (ProtoMqttAdaptor)
      this.publish(`${TOPIC.attrResponse}${id}`, proto ? fixedMessages.attributeResponse(client, shared, Date.now(), id) : out, `${TOPIC.attrResponse}+`);
      return;
    }
    if (topic.startsWith(TOPIC.rpcResponse)) {
      const id = requestId(topic, TOPIC.rpcResponse);
      if (proto) {
        // The profile's RPC response schema; its JSON form is the RPC result.
        const json = this.#decode('RPC reply', () => proto.rpcResponse.toJson(body));
        this.listener.rpcReply(this, id, json);
        return this.#puback(p);
      }
      const text = body.toString('utf8');
      // ThingsBoard passes the reply on as a string without validating it.
      const json = parseJson(body);
      this.listener.rpcReply(this, id, json === undefined ? text : json);
      return this.#puback(p);
    }
    if (topic.startsWith(TOPIC.rpcRequest)) {
      const id = requestId(topic, TOPIC.rpcRequest);
      let json: JsonValue;
      if (proto) {
        // Fixed TransportApiProtos.RpcRequest {method, params: string}; the profile's schemas are not used.
        const r = this.#decode('client RPC', () => fixedMessages.clientRpcRequest(body));
        if (!r.method) throw new Disconnect('client RPC without method');
        json = { method: r.method, params: parseJson(Buffer.from(r.params)) ?? r.params };
      } else json = this.#json(p, 'client RPC');
      if (!isObject(json) || typeof json.method !== 'string') throw new Disconnect('client RPC without method');
      this.#puback(p);
      this.listener.clientRpc(this, id, json.method, json.params ?? null);
      return;
    }
    if (topic === TOPIC.claim) {
      let secretKey = '';
      let durationMs = 0;
      if (body.length && proto) {
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
    // Unknown topic: acknowledged and dropped, the connection stays (TOPIC_NAME_INVALID in MQTT 5).
    this.#puback(p);
  }
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
      if (!s || !s.subs.has(TOPIC.attributes)) return;
      if (s.proto) {
        // Protobuf: TransportProtos.AttributeUpdateNotificationMsg on the v1 topic
        s.publish(TOPIC.attributes, fixedMessages.attributeUpdate(updated, deleted, Date.now()), TOPIC.attributes);
        return;
      }
      const body: JsonObject = { ...updated };
      if (deleted.length) body.deleted = deleted;
      s.publish(TOPIC.attributes, body, TOPIC.attributes);
    };
    svc.sendRpc = (dev, r) => {
      const s = this.byDevice.get(dev.id);
      if (!s || !s.subs.has(`${TOPIC.rpcRequest}+`)) return origRpc(dev, r);
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
    const proto = s.proto;
    if (proto) {
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
      s.publish(`${TOPIC.rpcRequest}${rec.id}`, bytes, `${TOPIC.rpcRequest}+`);
    } else s.publish(`${TOPIC.rpcRequest}${rec.id}`, { method: rec.method, params: rec.params }, `${TOPIC.rpcRequest}+`);
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
      s.publish(`${TOPIC.rpcResponse}${id}`, s.proto ? fixedMessages.clientRpcResponse(JSON.stringify({ error: 'timeout' })) : { error: 'timeout' }, `${TOPIC.rpcResponse}+`);
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
        s.publish(`${TOPIC.rpcResponse}${id}`, s.proto ? fixedMessages.clientRpcResponse(JSON.stringify(result)) : result, `${TOPIC.rpcResponse}+`);
      });
  }

  /** /provision/request, the same rules as the CoAP endpoint's (reference §1.8). */
  provision(json: JsonValue): JsonObject {
    if (!isObject(json) || typeof json.provisionDeviceKey !== 'string' || typeof json.provisionDeviceSecret !== 'string') {
      throw new Disconnect('provision request without provisionDeviceKey/provisionDeviceSecret');
    }
    const fail = (status: string, errorMsg: string): JsonObject => ({ errorMsg, status });
    const prof = this.store.findProfile(json.provisionDeviceKey, json.provisionDeviceSecret);
    if (!prof) return fail('NOT_FOUND', 'Provision data was not found!');
    const credType = typeof json.credentialsType === 'string' ? json.credentialsType : 'ACCESS_TOKEN';
    if (credType !== 'ACCESS_TOKEN' && credType !== 'X509_CERTIFICATE') return fail('FAILURE', 'Failed to provision device!');
    const name = typeof json.deviceName === 'string' && json.deviceName ? json.deviceName : randomToken();
    const wantedToken = typeof json.token === 'string' && json.token ? json.token : undefined;
    const hash = typeof json.hash === 'string' && json.hash ? json.hash : undefined;
    if (credType === 'X509_CERTIFICATE' && !hash) return fail('FAILURE', 'Failed to provision device!');
    let dev = this.store.findDevice(name);
    try {
      if (prof.strategy === 'ALLOW_CREATE_NEW_DEVICES') {
        if (dev) return fail('FAILURE', 'Failed to provision device!');
        dev = this.store.createDevice(name, {
          token: credType === 'ACCESS_TOKEN' ? wantedToken : randomToken(),
          certSha3: hash ? certSha3FromPem(hash) : undefined,
          provisioned: true,
        });
      } else {
        if (!dev || dev.provisioned) return fail('FAILURE', 'Failed to provision device!');
        const patch: Partial<Device> = { provisioned: true };
        if (credType === 'ACCESS_TOKEN' && wantedToken) patch.token = wantedToken;
        if (hash) patch.certSha3 = certSha3FromPem(hash);
        this.store.updateDevice(dev, patch);
      }
    } catch {
      return fail('FAILURE', 'Failed to provision device!');
    }
    this.log(`mqtt: provisioned device ${dev.name} (${prof.strategy})`);
    return { credentialsValue: credType === 'ACCESS_TOKEN' ? dev.token : hash!, credentialsType: credType, status: 'SUCCESS' };
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
