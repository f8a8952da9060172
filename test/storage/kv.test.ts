/* The key/value store: atomic replace, compaction over rotating sectors, full and oversize errors, damaged records. */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { flipBit } from './helpers';
import { KvStore } from '../../src/storage/kv';
import { StorageError } from '../../src/storage/errors';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

describe('storage: key/value store', () => {
  it('keeps the newest value of each key across reopen (reboot)', () => {
    const f = new MemFlash(4 * 4096, 4096);
    const kv = new KvStore(f);
    assert.equal(kv.get(1), undefined);
    kv.put(1, bytes('one'));
    kv.put(2, bytes('two'));
    kv.put(1, bytes('uno'));
    const again = new KvStore(f);
    assert.equal(text(again.get(1)), 'uno');
    assert.equal(text(again.get(2)), 'two');
    again.delete(2);
    assert.equal(new KvStore(f).get(2), undefined);
    assert.equal(text(new KvStore(f).get(1)), 'uno');
  });

  it('a blank region is read without writing anything', () => {
    const f = new MemFlash(2 * 4096, 4096);
    new KvStore(f);
    assert.equal(f.stats.ops, 0);
  });

  it('compacts into the next sector in rotation, keeping every live key, and spreads erases over all sectors', () => {
    const f = new MemFlash(4 * 4096, 4096);
    const kv = new KvStore(f, { writeSize: 4 });
    kv.put(7, bytes('constant'));
    for (let i = 0; i < 2000; i++) kv.put(3, bytes(`value ${i} ${'x'.repeat(40)}`));
    const again = new KvStore(f);
    assert.equal(text(again.get(7)), 'constant');
    assert.equal(text(again.get(3))!.split(' ')[1], '1999');
    assert.ok(kv.stats.compactions > 10, `compactions ${kv.stats.compactions}`);
    const counts = f.stats.eraseCounts;
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `erases per block ${counts.join(',')}`);
  });

  it('a value larger than a sector is a StorageError too-large; live values that no longer fit are flash-full, and nothing changes', () => {
    const f = new MemFlash(2 * 4096, 4096);
    const kv = new KvStore(f);
    assert.throws(() => kv.put(1, new Uint8Array(5000)), (e: unknown) => e instanceof StorageError && e.code === 'too-large');
    kv.put(1, new Uint8Array(2000).fill(0x41));
    assert.throws(() => kv.put(2, new Uint8Array(2500).fill(0x42)), (e: unknown) => e instanceof StorageError && e.code === 'flash-full' && /full/.test(e.message));
    const again = new KvStore(f);
    assert.equal(again.get(1)!.length, 2000);
    assert.equal(again.get(2), undefined);
    kv.put(1, new Uint8Array(3000).fill(0x43)); // replacing the big one still fits
    assert.equal(new KvStore(f).get(1)![0], 0x43);
  });

  it('a bit flip in the newest record is detected: that record is skipped and the previous version wins', () => {
    const f = new MemFlash(2 * 4096, 4096);
    const kv = new KvStore(f);
    kv.put(1, bytes('first version'));
    kv.put(1, bytes('second version'));
    // Find the second record's payload and flip one bit.
    const img = f.snapshot();
    const at = Buffer.from(img).indexOf('second version');
    assert.ok(at > 0);
    flipBit(f, at + 3);
    const again = new KvStore(f);
    assert.equal(text(again.get(1)), 'first version');
    assert.equal(again.stats.corrupt, 1);
    // Appends after the damaged record still work and are found.
    again.put(1, bytes('third'));
    assert.equal(text(new KvStore(f).get(1)), 'third');
  });

  it('a bit flip in a record header is detected and the records after it are still found', () => {
    const f = new MemFlash(2 * 4096, 4096);
    const kv = new KvStore(f);
    kv.put(1, bytes('aaaa'));
    kv.put(2, bytes('bbbb'));
    const img = f.snapshot();
    const at = Buffer.from(img).indexOf('aaaa') - 16; // record header of key 1
    flipBit(f, at + 4); // seq byte
    const again = new KvStore(f);
    assert.equal(again.get(1), undefined);
    assert.equal(text(again.get(2)), 'bbbb');
    assert.equal(again.stats.corrupt, 1);
  });

  it('supports larger write units (e.g. 32 B) and multi-block sectors', () => {
    const f = new MemFlash(8 * 4096, 4096);
    const kv = new KvStore(f, { writeSize: 32, sectorBlocks: 2 });
    assert.ok(kv.maxValueLength > 8000);
    kv.put(1, new Uint8Array(6000).fill(1));
    for (let i = 0; i < 50; i++) kv.put(2, bytes(`n${i}`));
    const again = new KvStore(f, { writeSize: 32, sectorBlocks: 2 });
    assert.equal(again.get(1)!.length, 6000);
    assert.equal(text(again.get(2)), 'n49');
    assert.throws(() => new KvStore(new MemFlash(4096, 4096)), /at least 2 sectors/);
  });
});
