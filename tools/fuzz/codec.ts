/*
 * Codec fuzzer (src/coap/codec.ts). Each case is one datagram or one message object:
 *   - random bytes, and valid encodings with bit flips, truncation, insertions: decode() either
 *     returns a message or throws CoapFormatError; a decoded message re-encodes to the same bytes
 *     (the wire format has exactly one encoding per message), and the option getters
 *     (getBlock, getObserve, getUintOption) throw nothing but CoapFormatError;
 *   - random message objects, valid or not: encode() either throws CoapFormatError or produces
 *     bytes that decode() reads back as the same message (options stably sorted by number).
 */
import { decode, encode, getBlock, getObserve, getUintOption } from '../../src/coap/codec';
import { CoapFormatError } from '../../src/coap/errors';
import { OptionNumber, type CoapMessage, type CoapOption } from '../../src/coap/types';
import { Rng, caseSeed, hex, type FuzzFailure, type FuzzResult } from './rng';

const OPTION_NUMBERS = [1, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 258, 292, 2048, 65000, 65535];
const CODES = [0, 1, 2, 3, 4, 5, 0x41, 0x44, 0x45, 0x5f, 0x80, 0x81, 0x84, 0x8d, 0xa0, 0xe0, 0xff];

function randomOptions(r: Rng): CoapOption[] {
  const out: CoapOption[] = [];
  const n = r.int(7);
  for (let i = 0; i < n; i++) {
    const number = r.chance(0.8) ? r.pick(OPTION_NUMBERS) : r.int(0x10000);
    const len = r.chance(0.9) ? r.int(16) : r.pick([12, 13, 14, 268, 269, 270, 600]);
    out.push({ number, value: r.bytes(len) });
  }
  return out;
}

export function randomMessage(r: Rng): CoapMessage {
  const code = r.pick(CODES);
  const empty = code === 0 && r.chance(0.7);
  return {
    type: r.int(4),
    code,
    messageId: r.int(0x10000),
    token: empty ? new Uint8Array(0) : r.bytes(r.int(9)),
    options: empty ? [] : randomOptions(r),
    payload: empty || r.chance(0.3) ? new Uint8Array(0) : r.bytes(1 + r.int(r.chance(0.9) ? 40 : 1500)),
  };
}

