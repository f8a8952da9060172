/*
 * On-flash format shared by the settings store (kv.ts) and the queue ring (queue.ts).
 *
 * A block (or sector) starts with a block header, then records back to back:
 *
 *   block header, 32 B (padded to the write unit):
 *     0 magic u32 | 4 seq u32 | 8..24 four u32 fields the owner defines | 24 0xFFFFFFFF | 28 CRC-32 of 0..28
 *   record: 16 B header, payload, 0xFF padding to the write unit:
 *     0 kind u8 | 1 key u8 | 2 length u16 | 4 seq u32 | 8 CRC-32 of the payload | 12 CRC-32 of 0..12
 *
 * Little-endian. Erased flash is 0xFF, so a blank unit (all 0xFF) is free space and kind 0xFF is
 * never used. Every record starts on a write-unit boundary (16 B, or the flash's write size if
 * larger) and is written with ONE program operation, and no byte is ever programmed twice, which
 * also suits flash with per-word ECC that forbids re-programming.
 *
 * A power cut tears at most the record being written. The scan below detects a torn or bit-flipped
 * record by its two CRCs, skips it, and resynchronises on the next unit boundary that holds a valid
 * header, so records written after a torn one (after a reboot) are still found. `visit` returning
 * true stops the walk early (`end` is then where it stopped). The header CRC is
 * separate so a record whose length field is damaged is never trusted to skip by.
 */
import type { Flash } from '../platform/types';
import { crc32 } from './crc32';
import { StorageError } from './errors';

export const RECORD_HEADER = 16;
export const BLOCK_HEADER = 32;

/** Record kinds. */
export const KIND_READING = 1;
export const KIND_MARK = 2;
export const KIND_VALUE = 3;
export const KIND_TOMBSTONE = 4;

/** The alignment of records: 16 B, or the flash's write granularity when that is larger. */
export function writeUnit(writeSize: number): number {
  if (!(Number.isInteger(writeSize) && writeSize > 0 && (writeSize & (writeSize - 1)) === 0 && writeSize <= 256))
    throw new StorageError('layout', `write size ${writeSize}: expected a power of two from 1 to 256`);
  return Math.max(RECORD_HEADER, writeSize);
}

export function alignUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

export function blockHeaderSize(unit: number): number {
  return alignUp(BLOCK_HEADER, unit);
}

export function recordSize(payloadLength: number, unit: number): number {
  return alignUp(RECORD_HEADER + payloadLength, unit);
}

export interface BlockHeader {
  seq: number;
  fields: [number, number, number, number];
}

export function encodeBlockHeader(magic: number, seq: number, fields: readonly number[], unit: number): Uint8Array {
  const out = new Uint8Array(blockHeaderSize(unit)).fill(0xff);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic >>> 0, true);
  v.setUint32(4, seq >>> 0, true);
  for (let i = 0; i < 4; i++) v.setUint32(8 + i * 4, (fields[i] ?? 0) >>> 0, true);
  v.setUint32(28, crc32(out, 0, 0, 28), true);
  return out;
}

/** The header at `offset`, or undefined when it is blank, torn, corrupt or another store's. */
export function readBlockHeader(flash: Flash, offset: number, magic: number): BlockHeader | undefined {
  const b = flash.read(offset, BLOCK_HEADER);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== magic >>> 0) return undefined;
  if (v.getUint32(28, true) !== crc32(b, 0, 0, 28)) return undefined;
  return { seq: v.getUint32(4, true), fields: [v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true), v.getUint32(20, true)] };
}

export function encodeRecord(kind: number, key: number, seq: number, payload: Uint8Array, unit: number): Uint8Array {
  if (payload.length > 0xffff) throw new StorageError('too-large', `record of ${payload.length} B: at most 65535`);
  const out = new Uint8Array(recordSize(payload.length, unit)).fill(0xff);
  const v = new DataView(out.buffer);
  out[0] = kind;
  out[1] = key;
  v.setUint16(2, payload.length, true);
  v.setUint32(4, seq >>> 0, true);
  v.setUint32(8, crc32(payload), true);
  v.setUint32(12, crc32(out, 0, 0, 12), true);
  out.set(payload, RECORD_HEADER);
  return out;
}

export interface RecordRef {
  kind: number;
  key: number;
  length: number;
  seq: number;
  /** Offset of the record (its header) in the flash given to scan(). */
  offset: number;
  /** Offset of the payload. */
  payload: number;
}

export interface ScanResult {
  /** First offset after the last unit that is not blank: where the next record may go. */
  end: number;
  /** Runs of bad units (torn or bit-flipped records) skipped. */
  corrupt: number;
}

const CHUNK = 128;

function isBlank(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0xff) return false;
  return true;
}

function payloadCrc(flash: Flash, offset: number, length: number): number {
  let crc = 0;
  for (let done = 0; done < length; done += CHUNK) {
    const n = Math.min(CHUNK, length - done);
    crc = crc32(flash.read(offset + done, n), crc);
  }
  return crc;
}

/**
 * Walks the records in [from, limit) of `flash`, calling `visit` for each one whose both CRCs
 * hold (in address order). Bounded: at most (limit - from) / unit steps.
 */
export function scanRecords(flash: Flash, from: number, limit: number, unit: number, visit: (r: RecordRef) => boolean | void): ScanResult {
  let off = from;
  let end = from;
  let corrupt = 0;
  let inBad = false;
  while (off + RECORD_HEADER <= limit) {
    const h = flash.read(off, unit);
    if (isBlank(h)) {
      off += unit;
      continue;
    }
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const kind = h[0]!;
    const length = v.getUint16(2, true);
    const size = recordSize(length, unit);
    if (kind >= KIND_READING && kind <= KIND_TOMBSTONE && v.getUint32(12, true) === crc32(h, 0, 0, 12) && off + size <= limit) {
      if (payloadCrc(flash, off + RECORD_HEADER, length) === v.getUint32(8, true)) {
        const stop = visit({ kind, key: h[1]!, length, seq: v.getUint32(4, true), offset: off, payload: off + RECORD_HEADER });
        off += size;
        end = off;
        if (stop) break;
        inBad = false;
        continue;
      }
    }
    // Torn or flipped: not trusted to skip by its length. Try the next unit.
    if (!inBad) corrupt++;
    inBad = true;
    off += unit;
    end = off;
  }
  return { end, corrupt };
}
