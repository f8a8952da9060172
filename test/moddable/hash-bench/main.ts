/*
 * 64 KB through each checksum, in 4 KB blocks (what OtaAgent's #digest reads per step), on XS:
 * src/ota/hash.ts in TypeScript and, for MD5 / SHA-*, the SDK's native crypt Digest. Prints ms per
 * run (best of 5) and checks the two give the same hex.
 */
import { Digest } from 'crypt';
import Time from 'time';
import { File } from 'file';
import config from 'mc/config';
import { createChecksum } from 'ota/hash';
import type { ChecksumAlgorithm } from 'ota/hash';

const SIZE = 64 * 1024, BLOCK = 4096, RUNS = 5;
const data = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;

function hex(b: ArrayBuffer): string {
  const u = new Uint8Array(b);
  let s = '';
  for (let i = 0; i < u.length; i++) s += (u[i]! < 16 ? '0' : '') + u[i]!.toString(16);
  return s;
}

/** Best of RUNS, each timing `reps` repetitions (Time.ticks counts whole ms: the native ones repeat). */
function best(fn: () => string, reps = 1): { ms: number; hex: string } {
  let ms = Infinity, out = '';
  for (let r = 0; r < RUNS; r++) {
    const t = Time.ticks;
    for (let i = 0; i < reps; i++) out = fn();
    ms = Math.min(ms, (Time.ticks - t) / reps);
  }
  return { ms, hex: out };
}

let out = '';
for (const alg of ['MD5', 'SHA256', 'SHA384', 'SHA512', 'CRC32', 'MURMUR3_32', 'MURMUR3_128'] as ChecksumAlgorithm[]) {
  const ts = best(() => {
    const h = createChecksum(alg);
    for (let o = 0; o < SIZE; o += BLOCK) h.update(data.subarray(o, o + BLOCK));
    return h.digestHex();
  });
  let line = `hash-bench ${alg}: TypeScript ${ts.ms.toFixed(1)} ms`;
  if (alg === 'MD5' || alg === 'SHA256' || alg === 'SHA384' || alg === 'SHA512') {
    const nat = best(() => {
      const d = new Digest(alg);
      for (let o = 0; o < SIZE; o += BLOCK) d.write(data.subarray(o, o + BLOCK) as unknown as ArrayBuffer);
      return hex(d.close());
    }, 200);
    line += `, native ${nat.ms.toFixed(2)} ms (${(ts.ms / nat.ms).toFixed(0)}x), ${nat.hex === ts.hex ? 'same digest' : `DIFFERENT: ${ts.hex} vs ${nat.hex}`}`;
  }
  trace(`${line}\n`);
  out += `${line}\n`;
}
trace('hash-bench done\n');
// A release build has no xsbug connection for trace(): the results go to a file too.
const path = `${(config as { file?: { root?: string } }).file?.root ?? '/tmp/'}ota-hash-bench.txt`;
if (File.exists(path)) File.delete(path);
const f = new File(path, true);
f.write(`${out}hash-bench done\n`);
f.close();
