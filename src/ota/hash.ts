/*
 * The checksums ThingsBoard puts in `fw_checksum` (reference §1.3), computed chunk by chunk with
 * bounded memory (one block buffer per hash), in plain TypeScript: no Node API, no BigInt, so the
 * same code runs under Node in the simulator and on XS. On the device the platform's hash (mbedTLS
 * through a native module) could replace the MD5/SHA ones later: the interface stays.
 *
 * Output is the hex ThingsBoard stores: Guava's HashCode.toString(). For MD5 and SHA-* that is the
 * digest as usual; for CRC32 and MURMUR3_32 (HashCode.fromInt) the int's bytes little-endian; for
 * MURMUR3_128 h1 then h2, each 8 bytes little-endian (the reference C code's output).
 */
import { crc32 } from '../storage/crc32';

export const CHECKSUM_ALGORITHMS = Object.freeze(['MD5', 'SHA256', 'SHA384', 'SHA512', 'CRC32', 'MURMUR3_32', 'MURMUR3_128'] as const);
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export function isChecksumAlgorithm(s: unknown): s is ChecksumAlgorithm {
  return typeof s === 'string' && (CHECKSUM_ALGORITHMS as readonly string[]).includes(s);
}

export interface StreamingHash {
  update(bytes: Uint8Array, start?: number, end?: number): void;
  /** Lower-case hex as ThingsBoard prints it. Ends the hash. */
  digestHex(): string;
}

export function createChecksum(algorithm: ChecksumAlgorithm): StreamingHash {
  switch (algorithm) {
    case 'MD5':
      return new Md5();
    case 'SHA256':
      return new Sha256();
    case 'SHA384':
      return new Sha512(true);
    case 'SHA512':
      return new Sha512(false);
    case 'CRC32':
      return new Crc32();
    case 'MURMUR3_32':
      return new Murmur3x86_32();
    case 'MURMUR3_128':
      return new Murmur3x64_128();
  }
}

const HEX = '0123456789abcdef';

function hexLE32(v: number): string {
  let s = '';
  for (let i = 0; i < 4; i++) {
    const b = (v >>> (8 * i)) & 0xff;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  return s;
}

function hexBE32(v: number): string {
  let s = '';
  for (let i = 3; i >= 0; i--) {
    const b = (v >>> (8 * i)) & 0xff;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  return s;
}

/** Shared block buffering for the Merkle-Damgard hashes and Murmur3 (block of `size` bytes). */
abstract class Blocked {
  protected readonly block: Uint8Array;
  protected fill = 0;
  /** Total bytes hashed (a double: exact up to 2^53). */
  protected total = 0;

  constructor(size: number) {
    this.block = new Uint8Array(size);
  }

  update(bytes: Uint8Array, start = 0, end = bytes.length): void {
    const size = this.block.length;
    this.total += end - start;
    let i = start;
    while (i < end) {
      const n = Math.min(size - this.fill, end - i);
      this.block.set(bytes.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === size) {
        this.compress(this.block);
        this.fill = 0;
      }
    }
  }

  protected abstract compress(block: Uint8Array): void;

  /** MD-style padding: 0x80, zeros, and the bit length in `lenBytes` bytes (big or little endian). */
  protected pad(lenBytes: number, bigEndian: boolean): void {
    const size = this.block.length;
    const bitsHi = Math.floor(this.total / 0x20000000); // total * 8 / 2^32
    const bitsLo = (this.total * 8) >>> 0;
    this.block[this.fill++] = 0x80;
    if (this.fill > size - lenBytes) {
      this.block.fill(0, this.fill);
      this.compress(this.block);
      this.fill = 0;
    }
    this.block.fill(0, this.fill);
    const v = new DataView(this.block.buffer, this.block.byteOffset, size);
    if (bigEndian) {
      v.setUint32(size - 8, bitsHi >>> 0);
      v.setUint32(size - 4, bitsLo);
    } else {
      v.setUint32(size - 8, bitsLo, true);
      v.setUint32(size - 4, bitsHi >>> 0, true);
    }
    this.compress(this.block);
    this.fill = 0;
  }
}

// ---------------------------------------------------------------- MD5 (RFC 1321)

const MD5_K = Object.freeze(Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 0x100000000) >>> 0));
const MD5_S = Object.freeze([7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]);

