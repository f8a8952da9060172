/*
 * MQTT 3.1.1 client in the ECMA-419 MQTT client class shape (§25: options with host/port/id/user/
 * password/keepAlive/clean and onReadable/onWritable/onControl/onError callbacks; write(buffer,
 * {topic, QoS, operation, items}); read()), over the Stream platform interface.
 *
 * What it adds over the 419 minimum (and over Moddable's example client), because ThingsBoard
 * needs it (reference thingsboard-mqtt.md §0, §2, §4.2):
 * - CleanSession is always 1, and every subscription is sent again after every CONNACK:
 *   ThingsBoard answers sessionPresent = 1 to a persistent-session request but keeps nothing.
 * - QoS 1 PUBLISH stays in flight until its PUBACK: after a reconnect it is sent again with DUP.
 *   ThingsBoard never drops a packet inside a live TCP connection (no negative PUBACK in 3.1.1:
 *   it disconnects instead), so a PUBACK that does not come within ackTimeout means the
 *   connection is dead: it is closed and the message goes out again on the next one.
 * - Packet ids run 1..65535 and wrap to 1, never 0 (Netty rejects 0 and disconnects), skipping
 *   ids still in flight.
 * - The CONNACK return code surfaces as MqttError('refused', returnCode); 1, 2, 4, 5 stop the
 *   client (no reconnect: 5 is ThingsBoard's answer to an unknown access token), 3 is retried.
 * - Keep-alive: PINGREQ after keepAlive ms without sending; no answer in pingTimeout closes the
 *   connection. Reconnect after any loss with exponential back-off and jitter.
 * - Bounded memory: one receive buffer of maxPacketSize (+5), at most maxInflight QoS 1 messages
 *   and maxSubscriptions topic filters; write() throws MqttError('overflow') beyond them.
 * - Nothing the server sends can throw out of a callback: a malformed or oversized packet closes
 *   the connection with MqttError('malformed' | 'too-large') through onError.
 *
 * Incoming PUBLISH payloads are delivered whole (`more` is always false): onReadable(count, info)
 * is called once per message and read() returns it. QoS 1 is acknowledged after onReadable returns.
 */
import type { Clock, Log, Random, Stream, StreamFactory, TimerHandle } from '../platform/types';
import { silentLog } from '../platform/types';
import type { MqttPacket, PublishPacket, QoS } from './codec';
import {
  MqttOp,
  decodePacket,
  MqttReader,
  encodeAck,
  encodeConnect,
  encodeDisconnect,
  encodePingreq,
  encodePublish,
  encodeSubscribe,
  encodeUnsubscribe,
} from './codec';
import { connackError, MqttError } from './errors';
import { encodeUtf8 } from '../coap/utf8';

export interface MqttReadableInfo {
  topic: string;
  QoS: QoS;
  byteLength: number;
  more: false;
  duplicate: boolean;
  retain: boolean;
}

export interface MqttWriteOptions {
  /** MqttOp.PUBLISH (default), SUBSCRIBE or UNSUBSCRIBE. */
  operation?: number;
  topic?: string;
  QoS?: QoS;
  retain?: boolean;
  /** SUBSCRIBE / UNSUBSCRIBE topic filters. */
  items?: { topic: string; QoS?: QoS }[];
}

/** onControl messages: CONNACK, PUBACK, SUBACK (payload: granted QoS / 0x80 per filter), UNSUBACK, PINGRESP. */
export interface MqttControlMessage {
  operation: number;
  id?: number;
  payload?: number[];
  /** CONNACK: what the server claimed (meaningless on ThingsBoard: it keeps no session). */
  sessionPresent?: boolean;
  /** SUBACK for the automatic re-subscription after a CONNACK. */
  resubscribe?: boolean;
  /** SUBACK/UNSUBACK: the topic filters of the acknowledged request, in order (payload[i] is for topics[i]). */
  topics?: string[];
}

export interface MqttReconnectOptions {
  /** First delay after a loss; doubled per failed attempt up to maxMs; each delay gets ±50 % jitter. */
  initialMs?: number;
  maxMs?: number;
}

