/*
 * A small power-loss-safe key/value store (keys 0..254, values up to a sector) for the records
 * that are replaced whole: credentials, settings. Log-structured over N >= 2 sectors (a sector is
 * one or more erase blocks) used in rotation, so erases spread over the region:
 *
 * - put() appends a new version of the key to the active sector, with a sequence number one above
 *   every other. The newest intact version of a key wins, so a put either happened (its record's
 *   CRCs hold) or did not (the old version is still the newest intact one): never neither.
 * - When the active sector has no room: compaction. The next sector in rotation is erased, the
 *   newest version of every live key (and the new value) is copied into it, and only then is its
 *   sector header written, with a sequence number above the active one's. The header is the commit
 *   point: a power cut anywhere before it leaves a sector without a valid header, ignored at boot,
 *   and the old sector still active and complete. The old sector is erased only when the rotation
 *   comes back to it, long after a newer complete one exists.
 * - open() reads the sector headers, takes the valid one with the highest sequence number, scans
 *   it, and indexes the newest intact record of each key (a torn or flipped one is counted in
 *   `stats.corrupt` and skipped, so the previous version of that key, if still there, wins).
 *
 * Flash full (the live values plus the new one do not fit in an empty sector) is a
 * StorageError 'flash-full', and nothing is changed.
 */
import type { Flash } from '../platform/types';
import { StorageError } from './errors';
import {
  KIND_TOMBSTONE,
  KIND_VALUE,
  blockHeaderSize,
  encodeBlockHeader,
  encodeRecord,
  readBlockHeader,
  recordSize,
  scanRecords,
  writeUnit,
} from './format';

export const KV_MAGIC = 0x3156_4b54; // "TKV1"

export interface KvOptions {
  /** Erase blocks per sector (default 1). A value must fit in one sector. */
  sectorBlocks?: number;
  /** Program granularity of the flash in bytes (default 4, ESP32). */
  writeSize?: number;
}

interface Entry {
  seq: number;
  offset: number;
  length: number;
  deleted: boolean;
}

export interface KvStats {
  /** Torn or bit-flipped records found by open(). */
  corrupt: number;
  compactions: number;
  /** Program and erase operations issued since open. */
  programs: number;
  erases: number;
}

export class KvStore {
  readonly sectorSize: number;
  readonly sectors: number;
  readonly stats: KvStats = { corrupt: 0, compactions: 0, programs: 0, erases: 0 };
  #flash: Flash;
  #sectorBlocks: number;
  #unit: number;
  #header: number;
  /** Active sector index, -1 when the region holds no valid sector yet. */
  #active = -1;
  #activeSeq = 0;
  #append = 0;
  #nextSeq = 1;
  #index = new Map<number, Entry>();

