/*
 * Protocol Buffers wire format (proto3) for the generated encoders/decoders in src/proto/gen/.
 * No reflection and no package dependency (UTF-8 is the firmware's own, src/coap/utf8.ts): the
 * generator (tools/proto/) emits straight-line code per message over these writers and the Reader.
 *
 * Encoding sizes the message first, then writes into one Uint8Array of exactly that size (the
 * only allocations are the output and its cursor). Floats go through a FloatScratch the caller
 * owns (the payload codec makes one at run time and reuses it); without one they are split into
 * their IEEE 754 bits with arithmetic. Neither path makes a DataView over the output, which in V8
 * costs more than encoding the whole message. Decoding checks every length against the buffer, so malformed input is a ProtoError
 * with a code and an offset, never a RangeError or TypeError.
 *
 * 64-bit integers (int64, uint64, sint64, fixed64, sfixed64) are `number | bigint`: a decoded
 * value is a number when it is a safe integer (|v| <= 2^53 - 1), else a bigint. Encoders take
 * either; a number must be an integer (a safe one to mean what it says).
 *
 * The TbValue conversions at the end (asNumber, enumName, base64, ...) are the runtime the generated
 * toTb_/fromTb_ functions share: every generated module imports them from here.
 *
 * XS notes: no module-level mutable state (preloaded modules are frozen), class fields instead
 * of inherited property assignment, no recursion here (nesting depth is the schema's, which the
 * generator checks is not recursive).
 */

import { utf8Length, writeUtf8 } from '../coap/utf8';
import type { TbObject, TbValue } from '../thingsboard/payload';

export type Int64 = number | bigint;

export type ProtoErrorCode =
  | 'truncated' // a varint, fixed field or length-delimited field runs past the end
  | 'varint' // a varint longer than 10 bytes
  | 'wire-type' // wire type 6 or 7, or an unmatched end-group
  | 'field-number' // field number 0
  | 'utf8' // a string field that is not valid UTF-8 (proto3 requires it)
  | 'depth' // groups nested deeper than MAX_GROUP_DEPTH
  | 'value'; // a value the message cannot hold (encoding), or an internal check

export class ProtoError extends Error {
  // Class fields, not an assignment to name in the constructor: Error.prototype is frozen on XS after preload.
  override readonly name: string = 'ProtoError';
  readonly code: ProtoErrorCode;
  /** Byte offset in the input where decoding failed (-1 when encoding). */
  readonly offset: number;
  constructor(code: ProtoErrorCode, message: string, offset = -1) {
    super(offset >= 0 ? `${message} at byte ${offset}` : message);
    this.code = code;
    this.offset = offset;
  }
}

export const WireType = Object.freeze({ VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 });

const TWO32 = 4294967296;
const MAX_GROUP_DEPTH = 32;

// ---------------------------------------------------------------------------- sizes

