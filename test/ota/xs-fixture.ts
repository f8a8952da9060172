/*
 * OTA device code on XS: every checksum of src/ota/hash.ts over inputs of every boundary length,
 * whole and in pieces. Bundled into the xsnap worker by xs.test.ts (no Node API may be reachable
 * from here), and run on Node by the same test to compare.
 */
import { CHECKSUM_ALGORITHMS, createChecksum } from '../../src/ota/hash';
import { runOnXsIfHere } from '../xs/fixtures/harness';

export const XS_LENGTHS = Object.freeze([0, 1, 3, 4, 15, 16, 17, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 4096, 65537]);

function bytesOf(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = length + 1;
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

export function scenario(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const alg of CHECKSUM_ALGORITHMS) {
    out[alg] = XS_LENGTHS.map((n) => {
      const data = bytesOf(n);
      const whole = createChecksum(alg);
      whole.update(data);
      const pieces = createChecksum(alg);
      for (let i = 0; i < n; i += 100) pieces.update(data, i, Math.min(n, i + 100));
      const a = whole.digestHex(), b = pieces.digestHex();
      return a === b ? a : `whole ${a} != pieces ${b}`;
    });
  }
  return out;
}

runOnXsIfHere(scenario);
