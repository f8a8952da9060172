/*
 * MQTT 3.1.1 (OASIS, 2014) wire format: every control packet in both directions, so the same code
 * serves the device client, tests and the benchmark. Plain TypeScript over Uint8Array (runs on XS).
 *
 * Decoding is strict where a lenient reading would hide a broken or hostile peer: reserved flag
 * bits, QoS 3, packet id 0, a Remaining Length over four bytes or past the packet, trailing bytes,
 * wildcards in a PUBLISH topic, reserved CONNACK/SUBACK codes all raise MqttError('malformed').
 * Netty (ThingsBoard's codec) rejects the same things.
 */
import { decodeUtf8, utf8Length, writeUtf8 } from '../coap/utf8';
import { MqttError } from './errors';

/** Control packet types (ECMA-419 §25 uses the same numbers for `operation`). */
export const MqttOp = Object.freeze({
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
} as const);

export type QoS = 0 | 1 | 2;

/** CONNACK return codes (3.1.1 §3.2.2.3). */
export const ConnackCode = Object.freeze({
  ACCEPTED: 0,
  UNACCEPTABLE_PROTOCOL_VERSION: 1,
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USER_NAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const);

export interface ConnectPacket {
  type: 1;
  clientId: string;
  clean: boolean;
  /** Seconds (wire unit); 0 = no keep-alive. */
  keepAlive: number;
  username?: string;
  password?: Uint8Array;
  will?: { topic: string; payload: Uint8Array; qos: QoS; retain: boolean };
}
export interface ConnackPacket {
  type: 2;
  sessionPresent: boolean;
  returnCode: number;
}
export interface PublishPacket {
  type: 3;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  dup: boolean;
  retain: boolean;
  /** Present (1..65535) for QoS 1 and 2. */
  id?: number;
}
export interface AckPacket {
  type: 4 | 5 | 6 | 7 | 11;
  id: number;
}
export interface SubscribePacket {
  type: 8;
  id: number;
  items: { topic: string; qos: QoS }[];
}
export interface SubackPacket {
  type: 9;
  id: number;
  /** Granted QoS per item, or 0x80 (failure). */
  codes: number[];
}
export interface UnsubscribePacket {
  type: 10;
  id: number;
  topics: string[];
}
export interface EmptyPacket {
  type: 12 | 13 | 14;
}
export type MqttPacket =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | AckPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | EmptyPacket;

/** Largest Remaining Length the 4-byte encoding can carry. */
export const MAX_REMAINING_LENGTH = 268435455;

const PROTOCOL_NAME = Object.freeze([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54]); // "MQTT"

function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/** Allocates a packet: fixed header (first byte + Remaining Length); returns [bytes, offset of the variable header]. */
function alloc(first: number, remaining: number): [Uint8Array, number] {
  if (remaining > MAX_REMAINING_LENGTH) throw new MqttError('too-large', `MQTT packet of ${remaining} bytes exceeds the protocol's limit`);
  const out = new Uint8Array(1 + varintSize(remaining) + remaining);
  out[0] = first;
  let o = 1;
  let n = remaining;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out[o++] = b;
  } while (n > 0);
  return [out, o];
}

function checkId(id: number): void {
  if (!(id >= 1 && id <= 0xffff) || id !== Math.floor(id)) throw new MqttError('state', `packet id ${id} out of range 1..65535`);
}

function strSize(s: string): number {
  const n = utf8Length(s);
  if (n > 0xffff) throw new MqttError('too-large', 'MQTT string longer than 65535 bytes');
  return 2 + n;
}

function putStr(out: Uint8Array, o: number, s: string, size: number): number {
  out[o] = (size - 2) >> 8;
  out[o + 1] = (size - 2) & 0xff;
  return writeUtf8(s, out, o + 2);
}

function putBytes(out: Uint8Array, o: number, b: Uint8Array): number {
  out[o] = b.length >> 8;
  out[o + 1] = b.length & 0xff;
  out.set(b, o + 2);
  return o + 2 + b.length;
}