export interface MqttClientOptions {
  /** Opens the byte stream (TCP, or TLS over TCP for mqtts). */
  socket: StreamFactory;
  host: string;
  port?: number;
  id?: string;
  user?: string;
  password?: string | Uint8Array;
  /** Keep-alive in milliseconds (ECMA-419 unit); 0 = none. Default 60 s. Sent in whole seconds. */
  keepAlive?: number;
  /** Wait for a PINGRESP; default half the keep-alive, at least 5 s. */
  pingTimeout?: number;
  clock: Clock;
  /** For reconnect jitter; without it there is no jitter. */
  random?: Random;
  log?: Log;
  /** Largest packet accepted from the server (Remaining Length). Default 16 KiB. */
  maxPacketSize?: number;
  /** QoS 1 messages waiting for PUBACK, at most. Default 16. */
  maxInflight?: number;
  maxSubscriptions?: number;
  /** CONNACK wait after the stream is up (and the TCP/TLS connect itself). Default 30 s. */
  connectTimeout?: number;
  /** PUBACK/SUBACK wait before the connection is considered dead. Default 30 s. */
  ackTimeout?: number;
  /** false: no reconnect (the client is done after the first loss). */
  reconnect?: MqttReconnectOptions | false;
  /** Called with each packet crossing the stream, decoded, and its size on the wire (live trace). */
  tap?: (direction: 'out' | 'in', packet: MqttPacket, bytes: number) => void;
  onReadable?: (count: number, info: MqttReadableInfo) => void;
  onWritable?: (count: number) => void;
  onControl?: (opcode: number, message: MqttControlMessage) => void;
  onError?: (error: MqttError) => void;
  /** The connection is gone; `willReconnect` tells whether the client tries again by itself. */
  onClose?: (willReconnect: boolean) => void;
}

export type MqttClientState = 'connecting' | 'connected' | 'waiting' | 'stopped' | 'closed';

interface Inflight {
  id: number;
  packet: Uint8Array;
  /** Clock time the packet went out on the current connection. */
  sentAt: number;
  /** Sent on the current connection (cleared when it is lost). */
  onWire: boolean;
  /** Sent on some connection already: the next copy carries DUP. */
  sent: boolean;
}

interface Subscription {
  topic: string;
  qos: QoS;
}

/** Largest Remaining Length ThingsBoard accepts (Netty max_payload_size). */
const MAX_OUTGOING = 65536;

const DEFAULTS = Object.freeze({
  port: 1883,
  keepAlive: 60000,
  maxPacketSize: 16384,
  maxInflight: 16,
  maxSubscriptions: 8,
  connectTimeout: 30000,
  ackTimeout: 30000,
  reconnectInitialMs: 1000,
  reconnectMaxMs: 120000,
});

export class MqttClient {
  static readonly PUBLISH = MqttOp.PUBLISH;
  static readonly SUBSCRIBE = MqttOp.SUBSCRIBE;
  static readonly UNSUBSCRIBE = MqttOp.UNSUBSCRIBE;

  readonly host: string;
  readonly port: number;
  #o: MqttClientOptions;
  #clock: Clock;
  #log: Log;
  #keepAlive: number;
  #pingTimeout: number;
  #maxInflight: number;
  #maxSubscriptions: number;
  #connectTimeout: number;
  #ackTimeout: number;
  #reconnect: { initialMs: number; maxMs: number } | undefined;
  #reader: MqttReader;
  #stream: Stream | undefined;
  #state: MqttClientState = 'connecting';
  #mqttUp = false;
  #attempts = 0;
  #nextId = 0;
  #inflight: Inflight[] = [];
  /** SUBSCRIBE/UNSUBSCRIBE ids waiting for their ack (the resubscription's too). */
  #pendingAcks = new Map<number, { sentAt: number; resubscribe: boolean; topics: string[] }>();
  #subscriptions: Subscription[] = [];
  #timer: TimerHandle | undefined;
  #timerDue = 0;
  #lastSend = 0;
  #pingSentAt = 0;
  #pingOutstanding = false;
  #connectStarted = 0;
  #reconnectAt = 0;
  #message: Uint8Array | undefined;
  #lastError: MqttError | undefined;
  /** Counters for tests and the live view. */
  readonly stats = { connects: 0, connacks: 0, published: 0, retransmitted: 0, received: 0, bytesOut: 0, bytesIn: 0 };

