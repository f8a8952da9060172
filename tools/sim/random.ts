/* Host Random implementations: seeded (reproducible tests) and crypto-backed. */
import { randomFillSync } from 'node:crypto';
import type { Random } from '../../src/platform/types';

/** xorshift32: reproducible, not for keys. */
export class SeededRandom implements Random {
  #state: number;
  constructor(seed = 0x12345678) {
    this.#state = seed >>> 0 || 1;
  }
  #u32(): number {
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }
  fill(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.#u32() & 0xff;
  }
  next(): number {
    return this.#u32() / 0x1_0000_0000;
  }
}

export const cryptoRandom: Random = {
  fill(bytes: Uint8Array) {
    randomFillSync(bytes);
  },
  next() {
    const b = new Uint32Array(1);
    randomFillSync(b);
    return b[0]! / 0x1_0000_0000;
  },
};
