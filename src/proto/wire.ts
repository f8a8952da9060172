/*
 * Protocol Buffers wire format (proto3) for the generated encoders/decoders in src/proto/gen/.
 * No reflection and no dependency: the generator (tools/proto/) emits straight-line code per
 * message over these two cursors.
 *
 * Encoding sizes the message first, then writes into one Uint8Array of exactly that size (the
 * only allocations are the output, the cursor, and a DataView when a float/fixed field is
 * written). Decoding checks every length against the buffer, so malformed input is a ProtoError
 * with a code and an offset, never a RangeError or TypeError.
 *
 * 64-bit integers (int64, uint64, sint64, fixed64, sfixed64) are `number | bigint`: a decoded
 * value is a number when it is a safe integer (|v| <= 2^53 - 1), else a bigint. Encoders take
 * either; a number must be an integer (a safe one to mean what it says).
 *
 * XS notes: no module-level mutable state (preloaded modules are frozen), class fields instead
 * of inherited property assignment, no recursion here (nesting depth is the schema's, which the
 * generator checks is not recursive).
 */

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
  // Class fields, not `this.name =`: Error.prototype is frozen on XS after preload.
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
  let n = 1;
  while (v >= 128 && n < 10) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
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

/** Bytes `s` takes in UTF-8 (lone surrogates as U+FFFD, 3 bytes). */
export function utf8Size(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Length prefix + body for a length-delimited field of `n` bytes. */
export function sizeLen(n: number): number {
  return sizeVarint32(n) + n;
}

export function sizeString(s: string): number {
  return sizeLen(utf8Size(s));
}

// ---------------------------------------------------------------------------- writer

export class Writer {
  readonly buf: Uint8Array;
  pos = 0;
  #view: DataView | undefined;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  #dv(): DataView {
    return (this.#view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  /** Unsigned 32-bit varint (tags, lengths, uint32, bool). */
  uint32(v: number): void {
    v >>>= 0;
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  tag(field: number, wireType: number): void {
    this.uint32(field * 8 + wireType);
  }

  int32(v: number): void {
    if (v < 0) this.#varint64(v >>> 0, 0xffffffff);
    else this.uint32(v);
  }

  sint32(v: number): void {
    this.uint32(((v << 1) ^ (v >> 31)) >>> 0);
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  #varint64(lo: number, hi: number): void {
    const b = this.buf;
    let p = this.pos;
    while (hi !== 0 || lo > 127) {
      b[p++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** The two's complement 64-bit halves of `v`, as [lo, hi] packed into the fixed/varint writers. */
  #lo = 0;
  #hi = 0;
  #split(v: Int64): void {
    if (typeof v === 'bigint') {
      const u = BigInt.asUintN(64, v);
      this.#lo = Number(u & 0xffffffffn);
      this.#hi = Number(u >> 32n);
      return;
    }
    const a = v < 0 ? -v : v;
    let lo = a >>> 0;
    let hi = Math.floor(a / TWO32) >>> 0;
    if (v < 0) {
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    this.#lo = lo;
    this.#hi = hi;
  }

  int64(v: Int64): void {
    this.#split(v);
    this.#varint64(this.#lo, this.#hi);
  }

  uint64(v: Int64): void {
    this.int64(v);
  }

  sint64(v: Int64): void {
    this.#split(v);
    const lo = this.#lo;
    const hi = this.#hi;
    const sign = hi >> 31;
    this.#varint64(((lo << 1) ^ sign) >>> 0, (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0);
  }

  fixed32(v: number): void {
    this.#dv().setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }

  sfixed32(v: number): void {
    this.#dv().setInt32(this.pos, v | 0, true);
    this.pos += 4;
  }

  fixed64(v: Int64): void {
    this.#split(v);
    const dv = this.#dv();
    dv.setUint32(this.pos, this.#lo, true);
    dv.setUint32(this.pos + 4, this.#hi, true);
    this.pos += 8;
  }

  sfixed64(v: Int64): void {
    this.fixed64(v);
  }

  float(v: number): void {
    this.#dv().setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  double(v: number): void {
    this.#dv().setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Length prefix then UTF-8; `n` is utf8Size(s), already computed by the size pass. */
  string(s: string, n: number): void {
    this.uint32(n);
    const out = this.buf;
    let o = this.pos;
    const len = s.length;
    for (let i = 0; i < len; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        out[o++] = c;
        continue;
      }
      if (c < 0x800) {
        out[o++] = 0xc0 | (c >> 6);
        out[o++] = 0x80 | (c & 0x3f);
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[o++] = 0xf0 | (cp >> 18);
          out[o++] = 0x80 | ((cp >> 12) & 0x3f);
          out[o++] = 0x80 | ((cp >> 6) & 0x3f);
          out[o++] = 0x80 | (cp & 0x3f);
          continue;
        }
        c = 0xfffd;
      }
      out[o++] = 0xe0 | (c >> 12);
      out[o++] = 0x80 | ((c >> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
    }
    this.pos = o;
  }

  bytes(v: Uint8Array): void {
    this.uint32(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
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