  constructor(flash: Flash, options: KvOptions = {}) {
    this.#flash = flash;
    this.#sectorBlocks = options.sectorBlocks ?? 1;
    this.#unit = writeUnit(options.writeSize ?? 4);
    this.#header = blockHeaderSize(this.#unit);
    this.sectorSize = this.#sectorBlocks * flash.blockSize;
    this.sectors = Math.floor(flash.byteLength / this.sectorSize);
    if (!(Number.isInteger(this.#sectorBlocks) && this.#sectorBlocks > 0) || this.sectors < 2)
      throw new StorageError('layout', `key/value store needs at least 2 sectors of ${this.#sectorBlocks} blocks (region has ${flash.byteLength / flash.blockSize} blocks)`);
    this.open();
  }

  /** Largest value one put() can take. */
  get maxValueLength(): number {
    return this.sectorSize - this.#header - recordSize(0, this.#unit);
  }

  /** Bytes left for appends in the active sector before the next put compacts. */
  get free(): number {
    return this.#active < 0 ? 0 : (this.#active + 1) * this.sectorSize - this.#append;
  }

  /** (Re)reads the store from flash, as at boot. */
  open(): void {
    this.#active = -1;
    this.#activeSeq = 0;
    this.#index.clear();
    this.stats.corrupt = 0;
    for (let s = 0; s < this.sectors; s++) {
      const h = readBlockHeader(this.#flash, s * this.sectorSize, KV_MAGIC);
      if (h && (this.#active < 0 || seqAfter(h.seq, this.#activeSeq))) {
        this.#active = s;
        this.#activeSeq = h.seq;
      }
    }
    this.#nextSeq = 1;
    if (this.#active < 0) return;
    const base = this.#active * this.sectorSize;
    const scan = scanRecords(this.#flash, base + this.#header, base + this.sectorSize, this.#unit, (r) => {
      if (r.kind !== KIND_VALUE && r.kind !== KIND_TOMBSTONE) return;
      const old = this.#index.get(r.key);
      if (!old || seqAfter(r.seq, old.seq)) this.#index.set(r.key, { seq: r.seq, offset: r.payload, length: r.length, deleted: r.kind === KIND_TOMBSTONE });
      if (seqAfter(r.seq + 1, this.#nextSeq)) this.#nextSeq = (r.seq + 1) >>> 0;
    });
    this.#append = scan.end;
    this.stats.corrupt = scan.corrupt;
  }

  has(key: number): boolean {
    const e = this.#index.get(key);
    return !!e && !e.deleted;
  }

  /** The newest intact value of `key`, or undefined. */
  get(key: number): Uint8Array | undefined {
    const e = this.#index.get(key);
    if (!e || e.deleted) return undefined;
    return this.#flash.read(e.offset, e.length);
  }

  /** Replaces the value of `key` atomically (see the file comment). */
  put(key: number, value: Uint8Array): void {
    this.#write(key, value, KIND_VALUE);
  }

  delete(key: number): void {
    if (this.#index.has(key)) this.#write(key, new Uint8Array(0), KIND_TOMBSTONE);
  }

  #write(key: number, value: Uint8Array, kind: number): void {
    if (!(Number.isInteger(key) && key >= 0 && key < 255)) throw new RangeError(`key ${key}: 0..254`);
    if (value.length > this.maxValueLength)
      throw new StorageError('too-large', `value of ${value.length} B for key ${key}: a sector holds at most ${this.maxValueLength} B`);
    const size = recordSize(value.length, this.#unit);
    if (this.#active >= 0 && this.#append + size <= (this.#active + 1) * this.sectorSize) {
      const seq = this.#nextSeq;
      const offset = this.#append;
      this.#program(offset, encodeRecord(kind, key, seq, value, this.#unit));
      this.#append += size;
      this.#nextSeq = (seq + 1) >>> 0;
      this.#index.set(key, { seq, offset: offset + 16, length: value.length, deleted: kind === KIND_TOMBSTONE });
      return;
    }
    this.#compact(key, value, kind);
  }

  /** Copies the live values and the new one into the next sector; its header commits. */
  #compact(key: number, value: Uint8Array, kind: number): void {
    const live: [number, Entry][] = [];
    let total = this.#header;
    for (const [k, e] of this.#index) {
      if (k === key || e.deleted) continue;
      live.push([k, e]);
      total += recordSize(e.length, this.#unit);
    }
    if (kind === KIND_VALUE) total += recordSize(value.length, this.#unit);
    if (total > this.sectorSize)
      throw new StorageError('flash-full', `key/value store full: ${total} B of live records for a ${this.sectorSize}-byte sector`);
    const target = this.#active < 0 ? 0 : (this.#active + 1) % this.sectors;
    const base = target * this.sectorSize;
    for (let b = 0; b < this.#sectorBlocks; b++) {
      this.stats.erases++;
      this.#flash.erase(target * this.#sectorBlocks + b);
    }
    const index = new Map<number, Entry>();
    let off = base + this.#header;
    for (const [k, e] of live) {
      const rec = encodeRecord(KIND_VALUE, k, e.seq, this.#flash.read(e.offset, e.length), this.#unit);
      this.#program(off, rec);
      index.set(k, { seq: e.seq, offset: off + 16, length: e.length, deleted: false });
      off += rec.length;
    }
    const seq = this.#nextSeq;
    if (kind === KIND_VALUE) {
      const rec = encodeRecord(kind, key, seq, value, this.#unit);
      this.#program(off, rec);
      index.set(key, { seq, offset: off + 16, length: value.length, deleted: false });
      off += rec.length;
    }
    const sectorSeq = this.#active < 0 ? 1 : (this.#activeSeq + 1) >>> 0;
    this.#program(base, encodeBlockHeader(KV_MAGIC, sectorSeq, [this.sectors, this.#sectorBlocks, 0, 0], this.#unit));
    // Committed.
    this.stats.compactions++;
    this.#active = target;
    this.#activeSeq = sectorSeq;
    this.#append = off;
    this.#nextSeq = (seq + 1) >>> 0;
    this.#index = index;
  }

  #program(offset: number, data: Uint8Array): void {
    this.stats.programs++;
    this.#flash.write(offset, data);
  }
}

/** Serial-number order (RFC 1982) on u32, so sequence numbers may wrap. */
export function seqAfter(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x8000_0000;
}
