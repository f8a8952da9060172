/*
 * A run of whole erase blocks of a Flash, seen as a Flash of its own: lets one partition hold
 * the settings store and the queue ring side by side without either knowing.
 */
import type { Flash } from '../platform/types';
import { StorageError } from './errors';

export class FlashRegion implements Flash {
  readonly byteLength: number;
  readonly blockSize: number;
  #flash: Flash;
  #firstBlock: number;
  #base: number;

  constructor(flash: Flash, firstBlock: number, blockCount: number) {
    const total = flash.byteLength / flash.blockSize;
    if (!(Number.isInteger(firstBlock) && Number.isInteger(blockCount) && firstBlock >= 0 && blockCount > 0 && firstBlock + blockCount <= total))
      throw new StorageError('layout', `flash region: blocks ${firstBlock}..${firstBlock + blockCount - 1} outside the ${total}-block partition`);
    this.#flash = flash;
    this.#firstBlock = firstBlock;
    this.blockSize = flash.blockSize;
    this.#base = firstBlock * flash.blockSize;
    this.byteLength = blockCount * flash.blockSize;
  }

  read(offset: number, byteLength: number): Uint8Array {
    this.#check(offset, byteLength);
    return this.#flash.read(this.#base + offset, byteLength);
  }

  write(offset: number, data: Uint8Array): void {
    this.#check(offset, data.length);
    this.#flash.write(this.#base + offset, data);
  }

  erase(block: number): void {
    if (!(Number.isInteger(block) && block >= 0 && block < this.byteLength / this.blockSize)) throw new RangeError(`flash region: no block ${block}`);
    this.#flash.erase(this.#firstBlock + block);
  }

  #check(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.byteLength))
      throw new RangeError(`flash region: ${length} bytes at ${offset} outside its ${this.byteLength} bytes`);
  }
}
