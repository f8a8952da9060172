/*
 * RFC 7252 §3 message format: encode/decode of CoapMessage, option value formats (§3.2),
 * Uri-Path/Uri-Query construction (§6.4), Block1/Block2 (RFC 7959 §2.2) and Observe (RFC 7641).
 *
 * encode() computes the exact size first and writes into a single Uint8Array.
 * decode() returns option values and the payload as views (subarray) into the input: copy them if
 * the input buffer is going to be reused.
 */
import { CoapFormatError } from './errors';
import { CoapType, OptionNumber, type CoapMessage, type CoapOption } from './types';
import { encodeUtf8 } from './utf8';

const EMPTY: Uint8Array = new Uint8Array(0);
const PAYLOAD_MARKER = 0xff;

/** Bytes of option header extension needed for a delta or a length (0, 1 or 2). */
function extSize(n: number): number {
  return n < 13 ? 0 : n < 269 ? 1 : 2;
}

/**
 * Stable insertion sort by option number on a copy (option lists are short); the list itself when
 * already sorted. One flat frame: encode() runs at the bottom of deep call chains on a device with a
 * small XS stack.
 */
function sortedOptions(options: CoapOption[]): CoapOption[] {
  let k = 1;
  while (k < options.length && options[k]!.number >= options[k - 1]!.number) k++;
  if (k >= options.length) return options;
  const out = options.slice();
  for (let i = 1; i < out.length; i++) {
    const o = out[i]!;
    let j = i - 1;
    while (j >= 0 && out[j]!.number > o.number) {
      out[j + 1] = out[j]!;
      j--;
    }
    out[j + 1] = o;
  }
  return out;
}

/** Exact encoded size of `msg` in bytes. */
export function encodedSize(msg: CoapMessage): number {
  let size = 4 + msg.token.length;
  const options = msg.options;
  // Delta extension sizes depend on the order, so measure the sorted list.
  const sorted = sortedOptions(options);
  let prev = 0;
  for (let i = 0; i < sorted.length; i++) {
    const o = sorted[i]!;
    const len = o.value.length;
    size += 1 + extSize(o.number - prev) + extSize(len) + len;
    prev = o.number;
  }
  if (msg.payload.length > 0) size += 1 + msg.payload.length;
  return size;
}

/**
 * Encodes `msg` (options sorted by number, stable). Throws CoapFormatError for anything decode()
 * would reject or read back differently: type not 0..3, token longer than 8, message ID or code out
 * of range, an option number that is not an integer 0..65535, an option too long, and an Empty
 * message (code 0.00) with a token, options or a payload (RFC 7252 §1.2, §4.1).
 */
export function encode(msg: CoapMessage): Uint8Array {
  const token = msg.token;
  const tkl = token.length;
  if (tkl > 8) throw new CoapFormatError('token-length');
  if (!(msg.type >= 0 && msg.type <= 3) || msg.type !== (msg.type | 0)) throw new CoapFormatError('type');
  const mid = msg.messageId;
  if (!(mid >= 0 && mid <= 0xffff) || mid !== (mid | 0)) throw new CoapFormatError('message-id');
  const code = msg.code;
  if (!(code >= 0 && code <= 0xff) || code !== (code | 0)) throw new CoapFormatError('code');
  const options = sortedOptions(msg.options);
  const payload = msg.payload;
  if (code === 0 && (tkl > 0 || options.length > 0 || payload.length > 0)) throw new CoapFormatError('empty-with-data');

  let size = 4 + tkl;
  let prev = 0;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const len = o.value.length;
    const delta = o.number - prev;
    if (!(o.number >= 0 && o.number <= 0xffff) || o.number !== (o.number | 0)) throw new CoapFormatError('option-number');
    if (len > 65804) throw new CoapFormatError('option-length');
    size += 1 + extSize(delta) + extSize(len) + len;
    prev = o.number;
  }
  if (payload.length > 0) size += 1 + payload.length;

  const out = new Uint8Array(size);
  out[0] = 0x40 | (msg.type << 4) | tkl;
  out[1] = code;
  out[2] = mid >> 8;
  out[3] = mid & 0xff;
  let p = 4;
  if (tkl > 0) {
    out.set(token, p);
    p += tkl;
  }
  prev = 0;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const value = o.value;
    const len = value.length;
    const delta = o.number - prev;
    prev = o.number;
    const head = p++;
    let dn: number;
    if (delta < 13) dn = delta;
    else if (delta < 269) {
      dn = 13;
      out[p++] = delta - 13;
    } else {
      dn = 14;
      const d = delta - 269;
      out[p++] = d >> 8;
      out[p++] = d & 0xff;
    }
    let ln: number;
    if (len < 13) ln = len;
    else if (len < 269) {
      ln = 13;
      out[p++] = len - 13;
    } else {
      ln = 14;
      const l = len - 269;
      out[p++] = l >> 8;
      out[p++] = l & 0xff;
    }
    out[head] = (dn << 4) | ln;
    if (len === 1) out[p++] = value[0]!;
    else if (len > 0) {
      out.set(value, p);
      p += len;
    }
  }
  if (payload.length > 0) {
    out[p++] = PAYLOAD_MARKER;
    out.set(payload, p);
  }
  return out;
}

