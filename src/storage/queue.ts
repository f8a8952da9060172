/*
 * The offline queue: readings waiting for the server's confirmation, oldest first.
 *
 * ReadingQueue is what DeviceApp uses; RamQueue keeps it in RAM (lost on reboot), FlashQueue in
 * a flash ring that survives reboots and power cuts:
 *
 * - Every reading is appended (write-ahead, before it is sent) as one record with a sequence
 *   number, its original timestamp and its values (JSON). A block is erased only just before it
 *   is reused, and the blocks are used in ring order, so every block gets the same erase count.
 * - A reading is removed only when the server confirmed it: confirm(seq) appends a small mark
 *   record "everything up to seq is consumed" (one program per confirmed batch, not per reading).
 *   A power cut before the mark is written means the batch is sent again after reboot, with the
 *   same timestamps; ThingsBoard keeps one point per (key, ts), so it is stored once.
 * - Full ring: the next block in ring order still holds readings not confirmed; they are dropped
 *   (the oldest, a block's worth), counted in `dropped`, and the count is persisted in the new
 *   block's header and in every mark. A cut between that erase and the header is recovered at
 *   boot: readings missing between the last mark and the oldest one left are counted as dropped.
 * - open() (boot) scans every block: valid headers give the ring order, records give the newest
 *   mark and the readings left; torn and bit-flipped records are skipped (stats.corrupt).
 *
 * Sequence numbers are u32 and not expected to wrap (8000 years at a reading a minute).
 */
import type { Flash } from '../platform/types';
import type { TbObject } from '../thingsboard/payload';
import { decodeUtf8, encodeUtf8 } from '../coap/utf8';
import { StorageError } from './errors';
import { KIND_MARK, KIND_READING, blockHeaderSize, encodeBlockHeader, encodeRecord, readBlockHeader, recordSize, scanRecords, writeUnit } from './format';

export interface Reading {
  /** Epoch ms when the reading was taken (sent as the telemetry `ts`). */
  ts: number;
  values: TbObject;
}

export interface QueuedReading extends Reading {
  seq: number;
}

export interface ReadingQueue {
  /** Readings waiting (approximate for a flash ring holding a corrupt record). */
  readonly length: number;
  /** Readings dropped so far (ring full, or rejected by the server); survives reboots in flash. */
  readonly dropped: number;
  push(reading: Reading): void;
  /** Up to `max` of the oldest readings, without removing them. */
  peek(max: number): QueuedReading[];
  /** The server confirmed every reading up to and including `seq`. */
  confirm(seq: number): void;
  /** The server will never take the readings up to `seq`: removed and counted as dropped. */
  discard(seq: number): void;
}

/** A bounded queue in RAM: oldest dropped (and counted) when full. */
export class RamQueue implements ReadingQueue {
  #items: QueuedReading[] = [];
  #capacity: number;
  #nextSeq = 1;
  #dropped = 0;

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  get length(): number {
    return this.#items.length;
  }

  get dropped(): number {
    return this.#dropped;
  }

  push(reading: Reading): void {
    if (this.#items.length >= this.#capacity) {
      this.#items.shift();
      this.#dropped++;
    }
    this.#items.push({ seq: this.#nextSeq++, ts: reading.ts, values: reading.values });
  }

  peek(max: number): QueuedReading[] {
    return this.#items.slice(0, max);
  }

  confirm(seq: number): void {
    while (this.#items.length && this.#items[0]!.seq <= seq) this.#items.shift();
  }

  discard(seq: number): void {
    while (this.#items.length && this.#items[0]!.seq <= seq) {
      this.#items.shift();
      this.#dropped++;
    }
  }
}

export const QUEUE_MAGIC = 0x3151_4254; // "TBQ1"

export interface FlashQueueOptions {
  /** Program granularity of the flash in bytes (default 4, ESP32). */
  writeSize?: number;
  /** Largest reading record (default 512 B); a bigger one is a StorageError 'too-large'. */
  maxRecordBytes?: number;
}

export interface FlashQueueStats {
  programs: number;
  erases: number;
  /** Torn or bit-flipped records skipped at open(). */
  corrupt: number;
}

export class FlashQueue implements ReadingQueue {
  readonly blocks: number;
  readonly stats: FlashQueueStats = { programs: 0, erases: 0, corrupt: 0 };
  #flash: Flash;
  #unit: number;
  #header: number;
  #maxRecord: number;
  /** Per block: header sequence number (0 = no valid header), first and last reading seq in it (0 = none). */
  #blockSeq: Uint32Array;
  #first: Uint32Array;
  #last: Uint32Array;
  #tail = -1;
  #tailOff = 0;
  #topBlockSeq = 0;
  #consumed = 0;
  #dropped = 0;
  #nextSeq = 1;

