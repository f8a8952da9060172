/* Seeded randomness for the fuzzers: every case has its own seed derived from (run seed, case
 * index), so one failing case is reproduced from those two numbers alone. */

/** splitmix32-style mix of the run seed and the case index. */
export function caseSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0 || 1;
}

/** xorshift128 over 32-bit words. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    this.#a = seed >>> 0 || 1;
    this.#b = caseSeed(seed, 1);
    this.#c = caseSeed(seed, 2);
    this.#d = caseSeed(seed, 3);
  }
  u32(): number {
    let t = this.#d;
    const s = this.#a;
    this.#d = this.#c;
    this.#c = this.#b;
    this.#b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.#a = (t ^ s ^ (s >>> 19)) >>> 0;
    return this.#a;
  }
  /** Uniform in [0, 1). */
  next(): number { return this.u32() / 0x1_0000_0000; }
  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)]!; }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  fill(b: Uint8Array): void { for (let i = 0; i < b.length; i++) b[i] = this.u32() & 0xff; }
}

export function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}

export interface FuzzFailure { target: string; seed: number; index: number; message: string }

export interface FuzzResult {
  target: string;
  seed: number;
  /** Cases asked for and cases run (fewer when the time limit stopped the run). */
  requested: number;
  ran: number;
  ms: number;
  failures: FuzzFailure[];
  /** Extra figures (datagrams, state maxima). */
  figures?: Record<string, number>;
}