/** A message that breaks one rule (or none), for encode(). */
function maybeInvalid(r: Rng, m: CoapMessage): CoapMessage {
  switch (r.int(12)) {
    case 0: return { ...m, token: r.bytes(9 + r.int(4)) };
    case 1: return { ...m, options: [...m.options, { number: r.pick([11.5, -1, 65536, Number.NaN, 1e9]), value: new Uint8Array(0) }] };
    case 2: return { ...m, code: 0, token: m.token.length ? m.token : Uint8Array.of(1) };
    case 3: return { ...m, code: 0, payload: Uint8Array.of(1) };
    case 4: return { ...m, type: r.pick([4, -1, 1.5]) as never };
    case 5: return { ...m, messageId: r.pick([-1, 0x10000, 1.5]) };
    case 6: return { ...m, code: r.pick([-1, 256, 0.5]) };
    default: return m;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function stableSorted(options: CoapOption[]): CoapOption[] {
  return options.map((o, i) => ({ o, i })).sort((x, y) => x.o.number - y.o.number || x.i - y.i).map((x) => x.o);
}

function sameMessage(a: CoapMessage, b: CoapMessage): string | null {
  if (a.type !== b.type) return `type ${a.type} != ${b.type}`;
  if (a.code !== b.code) return `code ${a.code} != ${b.code}`;
  if (a.messageId !== b.messageId) return `mid ${a.messageId} != ${b.messageId}`;
  if (!sameBytes(a.token, b.token)) return 'token differs';
  if (!sameBytes(a.payload, b.payload)) return 'payload differs';
  const ao = stableSorted(a.options);
  if (ao.length !== b.options.length) return `option count ${ao.length} != ${b.options.length}`;
  for (let i = 0; i < ao.length; i++) {
    if (ao[i]!.number !== b.options[i]!.number) return `option ${i}: number ${ao[i]!.number} != ${b.options[i]!.number}`;
    if (!sameBytes(ao[i]!.value, b.options[i]!.value)) return `option ${i} (${ao[i]!.number}): value differs`;
  }
  return null;
}

function mutate(r: Rng, b: Uint8Array): Uint8Array {
  let out = b.slice();
  const n = 1 + r.int(4);
  for (let k = 0; k < n; k++) {
    switch (r.int(5)) {
      case 0: if (out.length) out[r.int(out.length)] ^= 1 << r.int(8); break;
      case 1: if (out.length) out[r.int(out.length)] = r.int(256); break;
      case 2: out = out.subarray(0, r.int(out.length + 1)).slice(); break;
      case 3: {
        const at = r.int(out.length + 1);
        const ins = r.bytes(1 + r.int(4));
        const o = new Uint8Array(out.length + ins.length);
        o.set(out.subarray(0, at));
        o.set(ins, at);
        o.set(out.subarray(at), at + ins.length);
        out = o;
        break;
      }
      default: if (out.length > 4) out[4 + r.int(out.length - 4)] = r.pick([0xff, 0xd0, 0xe0, 0x0d, 0x0e, 0xf0, 0x0f]);
    }
  }
  return out;
}

/** Property check of one datagram. Returns a failure message or null. */
export function checkDatagram(bytes: Uint8Array): string | null {
  let m: CoapMessage;
  try {
    m = decode(bytes);
  } catch (e) {
    return e instanceof CoapFormatError ? null : `decode threw ${(e as Error).name}: ${(e as Error).message} on ${hex(bytes)}`;
  }
  try {
    getBlock(m, OptionNumber.BLOCK1);
    getBlock(m, OptionNumber.BLOCK2);
    getObserve(m);
    getUintOption(m, OptionNumber.CONTENT_FORMAT);
  } catch (e) {
    if (!(e instanceof CoapFormatError)) return `option getter threw ${(e as Error).name} on ${hex(bytes)}`;
  }
  let again: Uint8Array;
  try {
    again = encode(m);
  } catch (e) {
    return `decoded message does not re-encode (${(e as Error).message}): ${hex(bytes)}`;
  }
  if (!sameBytes(again, bytes)) return `re-encoding differs: ${hex(bytes)} -> ${hex(again)}`;
  return null;
}

/** Property check of one message object. */
export function checkMessage(m: CoapMessage): string | null {
  let bytes: Uint8Array;
  try {
    bytes = encode(m);
  } catch (e) {
    return e instanceof CoapFormatError ? null : `encode threw ${(e as Error).name}: ${(e as Error).message}`;
  }
  let back: CoapMessage;
  try {
    back = decode(bytes);
  } catch (e) {
    return `encode produced bytes decode rejects (${e instanceof CoapFormatError ? e.reason : (e as Error).message}): ${hex(bytes)} from ${describe(m)}`;
  }
  const diff = sameMessage(m, back);
  return diff ? `decode(encode(m)) differs: ${diff}; m = ${describe(m)}` : null;
}

function describe(m: CoapMessage): string {
  return JSON.stringify({ type: m.type, code: m.code, mid: m.messageId, token: hex(m.token), options: m.options.map((o) => [o.number, hex(o.value)]), payload: hex(m.payload) });
}

/** Runs case `index` of run `seed`. */
export function codecCase(seed: number, index: number): string | null {
  const r = new Rng(caseSeed(seed, index));
  const kind = r.int(8);
  if (kind < 2) return checkMessage(maybeInvalid(r, randomMessage(r)));
  if (kind < 3) return checkDatagram(r.bytes(r.int(48)));
  let valid: Uint8Array;
  try {
    valid = encode(randomMessage(r));
  } catch {
    return null; // an unrepresentable random message: checked by checkMessage cases
  }
  return checkDatagram(kind < 4 ? valid : mutate(r, valid));
}

export function fuzzCodec(o: { count: number; seed: number; deadline?: number; onlyCase?: number }): FuzzResult {
  const start = Date.now();
  const failures: FuzzFailure[] = [];
  let ran = 0;
  const first = o.onlyCase ?? 0;
  const end = o.onlyCase !== undefined ? o.onlyCase + 1 : o.count;
  for (let i = first; i < end; i++) {
    if ((i & 1023) === 0 && o.deadline !== undefined && Date.now() > o.deadline) break;
    const f = codecCase(o.seed, i);
    ran++;
    if (f) {
      failures.push({ target: 'codec', seed: o.seed, index: i, message: f });
      if (failures.length >= 10) break;
    }
  }
  return { target: 'codec', seed: o.seed, requested: end - first, ran, ms: Date.now() - start, failures };
}
