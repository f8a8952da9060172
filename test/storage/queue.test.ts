/* The offline queue ring in flash (and the RAM queue it replaces): order, confirmation, drop-oldest, damage. */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { flipBit } from './helpers';
import { FlashQueue, RamQueue } from '../../src/storage/queue';
import { StorageError } from '../../src/storage/errors';

const reading = (i: number) => ({ ts: 1_700_000_000_000 + i * 60_000, values: { temperature: 20 + i / 100, humidity: 50.5, n: i } });

describe('storage: offline queue', () => {
  it('flash: readings come back oldest first with their timestamps, and survive a reopen until confirmed', () => {
    const f = new MemFlash(8 * 4096, 4096);
    const q = new FlashQueue(f);
    for (let i = 0; i < 25; i++) q.push(reading(i));
    assert.equal(q.length, 25);
    const batch = q.peek(10);
    assert.deepEqual(batch.map((r) => r.values.n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(batch[3]!.ts, reading(3).ts);
    assert.equal(q.peek(10)[0]!.values.n, 0, 'peek removes nothing');
    q.confirm(batch[9]!.seq);
    const again = new FlashQueue(f);
    assert.equal(again.length, 15);
    assert.deepEqual(again.peek(3).map((r) => r.values.n), [10, 11, 12]);
    again.push(reading(25));
    again.confirm(again.peek(100).at(-1)!.seq);
    assert.equal(new FlashQueue(f).length, 0);
    assert.deepEqual(new FlashQueue(f).peek(5), []);
  });

  it('flash: when the ring is full the oldest readings are dropped, counted, and the count survives a reboot', () => {
    const f = new MemFlash(4 * 4096, 4096);
    const q = new FlashQueue(f);
    const cap = q.capacity(8 + JSON.stringify(reading(0).values).length);
    for (let i = 0; i < cap * 3; i++) q.push(reading(i));
    assert.ok(q.dropped > 0, 'some dropped');
    assert.equal(q.length + q.dropped, cap * 3, 'every reading is either queued or counted as dropped');
    const first = q.peek(1)[0]!;
    assert.equal(first.values.n, q.dropped, 'the oldest ones went');
    const again = new FlashQueue(f);
    assert.equal(again.dropped, q.dropped);
    assert.equal(again.length, q.length);
    assert.deepEqual(again.peek(1), [first]);
  });

  it('flash: a reading rejected by the server (discard) is counted as dropped', () => {
    const q = new FlashQueue(new MemFlash(2 * 4096, 4096));
    q.push(reading(1));
    q.push(reading(2));
    q.discard(q.peek(1)[0]!.seq);
    assert.equal(q.dropped, 1);
    assert.equal(q.length, 1);
  });

  it('flash: a bit flip in a queued reading is detected and that reading skipped; the others are sent', () => {
    const f = new MemFlash(4 * 4096, 4096);
    const q = new FlashQueue(f);
    for (let i = 0; i < 5; i++) q.push(reading(i));
    const img = f.snapshot();
    const at = Buffer.from(img).indexOf('"n":2}');
    flipBit(f, at + 4);
    const again = new FlashQueue(f);
    assert.equal(again.stats.corrupt, 1);
    assert.deepEqual(again.peek(10).map((r) => r.values.n), [0, 1, 3, 4]);
  });

  it('flash: erases spread evenly over the ring', () => {
    const f = new MemFlash(8 * 4096, 4096);
    const q = new FlashQueue(f);
    for (let i = 0; i < 3000; i++) {
      q.push(reading(i));
      if (i % 10 === 9) q.confirm(q.peek(100).at(-1)!.seq);
    }
    const e = f.stats.eraseCounts;
    assert.ok(Math.max(...e) - Math.min(...e) <= 1, e.join(','));
    assert.equal(q.dropped, 0);
  });

  it('flash: a reading too big for a record is a StorageError too-large', () => {
    const q = new FlashQueue(new MemFlash(2 * 4096, 4096));
    assert.throws(() => q.push({ ts: 1, values: { big: 'x'.repeat(1000) } }), (e: unknown) => e instanceof StorageError && e.code === 'too-large');
  });

  it('RAM: bounded, oldest dropped and counted', () => {
    const q = new RamQueue(3);
    for (let i = 0; i < 5; i++) q.push(reading(i));
    assert.equal(q.length, 3);
    assert.equal(q.dropped, 2);
    const b = q.peek(2);
    assert.deepEqual(b.map((r) => r.values.n), [2, 3]);
    q.confirm(b[1]!.seq);
    assert.deepEqual(q.peek(5).map((r) => r.values.n), [4]);
  });
});