export function encodeConnect(p: Omit<ConnectPacket, 'type'>): Uint8Array {
  const idSize = strSize(p.clientId);
  const userSize = p.username !== undefined ? strSize(p.username) : 0;
  if (p.password && p.password.length > 0xffff) throw new MqttError('too-large', 'MQTT password longer than 65535 bytes');
  const passSize = p.password ? 2 + p.password.length : 0;
  const willTopicSize = p.will ? strSize(p.will.topic) : 0;
  const willSize = p.will ? willTopicSize + 2 + p.will.payload.length : 0;
  const [out, start] = alloc(0x10, 10 + idSize + willSize + userSize + passSize);
  let o = start;
  out.set(PROTOCOL_NAME, o);
  o += 6;
  out[o++] = 4; // protocol level 3.1.1
  let flags = p.clean ? 0x02 : 0;
  if (p.will) flags |= 0x04 | (p.will.qos << 3) | (p.will.retain ? 0x20 : 0);
  if (p.password) flags |= 0x40;
  if (p.username !== undefined) flags |= 0x80;
  out[o++] = flags;
  out[o++] = p.keepAlive >> 8;
  out[o++] = p.keepAlive & 0xff;
  o = putStr(out, o, p.clientId, idSize);
  if (p.will) {
    o = putStr(out, o, p.will.topic, willTopicSize);
    o = putBytes(out, o, p.will.payload);
  }
  if (p.username !== undefined) o = putStr(out, o, p.username, userSize);
  if (p.password) putBytes(out, o, p.password);
  return out;
}

export function encodeConnack(sessionPresent: boolean, returnCode: number): Uint8Array {
  return Uint8Array.of(0x20, 2, sessionPresent ? 1 : 0, returnCode);
}

