/*
 * The device's generated Protobuf code (npm run proto: test/proto/gen/alltypes.ts from
 * test/proto/alltypes.proto) against protobufjs, on random messages of every field type, seeded:
 * device encode -> protobufjs decode, protobufjs encode -> device decode, and the bytes themselves
 * (both write fields in number order, packed repeated scalars, no defaults).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import * as gen from './gen/alltypes';
import { FloatScratch, ProtoError } from '../../src/proto/wire';
import type { Int64 } from '../../src/proto/wire';

const CASES = 3000;
const scratch = new FloatScratch();

/** mulberry32: small seeded PRNG so every failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const root = protobuf.parse(readFileSync(join(__dirname, 'alltypes.proto'), 'utf8')).root;
root.resolveAll();
const All = root.lookupType('alltypes.All');
const Inner = root.lookupType('alltypes.Inner');

type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: R, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

function rBig(r: R): bigint {
  return (BigInt(int(r, 0, 0xffffffff)) << 32n) | BigInt(int(r, 0, 0xffffffff));
}
function rInt32(r: R): number {
  return pick(r, [0, 1, -1, 127, 128, 300, -300, 2147483647, -2147483648, int(r, -2147483648, 2147483647), int(r, -1000, 1000)]);
}
function rUint32(r: R): number {
  return pick(r, [0, 1, 127, 128, 16383, 16384, 4294967295, int(r, 0, 4294967295), int(r, 0, 1000)]);
}
function rInt64(r: R): Int64 {
  const v = pick(r, [0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32), int(r, -1e6, 1e6), 'big', 'big', 'max', 'min'] as const);
  if (v === 'big') return normalize(BigInt.asIntN(64, rBig(r)));
  if (v === 'max') return 9223372036854775807n;
  if (v === 'min') return -9223372036854775808n;
  return v;
}
function rUint64(r: R): Int64 {
  const v = pick(r, [0, 1, Number.MAX_SAFE_INTEGER, 2 ** 32, int(r, 0, 1e9), 'big', 'big', 'max'] as const);
  if (v === 'big') return normalize(BigInt.asUintN(64, rBig(r)));
  if (v === 'max') return 18446744073709551615n;
  return v;
}
/** The device's rule: a safe integer is a number, anything else a bigint. */
function normalize(v: bigint): Int64 {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
function rDouble(r: R): number {
  return pick(r, [0, -0, 1, -1, 0.1, 1e308, -1e-308, 5e-324, Infinity, -Infinity, (r() - 0.5) * 1e6, r(), (r() - 0.5) * 2 ** int(r, -1000, 1000)]);
}
function rFloat(r: R): number {
  return Math.fround(pick(r, [0, -0, 1, -1, 21.37, 3.4e38, 1e-45, Infinity, -Infinity, (r() - 0.5) * 1e4, r()]));
}
function rString(r: R): string {
  const n = int(r, 0, 12);
  let s = '';
  for (let i = 0; i < n; i++) {
    const kind = int(r, 0, 4);
    if (kind === 0) s += String.fromCharCode(int(r, 0, 0x7f));
    else if (kind === 1) s += String.fromCharCode(int(r, 0x80, 0x7ff));
    else if (kind === 2) s += String.fromCharCode(pick(r, [int(r, 0x800, 0xd7ff), int(r, 0xe000, 0xffff)]));
    else if (kind === 3) s += String.fromCodePoint(int(r, 0x10000, 0x10ffff));
    else s += pick(r, ['ts', 'values', '°C', 'é', '😀', '']);
  }
  return s;
}
function rBytes(r: R): Uint8Array {
  const b = new Uint8Array(int(r, 0, 20));
  for (let i = 0; i < b.length; i++) b[i] = int(r, 0, 255);
  return b;
}
const rEnum = (r: R): number => pick(r, [0, 1, 2, -1, 7, 1000]);
const rep = <T>(r: R, f: (r: R) => T): T[] => Array.from({ length: pick(r, [0, 1, 2, int(r, 0, 8)]) }, () => f(r));
const maybe = (r: R): boolean => r() < 0.6;

function rInner(r: R): gen.Inner {
  const m: gen.Inner = {};
  if (maybe(r)) m.a = rInt32(r);
  if (maybe(r)) m.s = rString(r);
  if (maybe(r)) m.zs = rep(r, rInt64);
  return m;
}

function rAll(r: R): gen.All {
  const m: gen.All = {};
  const set = <K extends keyof gen.All>(k: K, f: (r: R) => gen.All[K]): void => {
    if (maybe(r)) m[k] = f(r);
  };
  set('d', rDouble); set('f', rFloat); set('i32', rInt32); set('i64', rInt64); set('u32', rUint32); set('u64', rUint64);
  set('s32', rInt32); set('s64', rInt64); set('f32', rUint32); set('f64', rUint64); set('sf32', rInt32); set('sf64', rInt64);
  set('b', (r) => r() < 0.5); set('s', rString); set('by', rBytes); set('e', rEnum); set('m', rInner);
  set('od', rDouble); set('oi32', rInt32); set('oi64', rInt64); set('ob', (r) => r() < 0.5); set('os', rString); set('oby', rBytes);
  set('oe', rEnum); set('os32', rInt32); set('of64', rUint64); set('of', rFloat);
  set('rd', (r) => rep(r, rDouble)); set('rf', (r) => rep(r, rFloat)); set('ri32', (r) => rep(r, rInt32)); set('ri64', (r) => rep(r, rInt64));
  set('ru32', (r) => rep(r, rUint32)); set('ru64', (r) => rep(r, rUint64)); set('rs32', (r) => rep(r, rInt32)); set('rs64', (r) => rep(r, rInt64));
  set('rf32', (r) => rep(r, rUint32)); set('rf64', (r) => rep(r, rUint64)); set('rsf32', (r) => rep(r, rInt32)); set('rsf64', (r) => rep(r, rInt64));
  set('rb', (r) => rep(r, (r) => r() < 0.5)); set('rs', (r) => rep(r, rString)); set('rby', (r) => rep(r, rBytes)); set('re', (r) => rep(r, rEnum));
  set('rm', (r) => rep(r, rInner)); set('unpacked', (r) => rep(r, rInt32));
  const c = int(r, 0, 3);
  if (c === 1) m.cStr = rString(r);
  else if (c === 2) m.cMsg = rInner(r);
  else if (c === 3) m.cInt = rInt64(r);
  set('maxFieldNumber', rInt32);
  return m;
}

/** Canonical JSON-able form of a message (either side), for comparison. */
function canon(type: protobuf.Type, o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    const v = o[f.name];
    const one = (x: unknown): unknown => {
      if (f.resolvedType instanceof protobuf.Type) return canon(f.resolvedType, x as Record<string, unknown>);
      if (['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(f.type)) {
        if (x && typeof x === 'object') return String(x); // a Long
        return BigInt(x as number | bigint).toString();
      }
      if (f.type === 'bytes') return Buffer.from(x as Uint8Array).toString('hex');
      if (typeof x === 'number') return Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x === Infinity ? 'Inf' : x === -Infinity ? '-Inf' : x;
      return x;
    };
    if (f.repeated) out[f.name] = ((v as unknown[] | undefined) ?? []).map(one);
    else if (f.hasPresence) out[f.name] = v === undefined || v === null ? null : one(v);
    else out[f.name] = v === undefined || v === null ? one(defaultFor(f)) : one(v);
  }
  return out;
}
function defaultFor(f: protobuf.Field): unknown {
  if (f.type === 'string') return '';
  if (f.type === 'bool') return false;
  if (f.type === 'bytes') return new Uint8Array(0);
  return 0;
}

/** A device-shaped message as protobufjs fromObject input (int64 as decimal strings). */
function toPbjs(type: protobuf.Type, o: Record<string, unknown>, dropDefaults: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    const v = o[f.name];
    if (v === undefined) continue;
    const one = (x: unknown): unknown =>
      f.resolvedType instanceof protobuf.Type ? toPbjs(f.resolvedType, x as Record<string, unknown>, dropDefaults) : typeof x === 'bigint' || (['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(f.type)) ? BigInt(x as number).toString() : x;
    if (f.repeated) {
      if (dropDefaults && !(v as unknown[]).length) continue;
      out[f.name] = (v as unknown[]).map(one);
    } else {
      // proto3 implicit presence: a default is not on the wire, so protobufjs must not be told to write it
      if (dropDefaults && !f.hasPresence) {
        const isDefault = f.type === 'bytes' ? (v as Uint8Array).length === 0 : typeof v === 'number' ? v === 0 && !Object.is(v, -0) : v === 0n || v === '' || v === false;
        if (isDefault) continue;
      }
      out[f.name] = one(v);
    }
  }
  return out;
}

describe('proto: generated device code vs protobufjs (property-based, seeded)', function () {
  it(`device encode -> protobufjs decode, ${CASES} random messages of every field type`, () => {
    const r = rng(0x5eed);
    for (let i = 0; i < CASES; i++) {
      const m = rAll(r);
      const bytes = gen.encodeAll(m);
      let decoded: protobuf.Message;
      try {
        decoded = All.decode(bytes);
      } catch (e) {
        assert.fail(`case ${i}: protobufjs could not decode: ${(e as Error).message}`);
      }
      assert.deepEqual(canon(All, All.toObject(decoded, { longs: String }) as Record<string, unknown>), canon(All, m as Record<string, unknown>), `case ${i}`);
    }
  });

  it(`protobufjs encode -> device decode, ${CASES} random messages`, () => {
    const r = rng(0xbeef);
    for (let i = 0; i < CASES; i++) {
      const m = rAll(r);
      const bytes = All.encode(All.fromObject(toPbjs(All, m as Record<string, unknown>, false))).finish();
      const back = gen.decodeAll(bytes);
      assert.ok(!(back instanceof ProtoError), `case ${i}: ${back instanceof ProtoError ? back.message : ''}`);
      assert.deepEqual(canon(All, back as Record<string, unknown>), canon(All, m as Record<string, unknown>), `case ${i}`);
    }
  });

  it(`the same bytes as protobufjs when defaults are left out, ${CASES} random messages`, () => {
    // protobufjs 7 writes repeated scalars of a parsed proto3 schema unpacked (both forms are
    // valid on the wire; the device packs, as protoc does): those fields are left out here and
    // covered by the two tests above and the packed/unpacked test below.
    const PACKABLE = ['rd', 'rf', 'ri32', 'ri64', 'ru32', 'ru64', 'rs32', 'rs64', 'rf32', 'rf64', 'rsf32', 'rsf64', 'rb', 're'] as const;
    const r = rng(0xc0de);
    for (let i = 0; i < CASES; i++) {
      const m = rAll(r);
      for (const k of PACKABLE) delete m[k];
      const strip = (x: gen.Inner | undefined): void => {
        if (x) delete x.zs;
      };
      strip(m.m);
      strip(m.cMsg);
      m.rm?.forEach(strip);
      // through a FloatScratch here (the codec's path); the first test covers the arithmetic path
      const mine = Buffer.from(gen.encodeAll(m, scratch)).toString('hex');
      assert.equal(Buffer.from(gen.encodeAll(m)).toString('hex'), mine, `case ${i}: with and without a FloatScratch`);
      const theirs = Buffer.from(All.encode(All.fromObject(toPbjs(All, m as Record<string, unknown>, true))).finish()).toString('hex');
      assert.equal(mine, theirs, `case ${i}: ${JSON.stringify(m, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    }
  });

  it('64-bit values: a safe integer decodes as a number, anything larger as a bigint', () => {
    const cases: [Int64, Int64][] = [
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      [Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER],
      [9007199254740992n, 9007199254740992n],
      [-9007199254740992n, -9007199254740992n],
      [-1, -1],
      [9223372036854775807n, 9223372036854775807n],
      [-9223372036854775808n, -9223372036854775808n],
      [1700000000123n, 1700000000123], // a bigint in, a safe value: a number out
    ];
    for (const [input, want] of cases) {
      for (const k of ['i64', 's64', 'sf64'] as const) {
        const back = gen.decodeAll(gen.encodeAll({ [k]: input }));
        assert.ok(!(back instanceof ProtoError));
        assert.equal(back[k], want, `${k} ${input}`);
        assert.equal(typeof back[k], typeof want, `${k} ${input} type`);
      }
    }
    const u = gen.decodeAll(gen.encodeAll({ u64: 18446744073709551615n, f64: -1n }));
    assert.ok(!(u instanceof ProtoError));
    assert.equal(u.u64, 18446744073709551615n);
    assert.equal(u.f64, 18446744073709551615n, 'fixed64 -1 is 2^64-1 unsigned');
  });

  it('optional presence: an optional zero is on the wire and decodes as set; an implicit zero is not', () => {
    const bytes = gen.encodeAll({ i32: 0, oi32: 0, s: '', os: '', b: false, ob: false, d: -0 });
    const pb = All.toObject(All.decode(bytes), { oneofs: false }) as Record<string, unknown>;
    assert.equal(pb.oi32, 0);
    assert.equal(pb.os, '');
    assert.equal(pb.ob, false);
    const back = gen.decodeAll(bytes);
    assert.ok(!(back instanceof ProtoError));
    assert.equal(back.oi32, 0);
    assert.equal(back.os, '');
    assert.equal(back.ob, false);
    assert.equal(back.od, undefined, 'unset optional stays unset');
    assert.ok(Object.is(back.d, -0), '-0.0 is not the default (its bits are not zero): written and read back');
    assert.equal(back.i32, 0, 'implicit default present after decode');
    // Implicit zero fields take no bytes: only d (-0), oi32, os, ob are on the wire
    assert.equal(bytes.length, 9 + 3 + 3 + 3);
  });

  it('unknown fields of every wire type are skipped, a known field with another wire type too', () => {
    // field 100 varint, 101 fixed64, 102 len, 103 group {field 1 varint}, 104 fixed32, then i32 = 5,
    // then field 3 (i32) as fixed32 (wrong wire type: skipped as unknown), then s = "ok"
    const w: number[] = [];
    const tag = (f: number, wt: number): void => {
      let v = f * 8 + wt;
      while (v > 127) { w.push((v & 0x7f) | 0x80); v >>>= 7; }
      w.push(v);
    };
    tag(100, 0); w.push(0x96, 0x01);
    tag(101, 1); w.push(1, 2, 3, 4, 5, 6, 7, 8);
    tag(102, 2); w.push(3, 9, 9, 9);
    tag(103, 3); tag(1, 0); w.push(1); tag(103, 4);
    tag(104, 5); w.push(1, 2, 3, 4);
    tag(3, 0); w.push(5);
    tag(3, 5); w.push(9, 9, 9, 9);
    tag(14, 2); w.push(2, 0x6f, 0x6b);
    const back = gen.decodeAll(new Uint8Array(w));
    assert.ok(!(back instanceof ProtoError), back instanceof ProtoError ? back.message : '');
    assert.equal(back.i32, 5);
    assert.equal(back.s, 'ok');
    // (protobufjs reads a known field number whatever its wire type, and fails on this input;
    // protobuf-java, which ThingsBoard uses, skips it as an unknown field, as the device does.)
    assert.throws(() => All.decode(new Uint8Array(w)));
  });

  it('packed and unpacked repeated fields both decode (proto3 parsers must accept both)', () => {
    const packed = gen.encodeAll({ ri32: [1, -1, 300] });
    const unpacked = gen.encodeAll({ unpacked: [1, -1, 300] });
    assert.deepEqual([packed[0], packed[1]], [0x82, 0x02], 'field 32, wire type 2 (packed)');
    assert.deepEqual([unpacked[0], unpacked[1]], [0xf8, 0x02], 'field 47, wire type 0 ([packed = false])');
    // re-tag the unpacked encoding as field 32 (ri32), element by element
    const asRi32 = Buffer.from(unpacked).toString('hex').replace(/f802/g, '8002');
    const back = gen.decodeAll(Buffer.from(asRi32, 'hex'));
    assert.ok(!(back instanceof ProtoError));
    assert.deepEqual(back.ri32, [1, -1, 300]);
    const back2 = gen.decodeAll(packed);
    assert.ok(!(back2 instanceof ProtoError));
    assert.deepEqual(back2.ri32, [1, -1, 300]);
    assert.equal(Inner.fieldsArray.length, 3, "the fixture's nested message is what protobufjs sees too");
  });

  it('a message field seen twice is merged, a oneof keeps the last member', () => {
    const a = gen.encodeAll({ m: { a: 1, zs: [1] } });
    const b = gen.encodeAll({ m: { s: 'x', zs: [2] } });
    const both = new Uint8Array([...a, ...b]);
    const back = gen.decodeAll(both);
    assert.ok(!(back instanceof ProtoError));
    assert.deepEqual({ a: back.m!.a, s: back.m!.s, zs: back.m!.zs }, { a: 1, s: 'x', zs: [1, 2] });
    // (protobufjs replaces the earlier occurrence instead; the encoding spec and protobuf-java merge.)
    const one = gen.decodeAll(new Uint8Array([...gen.encodeAll({ cStr: 'a' }), ...gen.encodeAll({ cInt: 5 })]));
    assert.ok(!(one instanceof ProtoError));
    assert.equal(one.cStr, undefined);
    assert.equal(one.cInt, 5);
  });
});

describe('proto: float and double bits without a DataView', () => {
  it('the arithmetic path matches the IEEE 754 encoding for edge values and 20000 random ones', () => {
    const dv = new DataView(new ArrayBuffer(8));
    const r = rng(0xf10a7);
    const edges = [0, -0, 1, -1, 2, 0.5, 3, 1.5, 2 ** 127, 2 ** -126, 2 ** -149, 2 ** -127, 3.4028234663852886e38, 3.5e38, 1e-46, 2 ** 1023, 2 ** -1022, 2 ** -1074, 5e-324, 1.7976931348623157e308, Infinity, -Infinity, NaN, 0.1, 1 / 3, 16777217, 2 ** 53 + 2];
    for (let e = -1074; e <= 1023; e++) edges.push(2 ** e, 2 ** e * (1 + 2 ** -52), 2 ** e * (2 - 2 ** -52));
    const values = [...edges, ...Array.from({ length: 20000 }, () => (r() - 0.5) * 2 ** int(r, -1100, 1100))];
    for (const v of values) {
      const viaMath = gen.encodeAll({ od: v, of: v });
      const viaScratch = gen.encodeAll({ od: v, of: v }, scratch);
      dv.setFloat64(0, v, true);
      const d = Buffer.from(new Uint8Array(dv.buffer, 0, 8)).toString('hex');
      dv.setFloat32(0, v, true);
      const f = Buffer.from(new Uint8Array(dv.buffer, 0, 4)).toString('hex');
      const want = `9101${d}dd01${f}`;
      assert.equal(Buffer.from(viaMath).toString('hex'), want, `arithmetic ${v}`);
      assert.equal(Buffer.from(viaScratch).toString('hex'), want, `scratch ${v}`);
    }
  });
});
