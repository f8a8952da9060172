/* The host flash image: NOR semantics, persistence in the file, torn writes on a power cut. */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash, PowerCut } from '../../tools/sim/flash';

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
});
