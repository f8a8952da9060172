/*
 * The storage code on XS (bundled and run by test/storage/xs.test.ts, and on Node for
 * comparison): key/value replace and compaction, the queue ring with confirmation and drop-oldest,
 * credentials checks, typed errors, a bit flip. Plain ECMAScript: a RAM NOR flash of its own.
 */
import type { Flash } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import { StorageError } from '../../src/storage/errors';
import { CredentialsError } from '../../src/storage/credentials';
import { runOnXsIfHere } from '../xs/fixtures/harness';

class RamNor implements Flash {
  readonly byteLength: number;
  readonly blockSize = 4096;
  readonly image: Uint8Array;
  programs = 0;
  erases = 0;
  constructor(blocks: number) {
    this.byteLength = blocks * 4096;
    this.image = new Uint8Array(this.byteLength).fill(0xff);
  }
  read(offset: number, n: number): Uint8Array {
    return this.image.slice(offset, offset + n);
  }
  write(offset: number, data: Uint8Array): void {
    this.programs++;
    for (let i = 0; i < data.length; i++) this.image[offset + i] = this.image[offset + i]! & data[i]!;
  }
  erase(block: number): void {
    this.erases++;
    this.image.fill(0xff, block * 4096, (block + 1) * 4096);
  }
}

export function scenario() {
  const flash = new RamNor(8);
  const layout = { kvBlocks: 4, sectorBlocks: 2, writeSize: 4 };
  const s = openDeviceStorage(flash, layout);
  s.credentials.save({ server: 'coap://tb.example.com', token: 'tok-1' });
  for (let i = 0; i < 300; i++) s.settings.save({ reportingInterval: 10 + (i % 3), source: 'rpc' });
  s.credentials.save({ server: 'coap://tb.example.com', token: 'tok-2' });
  for (let i = 0; i < 800; i++) {
    s.queue.push({ ts: 1_700_000_000_000 + i * 60_000, values: { temperature: 20 + i / 10, ok: true, s: 'é' } });
    if (i % 10 === 9 && i < 200) s.queue.confirm(s.queue.peek(10)[9]!.seq);
  }
  const again = openDeviceStorage(flash, layout);
  const errors: string[] = [];
  try {
    again.credentials.save({ server: 'coap://tb.example.com', token: '' });
  } catch (e) {
    const err = e as CredentialsError;
    errors.push(`${err.name} ${err.code} ${err.field} ${err instanceof CredentialsError}`);
  }
  try {
    again.kv.put(9, new Uint8Array(9000));
  } catch (e) {
    const err = e as StorageError;
    errors.push(`${err.name} ${err.code} ${err instanceof StorageError}`);
  }
  const first = again.queue.peek(2);
  return {
    token: again.credentials.load().token,
    interval: again.settings.load().reportingInterval,
    queued: again.queue.length,
    dropped: again.queue.dropped,
    first,
    compactions: s.kv.stats.compactions,
    programs: flash.programs,
    erases: flash.erases,
    errors,
  };
}

runOnXsIfHere(scenario);