export function encodePublish(p: { topic: string; payload: Uint8Array; qos?: QoS; dup?: boolean; retain?: boolean; id?: number }): Uint8Array {
  const qos = p.qos ?? 0;
  if (qos) checkId(p.id ?? 0);
  const topicSize = strSize(p.topic);
  const first = 0x30 | (p.dup && qos ? 0x08 : 0) | (qos << 1) | (p.retain ? 1 : 0);
  const [out, start] = alloc(first, topicSize + (qos ? 2 : 0) + p.payload.length);
  let o = putStr(out, start, p.topic, topicSize);
  if (qos) {
    out[o++] = p.id! >> 8;
    out[o++] = p.id! & 0xff;
  }
  out.set(p.payload, o);
  return out;
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK. */
export function encodeAck(type: 4 | 5 | 6 | 7 | 11, id: number): Uint8Array {
  checkId(id);
  return Uint8Array.of((type << 4) | (type === 6 ? 0x02 : 0), 2, id >> 8, id & 0xff);
}

export function encodeSubscribe(id: number, items: readonly { topic: string; qos: QoS }[]): Uint8Array {
  checkId(id);
  if (!items.length) throw new MqttError('state', 'SUBSCRIBE needs at least one topic filter');
  const sizes = items.map((i) => strSize(i.topic));
  let total = 2;
  for (const s of sizes) total += s + 1;
  const [out, start] = alloc(0x82, total);
  let o = start;
  out[o++] = id >> 8;
  out[o++] = id & 0xff;
  for (let i = 0; i < items.length; i++) {
    o = putStr(out, o, items[i]!.topic, sizes[i]!);
    out[o++] = items[i]!.qos;
  }
  return out;
}

export function encodeSuback(id: number, codes: readonly number[]): Uint8Array {
  checkId(id);
  const [out, start] = alloc(0x90, 2 + codes.length);
  out[start] = id >> 8;
  out[start + 1] = id & 0xff;
  out.set(codes, start + 2);
  return out;
}

export function encodeUnsubscribe(id: number, topics: readonly string[]): Uint8Array {
  checkId(id);
  if (!topics.length) throw new MqttError('state', 'UNSUBSCRIBE needs at least one topic filter');
  const sizes = topics.map(strSize);
  let total = 2;
  for (const s of sizes) total += s;
  const [out, start] = alloc(0xa2, total);
  let o = start;
  out[o++] = id >> 8;
  out[o++] = id & 0xff;
  for (let i = 0; i < topics.length; i++) o = putStr(out, o, topics[i]!, sizes[i]!);
  return out;
}

export const encodePingreq = (): Uint8Array => Uint8Array.of(0xc0, 0);
export const encodePingresp = (): Uint8Array => Uint8Array.of(0xd0, 0);
export const encodeDisconnect = (): Uint8Array => Uint8Array.of(0xe0, 0);

// ------------------------------------------------------------------------------------ decoding

const malformed = (what: string): MqttError => new MqttError('malformed', `malformed MQTT packet: ${what}`);

/**
 * Reads the fixed header at `offset`: [Remaining Length, header size], or undefined when more
 * bytes are needed. Throws on a Remaining Length longer than four bytes.
 */
export function readFixedHeader(buf: Uint8Array, offset: number, end: number): [number, number] | undefined {
  let value = 0;
  let mult = 1;
  for (let i = 1; i <= 4; i++) {
    if (offset + i >= end) return undefined;
    const b = buf[offset + i]!;
    value += (b & 0x7f) * mult;
    if (!(b & 0x80)) return [value, 1 + i];
    mult *= 128;
  }
  throw malformed('Remaining Length longer than four bytes');
}

/** A plain Uint8Array copy, never a view into the caller's buffer (which may be reused). */
function copy(buf: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(buf.subarray(start, end));
  return out;
}

/**
 * Topic and other short strings: ASCII (the usual case) eight characters per fromCharCode call,
 * without building an argument list the size of the string (XS's stack is small); UTF-8 otherwise.
 * Throws on U+0000, which MQTT forbids in strings.
 */
function readString(b: Uint8Array, start: number, end: number, what: string): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c === 0) throw malformed(`${what} contains U+0000`);
    if (c > 0x7f) ascii = false;
  }
  if (!ascii) return decodeUtf8(b, start, end);
  let s = '';
  let i = start;
  for (; i + 8 <= end; i += 8) s += String.fromCharCode(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!, b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!);
  for (; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

class Cursor {
  constructor(
    readonly buf: Uint8Array,
    public o: number,
    readonly end: number,
  ) {}
  u8(what: string): number {
    if (this.o >= this.end) throw malformed(`${what} past the end of the packet`);
    return this.buf[this.o++]!;
  }
  u16(what: string): number {
    if (this.o + 2 > this.end) throw malformed(`${what} past the end of the packet`);
    const v = (this.buf[this.o]! << 8) | this.buf[this.o + 1]!;
    this.o += 2;
    return v;
  }
  id(): number {
    const id = this.u16('packet id');
    if (id === 0) throw malformed('packet id 0');
    return id;
  }
  bytes(what: string): Uint8Array {
    const n = this.u16(`${what} length`);
    if (this.o + n > this.end) throw malformed(`${what} past the end of the packet`);
    const b = copy(this.buf, this.o, this.o + n);
    this.o += n;
    return b;
  }
  str(what: string): string {
    const n = this.u16(`${what} length`);
    if (this.o + n > this.end) throw malformed(`${what} past the end of the packet`);
    const s = readString(this.buf, this.o, this.o + n, what);
    this.o += n;
    return s;
  }
  done(what: string): void {
    if (this.o !== this.end) throw malformed(`${this.end - this.o} unexpected bytes at the end of ${what}`);
  }
}

function qosOf(bits: number, what: string): QoS {
  if (bits > 2) throw malformed(`${what} QoS 3`);
  return bits as QoS;
}

function hasWildcard(topic: string): boolean {
  return topic.indexOf('+') >= 0 || topic.indexOf('#') >= 0;
}

/**
 * Decodes one whole packet: `buf[offset]` is its first byte, `end` is one past its last. The
 * PUBLISH payload and CONNECT binary fields are copies (the caller may reuse `buf`).
 */
export function decodePacket(buf: Uint8Array, offset = 0, end = buf.length): MqttPacket {
  const head = readFixedHeader(buf, offset, end);
  if (!head) throw malformed('truncated fixed header');
  const [remaining, headerSize] = head;
  if (offset + headerSize + remaining !== end) throw malformed(`Remaining Length ${remaining} does not match the ${end - offset - headerSize} bytes given`);
  const first = buf[offset]!;
  const type = first >> 4;
  const flags = first & 0x0f;
  const c = new Cursor(buf, offset + headerSize, end);
  const fixedFlags = type === MqttOp.PUBREL || type === MqttOp.SUBSCRIBE || type === MqttOp.UNSUBSCRIBE ? 0x02 : 0;
  if (type !== MqttOp.PUBLISH && flags !== fixedFlags) throw malformed(`reserved flags ${flags} in packet type ${type}`);
  switch (type) {
    case MqttOp.CONNECT: {
      const name = c.str('protocol name');
      const level = c.u8('protocol level');
      if (name !== 'MQTT' || level !== 4) throw malformed(`protocol ${name} level ${level} (only MQTT 3.1.1 is supported)`);
      const f = c.u8('connect flags');
      if (f & 0x01) throw malformed('reserved connect flag set');
      const keepAlive = c.u16('keep alive');
      const p: ConnectPacket = { type: 1, clientId: c.str('client id'), clean: !!(f & 0x02), keepAlive };
      if (f & 0x04) {
        const topic = c.str('will topic');
        p.will = { topic, payload: c.bytes('will message'), qos: qosOf((f >> 3) & 3, 'will'), retain: !!(f & 0x20) };
      } else if (f & 0x38) throw malformed('will QoS/retain without a will');
      if (f & 0x80) p.username = c.str('user name');
      if (f & 0x40) {
        if (!(f & 0x80)) throw malformed('password without a user name');
        p.password = c.bytes('password');
      }
      c.done('CONNECT');
      return p;
    }
    case MqttOp.CONNACK: {
      const ackFlags = c.u8('CONNACK flags');
      if (ackFlags & 0xfe) throw malformed('reserved CONNACK flags');
      const returnCode = c.u8('CONNACK return code');
      if (returnCode > 5) throw malformed(`reserved CONNACK return code ${returnCode}`);
      c.done('CONNACK');
      return { type: 2, sessionPresent: ackFlags === 1, returnCode };
    }
    case MqttOp.PUBLISH: {
      const qos = qosOf((flags >> 1) & 3, 'PUBLISH');
      const dup = !!(flags & 0x08);
      if (dup && qos === 0) throw malformed('DUP set on a QoS 0 PUBLISH');
      const topic = c.str('topic');
      if (!topic.length || hasWildcard(topic)) throw malformed(topic.length ? 'wildcard in a PUBLISH topic' : 'empty PUBLISH topic');
      // One object shape, one allocation for the payload (typed arrays are costly to create).
      const id = qos ? c.id() : undefined;
      const p: PublishPacket = { type: 3, topic, payload: copy(buf, c.o, end), qos, dup, retain: !!(flags & 1) };
      if (id !== undefined) p.id = id;
      return p;
    }
    case MqttOp.PUBACK:
    case MqttOp.PUBREC:
    case MqttOp.PUBREL:
    case MqttOp.PUBCOMP:
    case MqttOp.UNSUBACK: {
      const id = c.id();
      c.done('acknowledgement');
      return { type, id };
    }
    case MqttOp.SUBSCRIBE: {
      const id = c.id();
      const items: { topic: string; qos: QoS }[] = [];
      while (c.o < c.end) {
        const topic = c.str('topic filter');
        const q = c.u8('requested QoS');
        if (q & 0xfc) throw malformed('reserved bits in requested QoS');
        items.push({ topic, qos: qosOf(q, 'SUBSCRIBE') });
      }
      if (!items.length) throw malformed('SUBSCRIBE without topic filters');
      return { type: 8, id, items };
    }
    case MqttOp.SUBACK: {
      const id = c.id();
      const codes: number[] = [];
      while (c.o < c.end) {
        const code = c.u8('SUBACK code');
        if (code > 2 && code !== 0x80) throw malformed(`reserved SUBACK code ${code}`);
        codes.push(code);
      }
      if (!codes.length) throw malformed('SUBACK without return codes');
      return { type: 9, id, codes };
    }
    case MqttOp.UNSUBSCRIBE: {
      const id = c.id();
      const topics: string[] = [];
      while (c.o < c.end) topics.push(c.str('topic filter'));
      if (!topics.length) throw malformed('UNSUBSCRIBE without topic filters');
      return { type: 10, id, topics };
    }
    case MqttOp.PINGREQ:
    case MqttOp.PINGRESP:
    case MqttOp.DISCONNECT:
      c.done('packet');
      return { type };
    default:
      throw malformed(`reserved packet type ${type}`);
  }
}

/**
 * Frames a byte stream into packets with one buffer allocated up front (the largest packet
 * accepted plus its fixed header). A packet announcing more than `maxPacketSize` bytes of
 * Remaining Length is refused as soon as its header is read ('too-large'), before any of it is
 * buffered; a malformed one throws 'malformed'. After a throw the reader must be reset().
 */
export class MqttReader {
  readonly maxPacketSize: number;
  #buf: Uint8Array;
  #len = 0;
  /** Bumped by reset(): a callback that resets the reader ends the push in progress. */
  #generation = 0;

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize;
    this.#buf = new Uint8Array(maxPacketSize + 5);
  }

  /** Size on the wire of the packet last handed to onPacket. */
  lastPacketSize = 0;

  /** Bytes held for an incomplete packet. */
  get buffered(): number {
    return this.#len;
  }

  reset(): void {
    this.#len = 0;
    this.#generation++;
  }

  /** Feeds bytes; calls `onPacket` for each whole packet, in order. */
  push(data: Uint8Array, onPacket: (packet: MqttPacket) => void): void {
    const generation = this.#generation;
    let i = 0;
    while (i < data.length) {
      const n = Math.min(data.length - i, this.#buf.length - this.#len);
      this.#buf.set(data.subarray(i, i + n), this.#len);
      this.#len += n;
      i += n;
      let start = 0;
      for (;;) {
        const head = readFixedHeader(this.#buf, start, this.#len);
        if (!head) break;
        if (head[0] > this.maxPacketSize) throw new MqttError('too-large', `MQTT packet of ${head[0]} bytes exceeds the limit of ${this.maxPacketSize}`);
        const total = head[1] + head[0];
        if (start + total > this.#len) break;
        const packet = decodePacket(this.#buf, start, start + total);
        start += total;
        this.lastPacketSize = total;
        onPacket(packet);
        if (generation !== this.#generation) return;
      }
      if (start > 0) {
        this.#buf.copyWithin(0, start, this.#len);
        this.#len -= start;
      }
    }
  }
}
