/*
 * src/ota/hash.ts against digests computed independently: node:crypto (MD5, SHA-256/384/512),
 * node:zlib crc32 (CRC32), and murmurhash3js-revisited (MURMUR3_32/128, recorded in
 * murmur-vectors.json by gen-murmur-vectors.ts; checked live too when the package is installed).
 * Each input is hashed whole and in random pieces (streaming), in Guava's notation.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import type { ChecksumAlgorithm } from '../../src/ota/hash';
import { CHECKSUM_ALGORITHMS, createChecksum } from '../../src/ota/hash';
import { bytesOf, guava128, LENGTHS } from './vectors';

const murmur = (JSON.parse(readFileSync(join(__dirname, 'murmur-vectors.json'), 'utf8')) as { vectors: Record<string, Record<string, string>> }).vectors;

function le32(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b.toString('hex');
}

function expected(alg: ChecksumAlgorithm, data: Uint8Array): string {
  switch (alg) {
    case 'MD5':
      return createHash('md5').update(data).digest('hex');
    case 'SHA256':
      return createHash('sha256').update(data).digest('hex');
    case 'SHA384':
      return createHash('sha384').update(data).digest('hex');
    case 'SHA512':
      return createHash('sha512').update(data).digest('hex');
    case 'CRC32':
      return le32((zlib as unknown as { crc32(b: Uint8Array): number }).crc32(data));
    default: {
      const v = murmur[String(data.length)]?.[alg];
      if (!v) throw new Error(`no vector for ${alg} of ${data.length} bytes`);
      return v;
    }
  }
}

function pieces(data: Uint8Array, seed: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let x = seed || 7;
  for (let i = 0; i < data.length; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const n = Math.min(data.length - i, 1 + (x % 300));
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

describe('ota checksums (ThingsBoard / Guava notation)', () => {
  for (const alg of CHECKSUM_ALGORITHMS) {
    it(`${alg}: whole and streamed inputs of ${LENGTHS.length} lengths match the independent digests`, () => {
      for (const n of LENGTHS) {
        const data = bytesOf(n);
        const want = expected(alg, data);
        const whole = createChecksum(alg);
        whole.update(data);
        assert.equal(whole.digestHex(), want, `${alg} of ${n} bytes`);
        const streamed = createChecksum(alg);
        for (const p of pieces(data, n)) streamed.update(p);
        assert.equal(streamed.digestHex(), want, `${alg} of ${n} bytes in pieces`);
      }
    });
  }

  it('known values as ThingsBoard prints them (CRC32 and MURMUR3 little-endian)', () => {
    const hex = (alg: ChecksumAlgorithm, s: string) => {
      const h = createChecksum(alg);
      h.update(new TextEncoder().encode(s));
      return h.digestHex();
    };
    assert.equal(hex('CRC32', '123456789'), '2639f4cb'); // CRC-32 check value 0xCBF43926, bytes reversed
    // Guava's Murmur3_32HashFunctionTest / Murmur3Hash128Test values for this sentence
    assert.equal(hex('MURMUR3_32', 'The quick brown fox jumps over the lazy dog'), '23f74f2e'); // 0x2e4ff723
    assert.equal(hex('MURMUR3_128', 'The quick brown fox jumps over the lazy dog'), '6c1b07bc7bbc4be347939ac4a93c437a'); // h1 0xe34bbc7bbc071b6c, h2 0x7a433ca9c49a9347, each little-endian
  });

  it('murmur-vectors.json agrees with murmurhash3js-revisited (a devDependency)', function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mm: { x86: { hash32(b: Uint8Array): number }; x64: { hash128(b: Uint8Array): string } } = require('murmurhash3js-revisited');
    for (const n of LENGTHS) {
      const b = bytesOf(n);
      assert.equal(murmur[String(n)]!.MURMUR3_32, le32(mm.x86.hash32(b)));
      assert.equal(murmur[String(n)]!.MURMUR3_128, guava128(mm.x64.hash128(b)));
    }
  });
});
