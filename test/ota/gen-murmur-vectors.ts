/*
 * Writes test/ota/murmur-vectors.json: MurmurHash3 digests of the inputs in vectors.ts, computed by
 * the npm package murmurhash3js-revisited 3.0.0 (independent of src/ota/hash.ts), in ThingsBoard's
 * (Guava's) notation: x86_32 as the int's bytes little-endian; x64_128 as h1 then h2, each 8 bytes
 * little-endian (Guava's Murmur3_128Hasher.makeHash puts both longs into a LITTLE_ENDIAN buffer, as the
 * reference C code writes them). The package prints each of h1 and h2 as a big-endian hex number, so
 * each half is byte-reversed here.
 *
 *   (cd /tmp && npm install murmurhash3js-revisited@3.0.0) && NODE_PATH=/tmp/node_modules npx tsx test/ota/gen-murmur-vectors.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesOf, guava128, LENGTHS } from './vectors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const mm = require('murmurhash3js-revisited') as { x86: { hash32(b: Uint8Array): number }; x64: { hash128(b: Uint8Array): string } };

function le32(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b.toString('hex');
}

const out: Record<string, { MURMUR3_32: string; MURMUR3_128: string }> = {};
for (const n of LENGTHS) {
  const b = bytesOf(n);
  out[String(n)] = { MURMUR3_32: le32(mm.x86.hash32(b)), MURMUR3_128: guava128(mm.x64.hash128(b)) };
}
writeFileSync(join(__dirname, 'murmur-vectors.json'), JSON.stringify({ generator: 'murmurhash3js-revisited@3.0.0', vectors: out }, null, 1) + '\n');