  constructor(flash: Flash, options: FlashQueueOptions = {}) {
    this.#flash = flash;
    this.#unit = writeUnit(options.writeSize ?? 4);
    this.#header = blockHeaderSize(this.#unit);
    this.blocks = flash.byteLength / flash.blockSize;
    if (!(this.blocks >= 2 && Number.isInteger(this.blocks))) throw new StorageError('layout', 'the queue ring needs at least 2 erase blocks');
    this.#maxRecord = Math.min(options.maxRecordBytes ?? 512, flash.blockSize - this.#header);
    this.#blockSeq = new Uint32Array(this.blocks);
    this.#first = new Uint32Array(this.blocks);
    this.#last = new Uint32Array(this.blocks);
    this.open();
  }

  get length(): number {
    return Math.max(0, this.#nextSeq - 1 - this.#consumed);
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Readings the ring holds at most (with records of `recordBytes` payload bytes). */
  capacity(recordBytes: number): number {
    const per = Math.floor((this.#flash.blockSize - this.#header) / recordSize(recordBytes, this.#unit));
    return per * (this.blocks - 1);
  }

  /** (Re)reads the ring from flash, as at boot. */
  open(): void {
    const bs = this.#flash.blockSize;
    this.#tail = -1;
    this.#topBlockSeq = 0;
    this.#consumed = 0;
    this.#dropped = 0;
    this.stats.corrupt = 0;
    let maxSeq = 0;
    let tailEnd = 0;
    for (let b = 0; b < this.blocks; b++) {
      this.#blockSeq[b] = 0;
      this.#first[b] = 0;
      this.#last[b] = 0;
      const h = readBlockHeader(this.#flash, b * bs, QUEUE_MAGIC);
      if (!h || h.seq === 0) continue;
      this.#blockSeq[b] = h.seq;
      this.#mark(h.fields[0], h.fields[1]);
      const scan = scanRecords(this.#flash, b * bs + this.#header, (b + 1) * bs, this.#unit, (r) => {
        if (r.kind === KIND_READING) {
          if (!this.#first[b]) this.#first[b] = r.seq;
          this.#last[b] = r.seq;
          if (r.seq > maxSeq) maxSeq = r.seq;
        } else if (r.kind === KIND_MARK && r.length >= 8) {
          const m = this.#flash.read(r.payload, 8);
          const v = new DataView(m.buffer, m.byteOffset, 8);
          this.#mark(v.getUint32(0, true), v.getUint32(4, true));
        }
      });
      this.stats.corrupt += scan.corrupt;
      if (h.seq > this.#topBlockSeq) {
        // The newest block is the tail: appends go after its last non-blank unit (past any torn record).
        this.#topBlockSeq = h.seq;
        this.#tail = b;
        tailEnd = scan.end - b * bs;
      }
    }
    this.#tailOff = tailEnd;
    this.#nextSeq = Math.max(maxSeq, this.#consumed) + 1;
    // Readings missing between the last mark and the oldest one left were dropped (a cut between
    // the erase of a full ring's oldest block and its new header lost that count).
    let oldest = 0;
    for (let b = 0; b < this.blocks; b++) {
      if (!this.#blockSeq[b] || this.#last[b]! <= this.#consumed) continue;
      const first = this.#first[b]! > this.#consumed ? this.#first[b]! : this.#consumed + 1;
      if (!oldest || first < oldest) oldest = first;
    }
    if (oldest > this.#consumed + 1) {
      this.#dropped += oldest - this.#consumed - 1;
      this.#consumed = oldest - 1;
    }
  }

  push(reading: Reading): void {
    const json = encodeUtf8(JSON.stringify(reading.values));
    const payload = new Uint8Array(8 + json.length);
    new DataView(payload.buffer).setFloat64(0, reading.ts, true);
    payload.set(json, 8);
    const size = recordSize(payload.length, this.#unit);
    if (size > this.#maxRecord) throw new StorageError('too-large', `reading of ${payload.length} B: the queue takes at most ${this.#maxRecord - 16} B`);
    this.#room(size);
    const seq = this.#nextSeq;
    this.#program(this.#tail * this.#flash.blockSize + this.#tailOff, encodeRecord(KIND_READING, 0, seq, payload, this.#unit));
    this.#tailOff += size;
    if (!this.#first[this.#tail]) this.#first[this.#tail] = seq;
    this.#last[this.#tail] = seq;
    this.#nextSeq = seq + 1;
  }

  peek(max: number): QueuedReading[] {
    const out: QueuedReading[] = [];
    if (max <= 0 || this.length === 0) return out;
    const bs = this.#flash.blockSize;
    // Blocks in ring order (oldest header first); at most `blocks` passes.
    let after = 0;
    for (let pass = 0; pass < this.blocks && out.length < max; pass++) {
      let b = -1;
      for (let i = 0; i < this.blocks; i++) {
        const s = this.#blockSeq[i]!;
        if (s > after && (b < 0 || s < this.#blockSeq[b]!)) b = i;
      }
      if (b < 0) break;
      after = this.#blockSeq[b]!;
      if (this.#last[b]! <= this.#consumed) continue;
      const limit = b === this.#tail ? b * bs + this.#tailOff : (b + 1) * bs;
      scanRecords(this.#flash, b * bs + this.#header, limit, this.#unit, (r) => {
        if (r.kind !== KIND_READING || r.seq <= this.#consumed) return false;
        const reading = this.#decode(r.payload, r.length, r.seq);
        if (reading) out.push(reading);
        return out.length >= max;
      });
    }
    // Only corrupt records left between the mark and the end: nothing more to send.
    if (out.length === 0) this.#consumed = this.#nextSeq - 1;
    return out;
  }

  confirm(seq: number): void {
    seq = Math.min(seq, this.#nextSeq - 1);
    if (seq <= this.#consumed) return;
    this.#consumed = seq;
    this.#writeMark();
  }

  discard(seq: number): void {
    seq = Math.min(seq, this.#nextSeq - 1);
    if (seq <= this.#consumed) return;
    this.#dropped += seq - this.#consumed;
    this.#consumed = seq;
    this.#writeMark();
  }

  #decode(offset: number, length: number, seq: number): QueuedReading | undefined {
    if (length < 8) return undefined;
    const p = this.#flash.read(offset, length);
    try {
      const ts = new DataView(p.buffer, p.byteOffset, 8).getFloat64(0, true);
      const values = JSON.parse(decodeUtf8(p, 8)) as TbObject;
      return { seq, ts, values };
    } catch {
      return undefined;
    }
  }

  #writeMark(): void {
    const payload = new Uint8Array(8);
    const v = new DataView(payload.buffer);
    v.setUint32(0, this.#consumed, true);
    v.setUint32(4, this.#dropped, true);
    const size = recordSize(8, this.#unit);
    this.#room(size);
    this.#program(this.#tail * this.#flash.blockSize + this.#tailOff, encodeRecord(KIND_MARK, 0, this.#consumed, payload, this.#unit));
    this.#tailOff += size;
  }

  #mark(consumed: number, dropped: number): void {
    if (consumed > this.#consumed) this.#consumed = consumed;
    if (dropped > this.#dropped) this.#dropped = dropped;
  }

  /** Makes room for `size` bytes at the tail: the next block in ring order, erased. */
  #room(size: number): void {
    const bs = this.#flash.blockSize;
    if (this.#tail >= 0 && this.#tailOff + size <= bs) return;
    const next = this.#tail < 0 ? 0 : (this.#tail + 1) % this.blocks;
    if (this.#blockSeq[next] && this.#last[next]! > this.#consumed) {
      // Ring full: the oldest readings go. Counted before the erase, persisted in the new header.
      const from = Math.max(this.#consumed, this.#first[next]! - 1);
      this.#dropped += this.#last[next]! - from;
      this.#consumed = this.#last[next]!;
    }
    this.#blockSeq[next] = 0;
    this.#first[next] = 0;
    this.#last[next] = 0;
    this.stats.erases++;
    this.#flash.erase(next);
    const seq = this.#topBlockSeq + 1;
    this.#program(next * bs, encodeBlockHeader(QUEUE_MAGIC, seq, [this.#consumed, this.#dropped, 0, 0], this.#unit));
    this.#blockSeq[next] = seq;
    this.#topBlockSeq = seq;
    this.#tail = next;
    this.#tailOff = this.#header;
  }

  #program(offset: number, data: Uint8Array): void {
    this.stats.programs++;
    this.#flash.write(offset, data);
  }
}