class Md5 extends Blocked {
  readonly #h = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  readonly #m = new Uint32Array(16);

  constructor() {
    super(64);
  }

  protected compress(block: Uint8Array): void {
    const m = this.#m;
    for (let i = 0; i < 16; i++) m[i] = block[i * 4]! | (block[i * 4 + 1]! << 8) | (block[i * 4 + 2]! << 16) | (block[i * 4 + 3]! << 24);
    const h = this.#h;
    let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!;
    for (let i = 0; i < 64; i++) {
      let f: number, g: number;
      const round = i >> 4;
      if (round === 0) { f = (b & c) | (~b & d); g = i; }
      else if (round === 1) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
      else if (round === 2) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
      else { f = c ^ (b | ~d); g = (7 * i) & 15; }
      const s = MD5_S[(round << 2) | (i & 3)]!;
      const t = (a + f + MD5_K[i]! + m[g]!) | 0;
      a = d; d = c; c = b;
      b = (b + ((t << s) | (t >>> (32 - s)))) | 0;
    }
    h[0] = h[0]! + a; h[1] = h[1]! + b; h[2] = h[2]! + c; h[3] = h[3]! + d;
  }

  digestHex(): string {
    this.pad(8, false);
    let s = '';
    for (const w of this.#h) s += hexLE32(w);
    return s;
  }
}

// ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

const SHA256_K = Object.freeze([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

class Sha256 extends Blocked {
  readonly #h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  readonly #w = new Uint32Array(64);

  constructor() {
    super(64);
  }

  protected compress(block: Uint8Array): void {
    const w = this.#w;
    for (let i = 0; i < 16; i++) w[i] = (block[i * 4]! << 24) | (block[i * 4 + 1]! << 16) | (block[i * 4 + 2]! << 8) | block[i * 4 + 3]!;
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15]!, y = w[i - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = w[i - 16]! + s0 + w[i - 7]! + s1;
    }
    const h = this.#h;
    let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + SHA256_K[i]! + w[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = h[0]! + a; h[1] = h[1]! + b; h[2] = h[2]! + c; h[3] = h[3]! + d;
    h[4] = h[4]! + e; h[5] = h[5]! + f; h[6] = h[6]! + g; h[7] = h[7]! + hh;
  }

  digestHex(): string {
    this.pad(8, true);
    let s = '';
    for (const w of this.#h) s += hexBE32(w);
    return s;
  }
}

// ---------------------------------------------------------------- SHA-512 / SHA-384, on 32-bit halves

// prettier-ignore
const SHA512_K = Object.freeze([
  0x428a2f98, 0xd728ae22, 0x71374491, 0x23ef65cd, 0xb5c0fbcf, 0xec4d3b2f, 0xe9b5dba5, 0x8189dbbc, 0x3956c25b, 0xf348b538, 0x59f111f1, 0xb605d019,
  0x923f82a4, 0xaf194f9b, 0xab1c5ed5, 0xda6d8118, 0xd807aa98, 0xa3030242, 0x12835b01, 0x45706fbe, 0x243185be, 0x4ee4b28c, 0x550c7dc3, 0xd5ffb4e2,
  0x72be5d74, 0xf27b896f, 0x80deb1fe, 0x3b1696b1, 0x9bdc06a7, 0x25c71235, 0xc19bf174, 0xcf692694, 0xe49b69c1, 0x9ef14ad2, 0xefbe4786, 0x384f25e3,
  0x0fc19dc6, 0x8b8cd5b5, 0x240ca1cc, 0x77ac9c65, 0x2de92c6f, 0x592b0275, 0x4a7484aa, 0x6ea6e483, 0x5cb0a9dc, 0xbd41fbd4, 0x76f988da, 0x831153b5,
  0x983e5152, 0xee66dfab, 0xa831c66d, 0x2db43210, 0xb00327c8, 0x98fb213f, 0xbf597fc7, 0xbeef0ee4, 0xc6e00bf3, 0x3da88fc2, 0xd5a79147, 0x930aa725,
  0x06ca6351, 0xe003826f, 0x14292967, 0x0a0e6e70, 0x27b70a85, 0x46d22ffc, 0x2e1b2138, 0x5c26c926, 0x4d2c6dfc, 0x5ac42aed, 0x53380d13, 0x9d95b3df,
  0x650a7354, 0x8baf63de, 0x766a0abb, 0x3c77b2a8, 0x81c2c92e, 0x47edaee6, 0x92722c85, 0x1482353b, 0xa2bfe8a1, 0x4cf10364, 0xa81a664b, 0xbc423001,
  0xc24b8b70, 0xd0f89791, 0xc76c51a3, 0x0654be30, 0xd192e819, 0xd6ef5218, 0xd6990624, 0x5565a910, 0xf40e3585, 0x5771202a, 0x106aa070, 0x32bbd1b8,
  0x19a4c116, 0xb8d2d0c8, 0x1e376c08, 0x5141ab53, 0x2748774c, 0xdf8eeb99, 0x34b0bcb5, 0xe19b48a8, 0x391c0cb3, 0xc5c95a63, 0x4ed8aa4a, 0xe3418acb,
  0x5b9cca4f, 0x7763e373, 0x682e6ff3, 0xd6b2b8a3, 0x748f82ee, 0x5defb2fc, 0x78a5636f, 0x43172f60, 0x84c87814, 0xa1f0ab72, 0x8cc70208, 0x1a6439ec,
  0x90befffa, 0x23631e28, 0xa4506ceb, 0xde82bde9, 0xbef9a3f7, 0xb2c67915, 0xc67178f2, 0xe372532b, 0xca273ece, 0xea26619c, 0xd186b8c7, 0x21c0c207,
  0xeada7dd6, 0xcde0eb1e, 0xf57d4f7f, 0xee6ed178, 0x06f067aa, 0x72176fba, 0x0a637dc5, 0xa2c898a6, 0x113f9804, 0xbef90dae, 0x1b710b35, 0x131c471b,
  0x28db77f5, 0x23047d84, 0x32caab7b, 0x40c72493, 0x3c9ebe0a, 0x15c9bebc, 0x431d67c4, 0x9c100d4c, 0x4cc5d4be, 0xcb3e42b6, 0x597f299c, 0xfc657e2a,
  0x5fcb6fab, 0x3ad6faec, 0x6c44198c, 0x4a475817,
]);
// prettier-ignore
const SHA512_IV = Object.freeze([
  0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b, 0xa54ff53a, 0x5f1d36f1,
  0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f, 0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179,
]);
// prettier-ignore
const SHA384_IV = Object.freeze([
  0xcbbb9d5d, 0xc1059ed8, 0x629a292a, 0x367cd507, 0x9159015a, 0x3070dd17, 0x152fecd8, 0xf70e5939,
  0x67332667, 0xffc00b31, 0x8eb44a87, 0x68581511, 0xdb0c2e0d, 0x64f98fa7, 0x47b5481d, 0xbefa4fa4,
]);

class Sha512 extends Blocked {
  /** 8 words as hi, lo pairs. */
  readonly #h: Uint32Array;
  readonly #w = new Uint32Array(160);
  readonly #s = new Uint32Array(16);
  readonly #words: number;

  constructor(is384: boolean) {
    super(128);
    this.#h = new Uint32Array(is384 ? SHA384_IV : SHA512_IV);
    this.#words = is384 ? 6 : 8;
  }

  protected compress(block: Uint8Array): void {
    const w = this.#w;
    for (let i = 0; i < 32; i++) w[i] = (block[i * 4]! << 24) | (block[i * 4 + 1]! << 16) | (block[i * 4 + 2]! << 8) | block[i * 4 + 3]!;
    for (let i = 16; i < 80; i++) {
      // s0 = rotr1 ^ rotr8 ^ shr7 of w[i-15]; s1 = rotr19 ^ rotr61 ^ shr6 of w[i-2]
      const xh = w[(i - 15) * 2]!, xl = w[(i - 15) * 2 + 1]!;
      const s0h = ((xh >>> 1) | (xl << 31)) ^ ((xh >>> 8) | (xl << 24)) ^ (xh >>> 7);
      const s0l = ((xl >>> 1) | (xh << 31)) ^ ((xl >>> 8) | (xh << 24)) ^ ((xl >>> 7) | (xh << 25));
      const yh = w[(i - 2) * 2]!, yl = w[(i - 2) * 2 + 1]!;
      const s1h = ((yh >>> 19) | (yl << 13)) ^ ((yl >>> 29) | (yh << 3)) ^ (yh >>> 6);
      const s1l = ((yl >>> 19) | (yh << 13)) ^ ((yh >>> 29) | (yl << 3)) ^ ((yl >>> 6) | (yh << 26));
      let lo = (s0l >>> 0) + (s1l >>> 0) + w[(i - 16) * 2 + 1]! + w[(i - 7) * 2 + 1]!;
      const hi = s0h + s1h + w[(i - 16) * 2]! + w[(i - 7) * 2]! + Math.floor(lo / 0x100000000);
      lo >>>= 0;
      w[i * 2] = hi;
      w[i * 2 + 1] = lo;
    }
    const s = this.#s;
    s.set(this.#h);
    for (let i = 0; i < 80; i++) {
      const ah = s[0]!, al = s[1]!, bh = s[2]!, bl = s[3]!, ch = s[4]!, cl = s[5]!;
      const eh = s[8]!, el = s[9]!, fh = s[10]!, fl = s[11]!, gh = s[12]!, gl = s[13]!, hh = s[14]!, hl = s[15]!;
      // S1(e) = rotr14 ^ rotr18 ^ rotr41
      const S1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^ ((el >>> 9) | (eh << 23));
      const S1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^ ((eh >>> 9) | (el << 23));
      const chh = (eh & fh) ^ (~eh & gh);
      const chl = (el & fl) ^ (~el & gl);
      let t1l = hl + (S1l >>> 0) + (chl >>> 0) + SHA512_K[i * 2 + 1]! + w[i * 2 + 1]!;
      const t1h = (hh + S1h + chh + SHA512_K[i * 2]! + w[i * 2]! + Math.floor(t1l / 0x100000000)) >>> 0;
      t1l >>>= 0;
      // S0(a) = rotr28 ^ rotr34 ^ rotr39
      const S0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^ ((al >>> 7) | (ah << 25));
      const S0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^ ((ah >>> 7) | (al << 25));
      const mjh = (ah & bh) ^ (ah & ch) ^ (bh & ch);
      const mjl = (al & bl) ^ (al & cl) ^ (bl & cl);
      const t2l = (S0l >>> 0) + (mjl >>> 0);
      const t2h = (S0h + mjh + Math.floor(t2l / 0x100000000)) >>> 0;
      // shift the working variables down one (pairs), then e = d + t1, a = t1 + t2
      s.copyWithin(2, 0, 14);
      const dl = s[9]! + t1l; // s[8..9] now hold the old d
      s[8] = s[8]! + t1h + Math.floor(dl / 0x100000000);
      s[9] = dl;
      const al2 = t1l + (t2l >>> 0);
      s[0] = t1h + t2h + Math.floor(al2 / 0x100000000);
      s[1] = al2;
    }
    const h = this.#h;
    for (let i = 0; i < 16; i += 2) {
      const lo = h[i + 1]! + s[i + 1]!;
      h[i] = h[i]! + s[i]! + Math.floor(lo / 0x100000000);
      h[i + 1] = lo;
    }
  }

  digestHex(): string {
    // 128-bit length: the upper 64 bits stay 0 (images are far below 2^61 bytes).
    this.pad(16, true);
    let s = '';
    for (let i = 0; i < this.#words * 2; i++) s += hexBE32(this.#h[i]!);
    return s;
  }
}

// ---------------------------------------------------------------- CRC32 (Guava Hashing.crc32())

class Crc32 implements StreamingHash {
  #crc = 0;
  update(bytes: Uint8Array, start = 0, end = bytes.length): void {
    this.#crc = crc32(bytes, this.#crc, start, end);
  }
  digestHex(): string {
    return hexLE32(this.#crc);
  }
}

// ---------------------------------------------------------------- MurmurHash3 x86_32, seed 0

class Murmur3x86_32 extends Blocked {
  #h = 0;
  constructor() {
    super(4);
  }
  protected compress(b: Uint8Array): void {
    const k = Math.imul(rotl32(Math.imul(b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24), 0xcc9e2d51), 15), 0x1b873593);
    this.#h = (Math.imul(rotl32(this.#h ^ k, 13), 5) + 0xe6546b64) | 0;
  }
  digestHex(): string {
    const b = this.block;
    let h = this.#h;
    if (this.fill) {
      let k = 0;
      for (let i = this.fill - 1; i >= 0; i--) k = (k << 8) | b[i]!;
      h ^= Math.imul(rotl32(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
    }
    h ^= this.total; // length mod 2^32
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return hexLE32(h);
  }
}

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

// ---------------------------------------------------------------- MurmurHash3 x64_128, seed 0, on 32-bit halves

/** 64-bit arithmetic on [hi, lo] pairs, results in one scratch array: no allocation per block. */
class U64 {
  readonly r = new Uint32Array(2);
  /** r = (ah:al) * (bh:bl) mod 2^64. */
  mul(ah: number, al: number, bh: number, bl: number): void {
    // al * bl as a full 64-bit product, from 16-bit halves
    const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
    const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const lo = ((mid & 0xffff) << 16) | (p00 & 0xffff);
    const hi = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
    this.r[0] = hi + Math.imul(ah, bl) + Math.imul(al, bh);
    this.r[1] = lo;
  }
  /** r = rotl64(h:l, n), 0 < n < 64. */
  rotl(h: number, l: number, n: number): void {
    if (n >= 32) {
      const t = h;
      h = l;
      l = t;
      n -= 32;
    }
    if (n === 0) {
      this.r[0] = h;
      this.r[1] = l;
      return;
    }
    this.r[0] = (h << n) | (l >>> (32 - n));
    this.r[1] = (l << n) | (h >>> (32 - n));
  }
  /** r = (ah:al) + (bh:bl). */
  add(ah: number, al: number, bh: number, bl: number): void {
    const lo = (al >>> 0) + (bl >>> 0);
    this.r[0] = ah + bh + (lo > 0xffffffff ? 1 : 0);
    this.r[1] = lo;
  }
  /** r = fmix64(h:l). */
  fmix(h: number, l: number): void {
    l = (l ^ (h >>> 1)) >>> 0; // k ^= k >>> 33
    this.mul(h, l, 0xff51afd7, 0xed558ccd);
    h = this.r[0]!;
    l = this.r[1]! ^ (h >>> 1);
    this.mul(h, l, 0xc4ceb9fe, 0x1a85ec53);
    this.r[1] = this.r[1]! ^ (this.r[0]! >>> 1);
  }
}

const C1H = 0x87c37b91, C1L = 0x114253d5, C2H = 0x4cf5ad43, C2L = 0x2745937f;

class Murmur3x64_128 extends Blocked {
  readonly #u = new U64();
  /** h1 hi, h1 lo, h2 hi, h2 lo */
  readonly #h = new Uint32Array(4);

  constructor() {
    super(16);
  }

  /** k *= a; k = rotl(k, r); k *= b. Result in #u.r. */
  #mixK(kh: number, kl: number, ah: number, al: number, r: number, bh: number, bl: number): void {
    const u = this.#u;
    u.mul(kh, kl, ah, al);
    u.rotl(u.r[0]!, u.r[1]!, r);
    u.mul(u.r[0]!, u.r[1]!, bh, bl);
  }

  #mixH1(kh: number, kl: number): void {
    const h = this.#h;
    this.#mixK(kh, kl, C1H, C1L, 31, C2H, C2L);
    h[0] = h[0]! ^ this.#u.r[0]!;
    h[1] = h[1]! ^ this.#u.r[1]!;
  }

  #mixH2(kh: number, kl: number): void {
    const h = this.#h;
    this.#mixK(kh, kl, C2H, C2L, 33, C1H, C1L);
    h[2] = h[2]! ^ this.#u.r[0]!;
    h[3] = h[3]! ^ this.#u.r[1]!;
  }

  protected compress(b: Uint8Array): void {
    const u = this.#u, h = this.#h;
    this.#mixH1(b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24), b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24));
    u.rotl(h[0]!, h[1]!, 27); // h1 = rotl(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729
    u.add(u.r[0]!, u.r[1]!, h[2]!, h[3]!);
    u.mul(u.r[0]!, u.r[1]!, 0, 5);
    u.add(u.r[0]!, u.r[1]!, 0, 0x52dce729);
    h[0] = u.r[0]!;
    h[1] = u.r[1]!;
    this.#mixH2(b[12]! | (b[13]! << 8) | (b[14]! << 16) | (b[15]! << 24), b[8]! | (b[9]! << 8) | (b[10]! << 16) | (b[11]! << 24));
    u.rotl(h[2]!, h[3]!, 31); // h2 = rotl(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5
    u.add(u.r[0]!, u.r[1]!, h[0]!, h[1]!);
    u.mul(u.r[0]!, u.r[1]!, 0, 5);
    u.add(u.r[0]!, u.r[1]!, 0, 0x38495ab5);
    h[2] = u.r[0]!;
    h[3] = u.r[1]!;
  }

  digestHex(): string {
    const u = this.#u, h = this.#h, b = this.block, n = this.fill;
    if (n > 8) {
      const t = b.subarray(8, n);
      let kl = 0, kh = 0;
      for (let i = t.length - 1; i >= 0; i--) {
        if (i >= 4) kh = (kh << 8) | t[i]!;
        else kl = (kl << 8) | t[i]!;
      }
      this.#mixH2(kh, kl);
    }
    if (n > 0) {
      let kl = 0, kh = 0;
      for (let i = Math.min(n, 8) - 1; i >= 0; i--) {
        if (i >= 4) kh = (kh << 8) | b[i]!;
        else kl = (kl << 8) | b[i]!;
      }
      this.#mixH1(kh, kl);
    }
    const lenH = Math.floor(this.total / 0x100000000), lenL = this.total >>> 0;
    h[0] = h[0]! ^ lenH; h[1] = h[1]! ^ lenL; h[2] = h[2]! ^ lenH; h[3] = h[3]! ^ lenL;
    u.add(h[0]!, h[1]!, h[2]!, h[3]!); h[0] = u.r[0]!; h[1] = u.r[1]!; // h1 += h2
    u.add(h[2]!, h[3]!, h[0]!, h[1]!); h[2] = u.r[0]!; h[3] = u.r[1]!; // h2 += h1
    u.fmix(h[0]!, h[1]!); h[0] = u.r[0]!; h[1] = u.r[1]!;
    u.fmix(h[2]!, h[3]!); h[2] = u.r[0]!; h[3] = u.r[1]!;
    u.add(h[0]!, h[1]!, h[2]!, h[3]!); h[0] = u.r[0]!; h[1] = u.r[1]!;
    u.add(h[2]!, h[3]!, h[0]!, h[1]!); h[2] = u.r[0]!; h[3] = u.r[1]!;
    return hexLE32(h[1]!) + hexLE32(h[0]!) + hexLE32(h[3]!) + hexLE32(h[2]!);
  }
}
