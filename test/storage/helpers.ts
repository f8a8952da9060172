/* Shared by the storage tests. */
import type { MemFlash } from '../../tools/sim/flash';

/** Clears the lowest set bit of the byte at `offset` (a bit flip that NOR programming can make). */
export function flipBit(f: MemFlash, offset: number): void {
  const b = f.read(offset, 1)[0]!;
  if (b === 0) throw new Error('byte already 0');
  f.write(offset, new Uint8Array([b & (b - 1)]));
}

/** A PEM block of the right shape (base64 of a DER SEQUENCE), `bytes` long, from a seeded generator. */
export function fakePem(label: string, bytes: number, seed = 1): string {
  const der = new Uint8Array(bytes);
  let x = seed * 2654435761;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    der[i] = x >>> 24;
  }
  der[0] = 0x30;
  der[1] = 0x82;
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}
