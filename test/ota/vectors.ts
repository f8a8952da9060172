/*
 * Inputs for the checksum tests: deterministic bytes (xorshift32) of lengths that cross every block
 * and tail boundary of the hashes (4, 16, 64 and 128 byte blocks) plus a 1 MB image.
 */
export const LENGTHS = Object.freeze([0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 55, 56, 57, 63, 64, 65, 111, 112, 113, 127, 128, 129, 255, 256, 1000, 4096, 65537, 1 << 20]);

export function bytesOf(length: number, seed = length + 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** murmurhash3js-revisited's x64.hash128 ("h1 h2" as two big-endian hex numbers) -> Guava's notation (each 8 bytes little-endian). */
export function guava128(hex: string): string {
  const rev = (h: string) => Buffer.from(h, 'hex').reverse().toString('hex');
  return rev(hex.slice(0, 16)) + rev(hex.slice(16, 32));
}
