/* The host flash image: NOR semantics, persistence in the file, torn writes on a power cut. */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash, MemFlash, PowerCut } from '../../tools/sim/flash';

describe('sim flash image (NOR semantics, power cuts)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'flash-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts erased, writes clear bits only, erase restores 0xFF, and the image persists', () => {
    const path = join(dir, 'flash.bin');
    const f = new FileFlash(path, 8192, 4096);
    assert.deepEqual([...f.read(0, 4)], [0xff, 0xff, 0xff, 0xff]);
    f.write(10, new Uint8Array([0x0f, 0xf0]));
    f.write(10, new Uint8Array([0xf3, 0xff])); // cannot set bits back
    assert.deepEqual([...f.read(10, 2)], [0x03, 0xf0]);
    f.close();
    const g = new FileFlash(path, 8192, 4096);
    assert.deepEqual([...g.read(10, 2)], [0x03, 0xf0], 'kept in the file');
    g.erase(0);
    assert.deepEqual([...g.read(10, 2)], [0xff, 0xff]);
    assert.throws(() => g.read(8190, 4), /outside/);
    assert.throws(() => g.erase(2), /no block 2/);
    g.close();
  });

  it('a power cut mid-write leaves a torn write: the first bytes written, the rest untouched', () => {
    const f = new FileFlash(join(dir, 'flash.bin'), 4096, 4096);
    f.powerCutAfterBytes = 3;
    assert.throws(() => f.write(0, new Uint8Array([1, 2, 3, 4, 5])), PowerCut);
    assert.deepEqual([...f.read(0, 5)], [1, 2, 3, 0xff, 0xff]);
    f.write(3, new Uint8Array([4, 5]));
    assert.deepEqual([...f.read(0, 5)], [1, 2, 3, 4, 5], 'works again after the cut');
    f.close();
  });

  it('cutAt stops program/erase op number N after the given bytes; ops before it are whole, none after it runs', () => {
    const f = new MemFlash(8192, 4096);
    f.cutAt = { op: 3, bytes: 2 };
    f.write(0, new Uint8Array([1, 1, 1, 1])); // op 1
    f.erase(1); // op 2
    assert.throws(() => f.write(8, new Uint8Array([2, 2, 2, 2])), PowerCut); // op 3, torn
    assert.deepEqual([...f.read(0, 12)], [1, 1, 1, 1, 255, 255, 255, 255, 2, 2, 255, 255]);
    assert.equal(f.stats.ops, 3);
    assert.deepEqual(f.stats.eraseCounts, [0, 1]);
    f.cutAt = { op: 4, bytes: 4096 }; // more bytes than the op has: it completes, then the power goes
    assert.throws(() => f.write(100, new Uint8Array([0])), PowerCut);
    assert.equal(f.read(100, 1)[0], 0, 'op 4 completed before the cut');
  });

  it('an erase cut part way leaves the first bytes erased and the rest as they were', () => {
    const f = new MemFlash(4096, 4096);
    f.write(0, new Uint8Array(4096).fill(0));
    f.cutAt = { op: 2, bytes: 100 };
    assert.throws(() => f.erase(0), PowerCut);
    assert.equal(f.read(99, 1)[0], 0xff);
    assert.equal(f.read(100, 1)[0], 0);
  });

  it("'noisy' tears leave half-programmed bits past the cut: only bits the op meant to change, some of them", () => {
    const f = new MemFlash(4096, 4096);
    f.tornMode = 'noisy';
    f.cutAt = { op: 1, bytes: 4 };
    assert.throws(() => f.write(0, new Uint8Array(64).fill(0x00)), PowerCut);
    const b = f.read(0, 64);
    assert.deepEqual([...b.subarray(0, 4)], [0, 0, 0, 0]);
    const rest = [...b.subarray(4)];
    assert.ok(rest.some((x) => x !== 0 && x !== 0xff) || new Set(rest).size > 1, 'past the cut: neither all done nor all untouched');
  });

  it('a snapshot restores a scenario start in a new image', () => {
    const f = new MemFlash(4096, 4096);
    f.write(0, new Uint8Array([7]));
    const g = new MemFlash(4096, 4096, f.snapshot());
    assert.equal(g.read(0, 1)[0], 7);
  });
});
