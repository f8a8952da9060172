/* RFC 7959 block-wise helpers used by the client. */
import { blockSize } from './codec';

/** Bytes of CoAP header, token and options kept free below the MTU when sizing a block. */
export const BLOCK_HEADER_ALLOWANCE = 64;

/** Largest SZX (at most 6 = 1024 bytes) whose block plus header allowance fits in `mtu`. */
export function szxForMtu(mtu: number | undefined): number {
  if (mtu === undefined) return 6;
  for (let szx = 6; szx > 0; szx--) if (blockSize(szx) <= mtu - BLOCK_HEADER_ALLOWANCE) return szx;
  return 0;
}

/** Concatenates chunks into one new array. */
export function concatChunks(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}
