/*
 * Host Flash (src/platform Flash) with NOR semantics and power-cut injection, in memory (MemFlash)
 * or backed by an image file (FileFlash, the simulator's persistent flash).
 *
 * Power cuts, two ways:
 * - `powerCutAfterBytes`: the next program/erase stops after that many bytes have reached the
 *   image (counted across operations) and throws PowerCut.
 * - `cutAt = { op, bytes }`: program/erase operation number `op` (1-based, counted by `stats.ops`)
 *   lets `bytes` bytes through and throws PowerCut. A test enumerates every op of a scenario and a
 *   few byte positions inside each, which is "a power cut at every program/erase step".
 * What a cut leaves: `tornMode` 'prefix' (default): the first bytes done, the rest untouched, as
 * when the chip programs in address order; 'noisy': bytes past the cut are half-done: a program
 * has cleared a random subset of the bits it meant to clear, an erase has set a random subset
 * (real NOR cells in the middle of a pulse read either way).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync, ftruncateSync } from 'node:fs';
import type { Flash } from '../../src/platform/types';

export class PowerCut extends Error {
  override readonly name = 'PowerCut';
  constructor() {
    super('simulated power cut');
  }
}

export interface FlashStats {
  reads: number;
  /** Program (write) operations. */
  writes: number;
  erases: number;
  /** writes + erases: the numbering `cutAt.op` uses. */
  ops: number;
  bytesWritten: number;
  /** Erases per block (wear). */
  eraseCounts: number[];
}

export class MemFlash implements Flash {
  readonly byteLength: number;
  readonly blockSize: number;
  /** Bytes that may still reach the image before a simulated power cut (undefined = no cut). */
  powerCutAfterBytes: number | undefined;
  /** Cut inside program/erase operation number `op` after `bytes` bytes (see the file comment). */
  cutAt: { op: number; bytes: number } | undefined;
  tornMode: 'prefix' | 'noisy' = 'prefix';
  readonly stats: FlashStats;
  protected image: Uint8Array;
  #noise = 0x2545f491;

  constructor(byteLength = 64 * 1024, blockSize = 4096, image?: Uint8Array) {
    if (!(blockSize > 0) || byteLength % blockSize) throw new RangeError('byteLength must be a multiple of blockSize');
    this.byteLength = byteLength;
    this.blockSize = blockSize;
    this.image = new Uint8Array(byteLength).fill(0xff);
    if (image) this.image.set(image.subarray(0, byteLength));
    this.stats = { reads: 0, writes: 0, erases: 0, ops: 0, bytesWritten: 0, eraseCounts: new Array<number>(byteLength / blockSize).fill(0) };
  }

  /** A copy of the whole image (to restore a scenario's starting point). */
  snapshot(): Uint8Array {
    return this.image.slice();
  }

  read(offset: number, byteLength: number): Uint8Array {
    this.#check(offset, byteLength);
    this.stats.reads++;
    return this.image.slice(offset, offset + byteLength);
  }

  write(offset: number, data: Uint8Array): void {
    this.#check(offset, data.length);
    this.stats.writes++;
    this.stats.ops++;
    const next = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) next[i] = this.image[offset + i]! & data[i]!; // NOR: bits only clear
    this.#commit(offset, next, 'program');
  }

  erase(block: number): void {
    if (!(Number.isInteger(block) && block >= 0 && block < this.byteLength / this.blockSize)) throw new RangeError(`flash: no block ${block}`);
    this.stats.erases++;
    this.stats.ops++;
    this.stats.eraseCounts[block]!++;
    this.#commit(block * this.blockSize, new Uint8Array(this.blockSize).fill(0xff), 'erase');
  }

  close(): void {}

  /** Where the bytes go once decided (FileFlash also writes them to its file). */
  protected store(offset: number, bytes: Uint8Array): void {
    this.image.set(bytes, offset);
  }

  #commit(offset: number, bytes: Uint8Array, kind: 'program' | 'erase'): void {
    let n = bytes.length;
    let cut = false;
    const byBytes = this.powerCutAfterBytes;
    if (byBytes !== undefined && byBytes < n) {
      n = byBytes;
      cut = true;
    }
    const at = this.cutAt;
    if (at && at.op === this.stats.ops) {
      // bytes >= the op's length: the op completes and the power goes right after it.
      n = Math.min(n, Math.max(0, at.bytes));
      cut = true;
      this.cutAt = undefined;
    }
    const out = bytes.slice();
    if (cut && this.tornMode === 'noisy') {
      for (let i = n; i < out.length; i++) {
        const old = this.image[offset + i]!;
        const r = this.#rand();
        out[i] = kind === 'program' ? old & (out[i]! | r) : old | r;
      }
      n = out.length;
    }
    if (n > 0) this.store(offset, out.subarray(0, n));
    this.stats.bytesWritten += n;
    if (byBytes !== undefined) this.powerCutAfterBytes = cut ? undefined : byBytes - n;
    if (cut) {
      this.powerCutAfterBytes = undefined;
      throw new PowerCut();
    }
  }

  #rand(): number {
    let x = this.#noise;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#noise = x >>> 0;
    return this.#noise & 0xff;
  }

  #check(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.byteLength))
      throw new RangeError(`flash: ${length} bytes at ${offset} outside the ${this.byteLength}-byte partition`);
  }
}

export class FileFlash extends MemFlash {
  #fd: number;

  /** Opens (or creates, erased) an image of `byteLength` bytes at `path`. */
  constructor(path: string, byteLength = 64 * 1024, blockSize = 4096) {
    super(byteLength, blockSize);
    const fresh = !existsSync(path);
    this.#fd = openSync(path, fresh ? 'w+' : 'r+');
    const size = fstatSync(this.#fd).size;
    if (size < byteLength) {
      ftruncateSync(this.#fd, byteLength);
      writeSync(this.#fd, new Uint8Array(byteLength - size).fill(0xff), 0, byteLength - size, size);
    }
    readSync(this.#fd, this.image, 0, byteLength, 0);
  }

  protected override store(offset: number, bytes: Uint8Array): void {
    super.store(offset, bytes);
    writeSync(this.#fd, bytes, 0, bytes.length, offset);
  }

  override close(): void {
    closeSync(this.#fd);
  }
}