  constructor(options: MqttClientOptions) {
    this.#o = options;
    this.host = options.host;
    this.port = options.port ?? DEFAULTS.port;
    this.#clock = options.clock;
    this.#log = options.log ?? silentLog;
    this.#keepAlive = options.keepAlive ?? DEFAULTS.keepAlive;
    if (this.#keepAlive < 0 || this.#keepAlive > 65535000) throw new MqttError('state', 'keepAlive must be 0..65535 s');
    this.#pingTimeout = options.pingTimeout ?? Math.max(5000, this.#keepAlive / 2);
    this.#maxInflight = options.maxInflight ?? DEFAULTS.maxInflight;
    this.#maxSubscriptions = options.maxSubscriptions ?? DEFAULTS.maxSubscriptions;
    this.#connectTimeout = options.connectTimeout ?? DEFAULTS.connectTimeout;
    this.#ackTimeout = options.ackTimeout ?? DEFAULTS.ackTimeout;
    const r = options.reconnect;
    if (r !== false) this.#reconnect = { initialMs: r?.initialMs ?? DEFAULTS.reconnectInitialMs, maxMs: r?.maxMs ?? DEFAULTS.reconnectMaxMs };
    this.#reader = new MqttReader(options.maxPacketSize ?? DEFAULTS.maxPacketSize);
    this.#open();
  }

  get state(): MqttClientState {
    return this.#state;
  }

  /** True between CONNACK 0 and the loss of the connection. */
  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The error that ended the last connection (or stopped the client). */
  get lastError(): MqttError | undefined {
    return this.#lastError;
  }

  /** Clock time of the next reconnect attempt while waiting, else 0. */
  get reconnectAt(): number {
    return this.#state === 'waiting' ? this.#reconnectAt : 0;
  }

  /** QoS 1 messages not yet acknowledged. */
  get inflight(): number {
    return this.#inflight.length;
  }

  /** ECMA-419 onWritable count: bytes a write may take now (0 while no QoS 1 slot is free). */
  get writable(): number {
    return this.#inflight.length < this.#maxInflight ? this.#reader.maxPacketSize : 0;
  }

  /**
   * PUBLISH (default), SUBSCRIBE or UNSUBSCRIBE. Returns the packet id (0 for QoS 0).
   * QoS 1 messages and subscriptions are accepted while disconnected and sent after the next
   * CONNACK; QoS 0 while disconnected throws MqttError('state'), as ECMA-419 requires.
   */
  write(data: ArrayBuffer | Uint8Array | undefined, options: MqttWriteOptions): number {
    if (this.#state === 'closed' || this.#state === 'stopped') throw new MqttError('state', `MQTT client is ${this.#state}${this.#lastError ? `: ${this.#lastError.message}` : ''}`);
    const op = options.operation ?? MqttOp.PUBLISH;
    if (op === MqttOp.SUBSCRIBE) return this.#subscribe(options.items ?? []);
    if (op === MqttOp.UNSUBSCRIBE) return this.#unsubscribe(options.items ?? []);
    if (op !== MqttOp.PUBLISH) throw new MqttError('state', `write: unsupported operation ${op}`);
    const topic = options.topic;
    if (!topic || topic.indexOf('+') >= 0 || topic.indexOf('#') >= 0) throw new MqttError('state', 'write: PUBLISH needs a topic without wildcards');
    const qos = options.QoS ?? 0;
    if (qos === 2) throw new MqttError('state', 'QoS 2 is not supported (ThingsBoard answers it with PUBACK)');
    const payload = data === undefined ? new Uint8Array(0) : data instanceof Uint8Array ? data : new Uint8Array(data);
    // ThingsBoard closes the connection on a Remaining Length over 65536 (reference §2.10).
    if (payload.length + topic.length * 3 + 4 > MAX_OUTGOING) throw new MqttError('too-large', `write: ${payload.length} B payload over the server's 64 KiB packet limit`);
    if (qos === 0) {
      if (!this.#mqttUp) throw new MqttError('state', 'write: not connected (QoS 0 is not queued)');
      this.#send(encodePublish({ topic, payload, retain: !!options.retain }));
      this.stats.published++;
      return 0;
    }
    if (this.#inflight.length >= this.#maxInflight) throw new MqttError('overflow', `write: ${this.#inflight.length} QoS 1 messages already in flight`);
    const id = this.#allocateId();
    const entry: Inflight = { id, packet: encodePublish({ topic, payload, qos: 1, retain: !!options.retain, id }), sentAt: 0, onWire: false, sent: false };
    this.#inflight.push(entry);
    if (this.#mqttUp) this.#sendInflight(entry);
    return id;
  }

  /** Forgets a QoS 1 message (the caller gave up on it): it is not sent again. */
  abandon(id: number): boolean {
    const i = this.#inflight.findIndex((e) => e.id === id);
    if (i < 0) return false;
    this.#inflight.splice(i, 1);
    return true;
  }

  /** The payload of the message announced by the current onReadable (ECMA-419 read()). */
  read(): ArrayBuffer | undefined {
    const m = this.#message;
    if (!m) return undefined;
    this.#message = undefined;
    return m.byteOffset === 0 && m.byteLength === m.buffer.byteLength ? (m.buffer as ArrayBuffer) : (m.slice().buffer as ArrayBuffer);
  }

  /** Same as read(), as a Uint8Array. */
  readBytes(): Uint8Array | undefined {
    const m = this.#message;
    this.#message = undefined;
    return m;
  }

  /** Sends DISCONNECT when connected and ends the client for good. */
  close(): void {
    if (this.#state === 'closed') return;
    if (this.#mqttUp) this.#send(encodeDisconnect());
    this.#state = 'closed';
    this.#teardown();
    this.#inflight = [];
    this.#pendingAcks.clear();
  }

  /** Drops the connection now and reconnects at once (e.g. after a network change). */
  reconnect(): void {
    if (this.#state === 'closed' || this.#state === 'stopped') return;
    this.#teardown();
    this.#attempts = 0;
    this.#open();
  }

  // ------------------------------------------------------------------------- connection

  #open(): void {
    this.#state = 'connecting';
    this.#mqttUp = false;
    this.#reader.reset();
    this.#connectStarted = this.#clock.now();
    this.stats.connects++;
    let stream: Stream;
    try {
      stream = this.#o.socket.connect(this.host, this.port);
    } catch (e) {
      this.#fail(new MqttError('socket', `connect to ${this.host}:${this.port} failed: ${(e as Error).message}`, { cause: e as Error }));
      return;
    }
    this.#stream = stream;
    stream.onConnect = () => {
      if (this.#stream !== stream) return;
      this.#sendConnect();
    };
    stream.onReceive = (data) => {
      if (this.#stream !== stream) return;
      this.#onData(data);
    };
    stream.onError = (e) => {
      if (this.#stream !== stream) return;
      const code = (e as Error & { code?: string }).code;
      this.#fail(new MqttError('socket', `connection to ${this.host}:${this.port}: ${code ? `${code}: ` : ''}${e.message}`, { cause: e }));
    };
    stream.onClose = () => {
      if (this.#stream !== stream) return;
      this.#fail(new MqttError('closed', this.#mqttUp ? 'the server closed the connection' : 'the server closed the connection before CONNACK'));
    };
    this.#schedule();
  }

  #sendConnect(): void {
    const o = this.#o;
    const password = o.password === undefined ? undefined : typeof o.password === 'string' ? encodeUtf8(o.password) : o.password;
    this.#send(
      encodeConnect({
        clientId: o.id ?? '',
        clean: true,
        keepAlive: Math.ceil(this.#keepAlive / 1000),
        ...(o.user !== undefined ? { username: o.user } : {}),
        ...(password ? { password } : {}),
      }),
    );
  }

  #teardown(): void {
    const s = this.#stream;
    this.#stream = undefined;
    this.#mqttUp = false;
    this.#pingOutstanding = false;
    this.#reader.reset();
    this.#message = undefined;
    // What was on the old connection goes out again (DUP) on the next one; its acks are gone.
    this.#pendingAcks.clear();
    for (const e of this.#inflight) e.onWire = false;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerDue = 0;
    if (s) {
      s.onConnect = s.onReceive = s.onClose = undefined;
      s.onError = undefined;
      try {
        s.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** Ends the connection with `error`; reconnects unless the error is fatal or reconnect is off. */
  #fail(error: MqttError): void {
    if (this.#state === 'closed' || this.#state === 'stopped') return;
    const wasUp = this.#mqttUp;
    this.#teardown();
    this.#lastError = error;
    const again = !!this.#reconnect && !error.fatal;
    if (again) {
      // Exponential back-off with jitter (half to full delay); a connection that reached CONNACK
      // starts the series again.
      if (wasUp) this.#attempts = 0;
      const r = this.#reconnect!;
      const delay = Math.min(r.maxMs, r.initialMs * 2 ** Math.min(this.#attempts, 20));
      const jitter = this.#o.random ? 0.5 + this.#o.random.next() / 2 : 1;
      this.#attempts++;
      this.#state = 'waiting';
      this.#reconnectAt = this.#clock.now() + Math.round(delay * jitter);
      this.#log.warn(`mqtt: ${error.message}; reconnecting in ${Math.round((delay * jitter) / 100) / 10} s`);
    } else {
      this.#state = 'stopped';
      this.#log.error(`mqtt: ${error.message}; ${error.fatal ? 'not reconnecting (fix the configuration or credentials)' : 'stopped'}`);
    }
    this.#call(() => this.#o.onError?.(error));
    this.#call(() => this.#o.onClose?.(again));
    if (again && this.#state === 'waiting') this.#schedule();
  }

  // ------------------------------------------------------------------------- timers

  /**
   * One timer for everything time-driven; it is set for the earliest deadline: connect/CONNACK
   * timeout, reconnect, keep-alive ping, PINGRESP wait, oldest PUBACK/SUBACK wait.
   */
  #schedule(): void {
    const due = this.#nextDeadline();
    if (due === 0) return;
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timerDue = due;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#timerDue = 0;
      this.#onTimer();
    }, Math.max(0, due - this.#clock.now()));
  }

  #nextDeadline(): number {
    switch (this.#state) {
      case 'waiting':
        return this.#reconnectAt;
      case 'connecting':
        return this.#connectStarted + this.#connectTimeout;
      case 'connected': {
        let due = Infinity;
        if (this.#keepAlive > 0) due = this.#pingOutstanding ? this.#pingSentAt + this.#pingTimeout : this.#lastSend + this.#keepAlive;
        for (const e of this.#inflight) if (e.onWire) due = Math.min(due, e.sentAt + this.#ackTimeout);
        for (const a of this.#pendingAcks.values()) due = Math.min(due, a.sentAt + this.#ackTimeout);
        return due === Infinity ? 0 : due;
      }
      default:
        return 0;
    }
  }

  #onTimer(): void {
    const now = this.#clock.now();
    switch (this.#state) {
      case 'waiting':
        if (now >= this.#reconnectAt) return this.#open();
        break;
      case 'connecting':
        if (now >= this.#connectStarted + this.#connectTimeout) {
          return this.#fail(new MqttError('timeout', `no ${this.#stream ? 'CONNACK' : 'connection'} from ${this.host}:${this.port} within ${this.#connectTimeout} ms`));
        }
        break;
      case 'connected': {
        if (this.#pingOutstanding && now >= this.#pingSentAt + this.#pingTimeout) {
          return this.#fail(new MqttError('timeout', `no PINGRESP within ${this.#pingTimeout} ms`));
        }
        for (const e of this.#inflight) {
          if (e.onWire && now >= e.sentAt + this.#ackTimeout) return this.#fail(new MqttError('timeout', `no PUBACK for packet id ${e.id} within ${this.#ackTimeout} ms`));
        }
        for (const [id, a] of this.#pendingAcks) {
          if (now >= a.sentAt + this.#ackTimeout) return this.#fail(new MqttError('timeout', `no acknowledgement for packet id ${id} within ${this.#ackTimeout} ms`));
        }
        if (this.#keepAlive > 0 && !this.#pingOutstanding && now >= this.#lastSend + this.#keepAlive) {
          this.#send(encodePingreq());
          this.#pingSentAt = now;
          this.#pingOutstanding = true;
        }
        break;
      }
      default:
        return;
    }
    this.#schedule();
  }

  // ------------------------------------------------------------------------- sending

  #send(packet: Uint8Array): void {
    const s = this.#stream;
    if (!s) return;
    this.#lastSend = this.#clock.now();
    this.stats.bytesOut += packet.length;
    if (this.#o.tap) {
      const t = this.#o.tap;
      this.#call(() => t('out', decodePacket(packet), packet.length));
    }
    s.send(packet);
  }

  #sendInflight(e: Inflight): void {
    if (e.sent) {
      e.packet[0] = e.packet[0]! | 0x08; // DUP: this id went out on an earlier connection
      this.stats.retransmitted++;
    } else this.stats.published++;
    e.sent = true;
    e.onWire = true;
    e.sentAt = this.#clock.now();
    this.#send(e.packet);
    this.#schedule();
  }

  #allocateId(): number {
    // 1..65535, wrapping to 1 (never 0), skipping ids still waiting for an acknowledgement.
    for (let n = 0; n < 65535; n++) {
      this.#nextId = this.#nextId >= 0xffff ? 1 : this.#nextId + 1;
      const id = this.#nextId;
      if (!this.#pendingAcks.has(id) && !this.#inflight.some((e) => e.id === id)) return id;
    }
    throw new MqttError('overflow', 'no free packet id');
  }

  #subscribe(items: { topic: string; QoS?: QoS }[]): number {
    if (!items.length) throw new MqttError('state', 'SUBSCRIBE needs items');
    const subs: Subscription[] = [];
    for (const item of items) {
      const qos = item.QoS ?? 0;
      if (qos === 2) throw new MqttError('state', 'QoS 2 subscriptions are not supported');
      subs.push({ topic: item.topic, qos });
    }
    let added = 0;
    for (const s of subs) if (!this.#subscriptions.some((x) => x.topic === s.topic)) added++;
    if (this.#subscriptions.length + added > this.#maxSubscriptions) throw new MqttError('overflow', `more than ${this.#maxSubscriptions} subscriptions`);
    for (const s of subs) {
      const old = this.#subscriptions.find((x) => x.topic === s.topic);
      if (old) old.qos = s.qos;
      else this.#subscriptions.push(s);
    }
    const id = this.#allocateId();
    // While disconnected the filters are only recorded: the CONNACK handler subscribes to all.
    if (this.#mqttUp) {
      this.#pendingAcks.set(id, { sentAt: this.#clock.now(), resubscribe: false, topics: subs.map((x) => x.topic) });
      this.#send(encodeSubscribe(id, subs));
      this.#schedule();
    }
    return id;
  }

  #unsubscribe(items: { topic: string }[]): number {
    if (!items.length) throw new MqttError('state', 'UNSUBSCRIBE needs items');
    const topics = items.map((i) => i.topic);
    this.#subscriptions = this.#subscriptions.filter((s) => !topics.includes(s.topic));
    const id = this.#allocateId();
    if (this.#mqttUp) {
      this.#pendingAcks.set(id, { sentAt: this.#clock.now(), resubscribe: false, topics });
      this.#send(encodeUnsubscribe(id, topics));
      this.#schedule();
    }
    return id;
  }

  // ------------------------------------------------------------------------- receiving

  #onData(data: Uint8Array): void {
    this.stats.bytesIn += data.length;
    try {
      this.#reader.push(data, (p) => this.#onPacket(p));
    } catch (e) {
      const err = e instanceof MqttError ? e : new MqttError('malformed', `bad data from the server: ${(e as Error).message}`);
      this.#fail(err);
    }
  }

  #onPacket(p: MqttPacket): void {
    if (this.#o.tap) {
      const t = this.#o.tap;
      this.#call(() => t('in', p, this.#reader.lastPacketSize));
    }
    this.#pingOutstanding = false; // any packet shows the connection is alive
    if (!this.#mqttUp) {
      if (p.type !== MqttOp.CONNACK) throw new MqttError('protocol', `expected CONNACK, got packet type ${p.type}`);
      if (p.returnCode !== 0) {
        this.stats.connacks++;
        this.#fail(connackError(p.returnCode));
        return;
      }
      this.#onConnack(p.sessionPresent);
      return;
    }
    switch (p.type) {
      case MqttOp.CONNACK:
        throw new MqttError('protocol', 'second CONNACK');
      case MqttOp.PUBLISH:
        return this.#onPublish(p);
      case MqttOp.PUBACK: {
        const i = this.#inflight.findIndex((e) => e.id === p.id);
        if (i >= 0) this.#inflight.splice(i, 1); // a PUBACK for an abandoned id is fine
        this.#call(() => this.#o.onControl?.(MqttOp.PUBACK, { operation: MqttOp.PUBACK, id: p.id }));
        if (this.#inflight.length === this.#maxInflight - 1) this.#call(() => this.#o.onWritable?.(this.writable));
        break;
      }
      case MqttOp.SUBACK:
      case MqttOp.UNSUBACK: {
        const pending = this.#pendingAcks.get(p.id);
        this.#pendingAcks.delete(p.id);
        const msg: MqttControlMessage = { operation: p.type, id: p.id };
        if (p.type === MqttOp.SUBACK) msg.payload = p.codes;
        if (pending?.resubscribe) msg.resubscribe = true;
        if (pending) msg.topics = pending.topics;
        this.#call(() => this.#o.onControl?.(p.type, msg));
        break;
      }
      case MqttOp.PUBREL:
        this.#send(encodeAck(MqttOp.PUBCOMP, p.id));
        break;
      case MqttOp.PINGRESP:
        this.#call(() => this.#o.onControl?.(MqttOp.PINGRESP, { operation: MqttOp.PINGRESP }));
        break;
      case MqttOp.PUBREC:
      case MqttOp.PUBCOMP:
        break; // we never send QoS 2
      default:
        throw new MqttError('protocol', `unexpected packet type ${p.type} from the server`);
    }
    this.#schedule();
  }

  #onConnack(sessionPresent: boolean): void {
    this.#mqttUp = true;
    this.#state = 'connected';
    this.#attempts = 0;
    this.stats.connacks++;
    this.#lastError = undefined;
    // Clean session every time: subscribe to everything again, whatever sessionPresent says.
    if (this.#subscriptions.length) {
      const id = this.#allocateId();
      this.#pendingAcks.set(id, { sentAt: this.#clock.now(), resubscribe: true, topics: this.#subscriptions.map((x) => x.topic) });
      this.#send(encodeSubscribe(id, this.#subscriptions));
    }
    this.#call(() => this.#o.onControl?.(MqttOp.CONNACK, { operation: MqttOp.CONNACK, sessionPresent }));
    if (!this.#mqttUp) return; // the callback closed us
    for (const e of [...this.#inflight]) if (!e.onWire && this.#mqttUp) this.#sendInflight(e);
    this.#schedule();
    this.#call(() => this.#o.onWritable?.(this.writable));
  }

  #onPublish(p: PublishPacket): void {
    this.stats.received++;
    if (p.qos === 2) {
      // Not expected from ThingsBoard; answered per the protocol so the server is not stuck.
      this.#send(encodeAck(MqttOp.PUBREC, p.id!));
    }
    this.#message = p.payload;
    const info: MqttReadableInfo = { topic: p.topic, QoS: p.qos, byteLength: p.payload.length, more: false, duplicate: p.dup, retain: p.retain };
    this.#call(() => this.#o.onReadable?.(p.payload.length, info));
    this.#message = undefined;
    if (p.qos === 1 && this.#mqttUp) this.#send(encodeAck(MqttOp.PUBACK, p.id!));
  }

  /** Runs an application callback; what it throws is logged, never propagated into the protocol. */
  #call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#log.error(`mqtt: application callback threw: ${(e as Error).message}`);
    }
  }
}
