/*
 * CRC-32 (IEEE 802.3, reflected 0xEDB88320), the one zlib and esptool use. A 16-entry table
 * (64 B) instead of the usual 256 entries: two lookups per byte, a kilobyte less RAM.
 */

const TABLE = new Uint32Array(16);
for (let i = 0; i < 16; i++) {
  let c = i;
  for (let k = 0; k < 4; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[i] = c >>> 0;
}

/** Continues a CRC over bytes[start, end): pass the previous result as `crc` (start with 0). */
export function crc32(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) {
    c ^= bytes[i]!;
    c = TABLE[c & 15]! ^ (c >>> 4);
    c = TABLE[c & 15]! ^ (c >>> 4);
  }
  return ~c >>> 0;
}