/**
 * Decodes one datagram. Throws CoapFormatError (and only that) when the datagram is malformed:
 * reasons 'truncated-header', 'version', 'token-length', 'truncated-token', 'empty-with-data',
 * 'reserved-delta', 'reserved-length', 'truncated-option', 'option-number',
 * 'empty-payload-after-marker'.
 */
export function decode(data: Uint8Array): CoapMessage {
  const n = data.length;
  if (n < 4) throw new CoapFormatError('truncated-header');
  const b0 = data[0]!;
  if (b0 >> 6 !== 1) throw new CoapFormatError('version');
  const tkl = b0 & 0x0f;
  if (tkl > 8) throw new CoapFormatError('token-length');
  const type = ((b0 >> 4) & 3) as CoapType;
  const code = data[1]!;
  const messageId = (data[2]! << 8) | data[3]!;
  if (4 + tkl > n) throw new CoapFormatError('truncated-token');
  if (code === 0 && n > 4) throw new CoapFormatError('empty-with-data');
  const token = tkl === 0 ? EMPTY : data.subarray(4, 4 + tkl);
  const options: CoapOption[] = [];
  let payload = EMPTY;
  let p = 4 + tkl;
  let number = 0;
  while (p < n) {
    const b = data[p++]!;
    if (b === PAYLOAD_MARKER) {
      if (p >= n) throw new CoapFormatError('empty-payload-after-marker');
      payload = data.subarray(p, n);
      break;
    }
    let delta = b >> 4;
    let len = b & 0x0f;
    if (delta === 15) throw new CoapFormatError('reserved-delta');
    if (len === 15) throw new CoapFormatError('reserved-length');
    if (delta === 13) {
      if (p >= n) throw new CoapFormatError('truncated-option');
      delta = data[p++]! + 13;
    } else if (delta === 14) {
      if (p + 1 >= n) throw new CoapFormatError('truncated-option');
      delta = ((data[p]! << 8) | data[p + 1]!) + 269;
      p += 2;
    }
    if (len === 13) {
      if (p >= n) throw new CoapFormatError('truncated-option');
      len = data[p++]! + 13;
    } else if (len === 14) {
      if (p + 1 >= n) throw new CoapFormatError('truncated-option');
      len = ((data[p]! << 8) | data[p + 1]!) + 269;
      p += 2;
    }
    number += delta;
    if (number > 0xffff) throw new CoapFormatError('option-number');
    if (p + len > n) throw new CoapFormatError('truncated-option');
    options.push({ number, value: data.subarray(p, p + len) });
    p += len;
  }
  return { type, code, messageId, token, options, payload };
}

/** Empty message (code 0.00): empty ACK, RST, CoAP ping. */
export function isEmptyMessage(msg: CoapMessage): boolean {
  return msg.code === 0;
}
export function isRequestCode(code: number): boolean {
  return code !== 0 && code >> 5 === 0;
}
export function isResponseCode(code: number): boolean {
  const c = code >> 5;
  return c >= 2 && c <= 5;
}
export function isSuccessCode(code: number): boolean {
  return code >> 5 === 2;
}
export function isErrorCode(code: number): boolean {
  const c = code >> 5;
  return c === 4 || c === 5;
}

/** Builds an empty ACK or RST for a received message ID. */
export function emptyMessage(type: CoapType, messageId: number): Uint8Array {
  const out = new Uint8Array(4);
  out[0] = 0x40 | (type << 4);
  out[2] = messageId >> 8;
  out[3] = messageId & 0xff;
  return out;
}

// ---- option value formats (RFC 7252 §3.2) ----

