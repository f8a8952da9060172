/*
 * Host Flash (src/platform Flash) backed by an image file, with NOR semantics and power-cut
 * injection: `powerCutAfterBytes` stops the next write/erase after that many bytes have reached
 * the image and throws PowerCut, leaving the image exactly as a real cut would (a torn write).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync, ftruncateSync } from 'node:fs';
import type { Flash } from '../../src/platform/types';

export class PowerCut extends Error {
  constructor() {
    super('simulated power cut');
    this.name = 'PowerCut';
  }
}

export class FileFlash implements Flash {
  readonly byteLength: number;
  readonly blockSize: number;
  /** Bytes that may still reach the image before a simulated power cut (undefined = no cut). */
  powerCutAfterBytes: number | undefined;
  readonly stats = { reads: 0, writes: 0, erases: 0, bytesWritten: 0 };
  #fd: number;

  /** Opens (or creates, erased) an image of `byteLength` bytes at `path`. */
  constructor(path: string, byteLength = 64 * 1024, blockSize = 4096) {
    if (byteLength % blockSize) throw new RangeError('byteLength must be a multiple of blockSize');
    this.byteLength = byteLength;
    this.blockSize = blockSize;
    const fresh = !existsSync(path);
    this.#fd = openSync(path, fresh ? 'w+' : 'r+');
    const size = fstatSync(this.#fd).size;
    if (size < byteLength) {
      ftruncateSync(this.#fd, byteLength);
      writeSync(this.#fd, new Uint8Array(byteLength - size).fill(0xff), 0, byteLength - size, size);
    }
  }

  read(offset: number, byteLength: number): Uint8Array {
    this.#check(offset, byteLength);
    this.stats.reads++;
    const out = new Uint8Array(byteLength);
    readSync(this.#fd, out, 0, byteLength, offset);
    return out;
  }

  write(offset: number, data: Uint8Array): void {
    this.#check(offset, data.length);
    this.stats.writes++;
    const old = this.read(offset, data.length);
    const next = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) next[i] = old[i]! & data[i]!; // NOR: bits only clear
    this.#commit(offset, next);
  }

  erase(block: number): void {
    if (!(block >= 0 && block < this.byteLength / this.blockSize)) throw new RangeError(`flash: no block ${block}`);
    this.stats.erases++;
    this.#commit(block * this.blockSize, new Uint8Array(this.blockSize).fill(0xff));
  }

  close(): void {
    closeSync(this.#fd);
  }

  #commit(offset: number, bytes: Uint8Array): void {
    let n = bytes.length;
    const cut = this.powerCutAfterBytes;
    if (cut !== undefined && cut < n) n = cut;
    if (n > 0) writeSync(this.#fd, bytes, 0, n, offset);
    this.stats.bytesWritten += n;
    if (cut !== undefined) {
      this.powerCutAfterBytes = cut - n;
      if (n < bytes.length) {
        this.powerCutAfterBytes = undefined;
        throw new PowerCut();
      }
    }
  }

  #check(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.byteLength))
      throw new RangeError(`flash: ${length} bytes at ${offset} outside the ${this.byteLength}-byte partition`);
  }
}