/** Bytes of a varint holding the unsigned 32-bit value `v`. */
export function sizeVarint32(v: number): number {
  v >>>= 0;
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** int32/enum: negative values are sign-extended to 10 bytes. */
export function sizeInt32(v: number): number {
  return v < 0 ? 10 : sizeVarint32(v);
}

export function sizeSint32(v: number): number {
  return sizeVarint32(((v << 1) ^ (v >> 31)) >>> 0);
}

/** Bytes of a varint holding a non-negative integer up to 2^64 (a double, exact below 2^53). */
function sizeVarintFloat(v: number): number {
  if (v < 4294967296) return sizeVarint32(v);
  return v < 34359738368 ? 5 : v < 4398046511104 ? 6 : v < 562949953421312 ? 7 : v < 72057594037927936 ? 8 : v < 9223372036854775808 ? 9 : 10;
}

function sizeVarintBig(v: bigint): number {
  let n = 1;
  while (v >= 128n && n < 10) {
    v >>= 7n;
    n++;
  }
  return n;
}

export function sizeInt64(v: Int64): number {
  if (typeof v === 'bigint') return sizeVarintBig(BigInt.asUintN(64, v));
  return v < 0 ? 10 : sizeVarintFloat(v);
}

export function sizeUint64(v: Int64): number {
  if (typeof v === 'bigint') return sizeVarintBig(BigInt.asUintN(64, v));
  return sizeVarintFloat(v);
}

export function sizeSint64(v: Int64): number {
  if (typeof v === 'bigint') {
    const s = BigInt.asIntN(64, v);
    return sizeVarintBig(BigInt.asUintN(64, s >= 0n ? s << 1n : (-s << 1n) - 1n));
  }
  return sizeVarintFloat(v >= 0 ? v * 2 : -v * 2 - 1);
}

/** Bytes `s` takes in UTF-8 (lone surrogates as U+FFFD, 3 bytes): the CoAP layer's count. */
export const utf8Size: (s: string) => number = utf8Length;

/** Length prefix + body for a length-delimited field of `n` bytes. */
export function sizeLen(n: number): number {
  return sizeVarint32(n) + n;
}

export function sizeString(s: string): number {
  return sizeLen(utf8Size(s));
}

// ---------------------------------------------------------------------------- writer

/** IEEE 754 binary32 bits of `v` rounded to float (Math.fround: round to nearest, ties to even). */
export function float32Bits(v: number): number {
  const f = Math.fround(v);
  if (f !== f) return 0x7fc00000;
  const sign = f < 0 || (f === 0 && 1 / f < 0) ? 0x80000000 : 0;
  const a = f < 0 ? -f : f;
  if (a === 0) return sign;
  if (a === Infinity) return (sign | 0x7f800000) >>> 0;
  if (a < 1.1754943508222875e-38) return (sign | (a * 713623846352979940529142984724747568191373312)) >>> 0; // subnormal: a / 2^-149
  let e = Math.floor(Math.log2(a));
  let m = a * Math.pow(2, -e);
  if (m >= 2) {
    e++;
    m /= 2;
  } else if (m < 1) {
    e--;
    m *= 2;
  }
  return (sign | ((e + 127) << 23) | ((m - 1) * 8388608)) >>> 0;
}

/**
 * Reusable float <-> bytes scratch: one 8-byte buffer seen as float32, float64 and bytes. Create it
 * at run time (never while a module is preloaded: it is written on every float).
 */
export class FloatScratch {
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly u8: Uint8Array;
  /** The host stores floats little-endian (as the wire wants); else bytes are reversed on copy. */
  readonly le: boolean;
  constructor() {
    const ab = new ArrayBuffer(8);
    this.f32 = new Float32Array(ab);
    this.f64 = new Float64Array(ab);
    this.u8 = new Uint8Array(ab);
    this.f32[0] = 1;
    this.le = this.u8[3] === 0x3f;
  }
}

// Writers: each puts one value into `b` at `p` and returns the offset after it. The generated code
// keeps the offset in a local, so an encode allocates nothing but its output.

/** Unsigned 32-bit varint (lengths, uint32). */
export function putVarint32(b: Uint8Array, p: number, v: number): number {
  v >>>= 0;
  while (v > 127) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

function putVarint64(b: Uint8Array, p: number, lo: number, hi: number): number {
  while (hi !== 0 || lo > 127) {
    b[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  b[p++] = lo;
  return p;
}

/** int32/enum: negative values are sign-extended to 10 bytes. */
export function putInt32(b: Uint8Array, p: number, v: number): number {
  return v < 0 ? putVarint64(b, p, v >>> 0, 0xffffffff) : putVarint32(b, p, v);
}

export function putSint32(b: Uint8Array, p: number, v: number): number {
  return putVarint32(b, p, ((v << 1) ^ (v >> 31)) >>> 0);
}

export function putBool(b: Uint8Array, p: number, v: boolean): number {
  b[p] = v ? 1 : 0;
  return p + 1;
}

/** Low 32 bits of the two's complement of `v` (an integer number or a bigint). */
function lo32(v: Int64): number {
  if (typeof v === 'bigint') return Number(BigInt.asUintN(32, v));
  if (v >= 0) return v >>> 0;
  const lo = (-v) >>> 0;
  return (~lo + 1) >>> 0;
}

/** High 32 bits of the two's complement of `v`. */
function hi32(v: Int64): number {
  if (typeof v === 'bigint') return Number(BigInt.asUintN(64, v) >> 32n);
  if (v >= 0) return Math.floor(v / TWO32) >>> 0;
  const a = -v;
  return (~(Math.floor(a / TWO32) >>> 0) + ((a >>> 0) === 0 ? 1 : 0)) >>> 0;
}

export function putInt64(b: Uint8Array, p: number, v: Int64): number {
  if (typeof v === 'number' && v >= 0) {
    if (v < TWO32) return putVarint32(b, p, v);
    return putVarint64(b, p, v >>> 0, Math.floor(v / TWO32) >>> 0);
  }
  return putVarint64(b, p, lo32(v), hi32(v));
}

export const putUint64 = putInt64;

export function putSint64(b: Uint8Array, p: number, v: Int64): number {
  const lo = lo32(v);
  const hi = hi32(v);
  const sign = hi >> 31;
  return putVarint64(b, p, ((lo << 1) ^ sign) >>> 0, (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0);
}

function putU32(b: Uint8Array, p: number, v: number): number {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
  return p + 4;
}

export function putFixed32(b: Uint8Array, p: number, v: number): number {
  return putU32(b, p, v >>> 0);
}

export function putSfixed32(b: Uint8Array, p: number, v: number): number {
  return putU32(b, p, v | 0);
}

export function putFixed64(b: Uint8Array, p: number, v: Int64): number {
  return putU32(b, putU32(b, p, lo32(v)), hi32(v));
}

export const putSfixed64 = putFixed64;

export function putFloat(b: Uint8Array, p: number, v: number, s: FloatScratch | undefined): number {
  if (s === undefined) return putU32(b, p, float32Bits(v));
  s.f32[0] = v;
  const u = s.u8;
  if (s.le) {
    b[p] = u[0]!;
    b[p + 1] = u[1]!;
    b[p + 2] = u[2]!;
    b[p + 3] = u[3]!;
  } else {
    b[p] = u[3]!;
    b[p + 1] = u[2]!;
    b[p + 2] = u[1]!;
    b[p + 3] = u[0]!;
  }
  return p + 4;
}

/** IEEE 754 binary64, little-endian. */
export function putDouble(b: Uint8Array, p: number, v: number, s: FloatScratch | undefined): number {
  if (s !== undefined) {
    s.f64[0] = v;
    const u = s.u8;
    for (let i = 0; i < 8; i++) b[p + i] = u[s.le ? i : 7 - i]!;
    return p + 8;
  }
  // split with arithmetic (exact: scaling by powers of 2)
  let lo = 0;
  let hi: number;
  if (v !== v) hi = 0x7ff80000;
  else {
    const sign = v < 0 || (v === 0 && 1 / v < 0) ? 0x80000000 : 0;
    const a = v < 0 ? -v : v;
    if (a === 0) hi = sign;
    else if (a === Infinity) hi = (sign | 0x7ff00000) >>> 0;
    else if (a < 2.2250738585072014e-308) {
      // subnormal: a / 2^-1074 is an integer below 2^52
      const m = a / 5e-324;
      lo = m >>> 0;
      hi = (sign | Math.floor(m / TWO32)) >>> 0;
    } else {
      let e = Math.floor(Math.log2(a));
      if (e > 1023) e = 1023;
      let m = a * Math.pow(2, -e);
      if (m >= 2) {
        e++;
        m /= 2;
      } else if (m < 1) {
        e--;
        m *= 2;
      }
      const f = (m - 1) * 4503599627370496; // 52-bit fraction, an exact integer
      lo = f >>> 0;
      hi = (sign | ((e + 1023) << 20) | Math.floor(f / TWO32)) >>> 0;
    }
  }
  return putU32(b, putU32(b, p, lo), hi);
}

/** Length prefix then UTF-8 (lone surrogates as U+FFFD); `n` is utf8Size(s). */
export function putString(b: Uint8Array, p: number, s: string, n: number): number {
  return writeUtf8(s, b, putVarint32(b, p, n));
}

export function putBytes(b: Uint8Array, p: number, v: Uint8Array): number {
  p = putVarint32(b, p, v.length);
  b.set(v, p);
  return p + v.length;
}

// ---------------------------------------------------------------------------- reader

export class Reader {
  readonly buf: Uint8Array;
  pos: number;
  /** End of the message being read (a nested message narrows it, then restores it). */
  end: number;
  #view: DataView | undefined;
  #lo = 0;
  #hi = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.pos = 0;
    this.end = buf.length;
  }

  #dv(): DataView {
    return (this.#view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  #need(n: number): void {
    if (this.pos + n > this.end) throw new ProtoError('truncated', `field needs ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  /** A varint of up to 10 bytes into (#lo, #hi). */
  #varint64(): void {
    const b = this.buf;
    const end = this.end;
    let p = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (p >= end) throw new ProtoError('truncated', 'varint runs past the end', this.pos);
      const c = b[p++]!;
      if (i < 4) lo |= (c & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (c & 0x0f) << 28;
        hi |= (c & 0x7f) >> 4;
      } else hi |= (c & 0x7f) << (7 * i - 32);
      if (c < 0x80) {
        this.pos = p;
        this.#lo = lo >>> 0;
        this.#hi = hi >>> 0;
        return;
      }
    }
    throw new ProtoError('varint', 'varint longer than 10 bytes', this.pos);
  }

  /** The low 32 bits of a varint, unsigned (tags, lengths, uint32). */
  uint32(): number {
    const b = this.buf;
    const p = this.pos;
    if (p < this.end && b[p]! < 0x80) {
      this.pos = p + 1;
      return b[p]!;
    }
    this.#varint64();
    return this.#lo;
  }

  int32(): number {
    return this.uint32() | 0;
  }

  sint32(): number {
    const v = this.uint32();
    return (v >>> 1) ^ -(v & 1);
  }

  bool(): boolean {
    this.#varint64();
    return this.#lo !== 0 || this.#hi !== 0;
  }

  #toInt64(lo: number, hi: number, signed: boolean): Int64 {
    if (signed && hi >= 0x80000000) {
      // negative: magnitude is the two's complement
      const mlo = (~lo + 1) >>> 0;
      const mhi = (~hi + (mlo === 0 ? 1 : 0)) >>> 0;
      if (mhi < 0x200000) return -(mhi * TWO32 + mlo);
      return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
    }
    if (hi < 0x200000) return hi * TWO32 + lo;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  int64(): Int64 {
    this.#varint64();
    return this.#toInt64(this.#lo, this.#hi, true);
  }

  uint64(): Int64 {
    this.#varint64();
    return this.#toInt64(this.#lo, this.#hi, false);
  }

  sint64(): Int64 {
    this.#varint64();
    const lo = this.#lo;
    const hi = this.#hi;
    const sign = -(lo & 1);
    return this.#toInt64((((lo >>> 1) | (hi << 31)) ^ sign) >>> 0, ((hi >>> 1) ^ sign) >>> 0, true);
  }

  fixed32(): number {
    this.#need(4);
    const v = this.#dv().getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  sfixed32(): number {
    this.#need(4);
    const v = this.#dv().getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  #fixed64(signed: boolean): Int64 {
    this.#need(8);
    const dv = this.#dv();
    const lo = dv.getUint32(this.pos, true);
    const hi = dv.getUint32(this.pos + 4, true);
    this.pos += 8;
    return this.#toInt64(lo, hi, signed);
  }

  fixed64(): Int64 {
    return this.#fixed64(false);
  }

  sfixed64(): Int64 {
    return this.#fixed64(true);
  }

  float(): number {
    this.#need(4);
    const v = this.#dv().getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.#need(8);
    const v = this.#dv().getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads a length prefix and checks the body fits; returns the body's end offset. */
  len(): number {
    const at = this.pos;
    const n = this.uint32();
    if (n > this.end - this.pos) throw new ProtoError('truncated', `length ${n} runs past the end`, at);
    return this.pos + n;
  }

  bytes(): Uint8Array {
    const end = this.len();
    const out = this.buf.slice(this.pos, end);
    this.pos = end;
    return out;
  }

  /** A UTF-8 string; invalid UTF-8 is a ProtoError (proto3 string fields must be valid). */
  string(): string {
    const end = this.len();
    const b = this.buf;
    let i = this.pos;
    let s = '';
    while (i < end) {
      const c = b[i]!;
      if (c < 0x80) {
        s += String.fromCharCode(c);
        i++;
        continue;
      }
      let cp: number;
      let need: number;
      let min: number;
      if (c >= 0xc2 && c <= 0xdf) {
        cp = c & 0x1f;
        need = 1;
        min = 0x80;
      } else if (c >= 0xe0 && c <= 0xef) {
        cp = c & 0x0f;
        need = 2;
        min = 0x800;
      } else if (c >= 0xf0 && c <= 0xf4) {
        cp = c & 0x07;
        need = 3;
        min = 0x10000;
      } else throw new ProtoError('utf8', 'string is not valid UTF-8', i);
      if (i + need >= end) throw new ProtoError('utf8', 'string is not valid UTF-8 (truncated sequence)', i);
      for (let j = 1; j <= need; j++) {
        const d = b[i + j]!;
        if ((d & 0xc0) !== 0x80) throw new ProtoError('utf8', 'string is not valid UTF-8', i);
        cp = (cp << 6) | (d & 0x3f);
      }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new ProtoError('utf8', 'string is not valid UTF-8', i);
      i += need + 1;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        s += String.fromCharCode(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else s += String.fromCharCode(cp);
    }
    this.pos = end;
    return s;
  }

  /** Reads a tag; field number 0 and wire types 6/7 are errors. */
  tag(): number {
    const at = this.pos;
    const t = this.uint32();
    if (t >>> 3 === 0) throw new ProtoError('field-number', 'field number 0', at);
    const wt = t & 7;
    if (wt > 5) throw new ProtoError('wire-type', `wire type ${wt}`, at);
    return t;
  }

  /**
   * Skips the value of an unknown field (or a known field with an unexpected wire type, as
   * protoc's generated code does). Groups are skipped iteratively, nesting bounded.
   */
  skip(tag: number): void {
    let depth = 0;
    let wt = tag & 7;
    let field = tag >>> 3;
    const open: number[] = [];
    for (;;) {
      switch (wt) {
        case 0:
          this.#varint64();
          break;
        case 1:
          this.#need(8);
          this.pos += 8;
          break;
        case 2:
          this.pos = this.len();
          break;
        case 5:
          this.#need(4);
          this.pos += 4;
          break;
        case 3:
          if (++depth > MAX_GROUP_DEPTH) throw new ProtoError('depth', 'groups nested too deep', this.pos);
          open.push(field);
          break;
        case 4:
          if (!open.length || open.pop() !== field) throw new ProtoError('wire-type', 'end-group without a matching start-group', this.pos);
          depth--;
          break;
        default:
          throw new ProtoError('wire-type', `wire type ${wt}`, this.pos);
      }
      if (!open.length) return;
      if (this.pos >= this.end) throw new ProtoError('truncated', 'group not closed', this.pos);
      const t = this.tag();
      wt = t & 7;
      field = t >>> 3;
    }
  }
}

/** Runs a generated decode and turns anything it throws into a ProtoError value. */
export function decodeWith<T>(bytes: Uint8Array, read: (r: Reader) => T): T | ProtoError {
  try {
    const r = new Reader(bytes);
    return read(r);
  } catch (e) {
    if (e instanceof ProtoError) return e;
    return new ProtoError('value', `decode failed: ${(e as Error)?.message ?? String(e)}`);
  }
}

// ---------------------------------------------------------------------------- TbValue conversions

// Shared by every generated module: toTb_* (a decoded message -> the JSON ThingsBoard stores) and
// fromTb_* (app values -> a message, each value checked against its field's type). `at` and `k`
// name the value in the error (e.g. 'telemetry.' + 'temperature').

/** An enum value's name (as JsonFormat prints it), or the number when the enum has no such value. */
export function enumName(e: Readonly<Record<string, number>>, v: number): TbValue {
  for (const k of Object.keys(e)) if (e[k] === v) return k;
  return v;
}

/** A 64-bit integer as JsonFormat prints it: a number when safe, else its decimal string. */
export function int64ToTb(v: Int64): TbValue {
  return typeof v === 'bigint' ? v.toString() : v;
}

function fail(at: string, k: string, what: string): never {
  throw new ProtoError('value', `${at}${k}: expected ${what}`);
}

export function asObject(v: TbValue, at: string, k: string): TbObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, k, 'an object');
  return v as TbObject;
}

export function asArray(v: TbValue, at: string, k: string): TbValue[] {
  if (!Array.isArray(v)) fail(at, k, 'an array');
  return v as TbValue[];
}

export function asNumber(v: TbValue, at: string, k: string): number {
  if (typeof v !== 'number') fail(at, k, 'a number');
  return v as number;
}

export function asBool(v: TbValue, at: string, k: string): boolean {
  if (typeof v !== 'boolean') fail(at, k, 'a boolean');
  return v as boolean;
}

export function asString(v: TbValue, at: string, k: string): string {
  if (typeof v !== 'string') fail(at, k, 'a string');
  return v as string;
}

/** A bytes field cannot be set from app values (TbValue has no binary form). */
export function asBytes(v: TbValue, at: string, k: string): Uint8Array {
  return fail(at, k, `bytes (not settable from a ${typeof v} value)`);
}

/** `type` is the field's proto type: uint32/fixed32 take 0..2^32-1, the others int32's range. */
export function asInt32(v: TbValue, at: string, k: string, type: string): number {
  const n = v as number;
  const lo = type === 'uint32' || type === 'fixed32' ? 0 : -2147483648;
  const hi = type === 'uint32' || type === 'fixed32' ? 4294967295 : 2147483647;
  if (typeof v !== 'number' || !Number.isInteger(n) || n < lo || n > hi) fail(at, k, `an integer for ${type}`);
  return n;
}

/** A safe integer (non-negative for uint64/fixed64). */
export function asInt64(v: TbValue, at: string, k: string, type: string): Int64 {
  const n = v as number;
  if (typeof v !== 'number' || !Number.isSafeInteger(n) || (n < 0 && (type === 'uint64' || type === 'fixed64'))) fail(at, k, `a safe integer for ${type}`);
  return n;
}

/** An enum value's name or an int32. */
export function asEnum(v: TbValue, e: Readonly<Record<string, number>>, at: string, k: string): number {
  if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(e, v)) return e[v]!;
  if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
  return fail(at, k, 'an enum name or number');
}

/** Standard base64 with padding (JsonFormat's form of a bytes field). */
export function base64(b: Uint8Array): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let s = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    s += A[(n >> 18) & 63]! + A[(n >> 12) & 63]! + (i + 1 < b.length ? A[(n >> 6) & 63]! : '=') + (i + 2 < b.length ? A[n & 63]! : '=');
  }
  return s;
}