/** uint option value in minimal length (0 is the empty value). Valid for 0..2^32-1. */
export function encodeUint(value: number): Uint8Array {
  if (!(value >= 0 && value <= 0xffffffff) || Math.floor(value) !== value) {
    throw new CoapFormatError('uint-range', `uint option value out of range: ${value}`);
  }
  if (value === 0) return new Uint8Array(0);
  if (value < 0x100) return Uint8Array.of(value);
  if (value < 0x10000) return Uint8Array.of(value >>> 8, value & 0xff);
  if (value < 0x1000000) return Uint8Array.of(value >>> 16, (value >>> 8) & 0xff, value & 0xff);
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** uint option value (leading zeros allowed). Throws CoapFormatError above 4 bytes. */
export function decodeUint(value: Uint8Array): number {
  if (value.length > 4) throw new CoapFormatError('uint-length');
  let n = 0;
  for (let i = 0; i < value.length; i++) n = n * 256 + value[i]!;
  return n;
}

export function stringOption(number: number, value: string): CoapOption {
  return { number, value: encodeUtf8(value) };
}

export function uintOption(number: number, value: number): CoapOption {
  return { number, value: encodeUint(value) };
}

/**
 * Uri-Path options from `path` split on '/' (empty segments, as from a leading or trailing '/',
 * are skipped) and one Uri-Query option per `query` entry.
 */
export function buildUriOptions(path: string, query?: readonly string[]): CoapOption[] {
  const options: CoapOption[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path.charCodeAt(i) === 47 /* '/' */) {
      if (i > start) options.push(stringOption(OptionNumber.URI_PATH, path.slice(start, i)));
      start = i + 1;
    }
  }
  if (query) for (const q of query) options.push(stringOption(OptionNumber.URI_QUERY, q));
  return options;
}

/** An option list, or anything carrying one (CoapMessage, CoapResponse). */
export type OptionSource = readonly CoapOption[] | { readonly options: readonly CoapOption[] };

export function getOption(options: OptionSource, number: number): CoapOption | undefined {
  const list: readonly CoapOption[] = Array.isArray(options) ? options : (options as { readonly options: readonly CoapOption[] }).options;
  for (let i = 0; i < list.length; i++) if (list[i]!.number === number) return list[i];
  return undefined;
}

export function getOptions(options: OptionSource, number: number): CoapOption[] {
  const list: readonly CoapOption[] = Array.isArray(options) ? options : (options as { readonly options: readonly CoapOption[] }).options;
  const out: CoapOption[] = [];
  for (let i = 0; i < list.length; i++) if (list[i]!.number === number) out.push(list[i]!);
  return out;
}

/** The uint value of the first option `number`, or undefined. */
export function getUintOption(options: OptionSource, number: number): number | undefined {
  const o = getOption(options, number);
  return o ? decodeUint(o.value) : undefined;
}

// ---- Block1/Block2 (RFC 7959 §2.2) ----

export interface BlockValue {
  /** Block number, 0..2^20-1. */
  num: number;
  /** M: more blocks follow (Block2), or more blocks will be sent (Block1). */
  more: boolean;
  /** Size exponent 0..6: block size 2^(szx+4). */
  szx: number;
}

export function blockSize(szx: number): number {
  return 1 << (szx + 4);
}

export function encodeBlock(block: BlockValue): Uint8Array {
  if (!(block.szx >= 0 && block.szx <= 6)) throw new CoapFormatError('block-szx');
  if (!(block.num >= 0 && block.num < 0x100000)) throw new CoapFormatError('block-num');
  return encodeUint(block.num * 16 + (block.more ? 8 : 0) + block.szx);
}

/** Throws CoapFormatError for a value longer than 3 bytes or the reserved SZX 7. */
export function decodeBlock(value: Uint8Array): BlockValue {
  if (value.length > 3) throw new CoapFormatError('block-length');
  const v = decodeUint(value);
  const szx = v & 7;
  if (szx === 7) throw new CoapFormatError('block-szx');
  return { num: v >>> 4, more: (v & 8) !== 0, szx };
}

export function getBlock(options: OptionSource, number: number): BlockValue | undefined {
  const o = getOption(options, number);
  return o ? decodeBlock(o.value) : undefined;
}

// ---- Observe (RFC 7641) ----

/** Observe option value: 0..2^24-1 (3 bytes at most). */
export function decodeObserve(value: Uint8Array): number {
  if (value.length > 3) throw new CoapFormatError('observe-length');
  return decodeUint(value);
}

export function getObserve(options: OptionSource): number | undefined {
  const o = getOption(options, OptionNumber.OBSERVE);
  return o ? decodeObserve(o.value) : undefined;
}
