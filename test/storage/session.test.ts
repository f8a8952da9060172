/* The DTLS session record: offered only for what it was saved for, written only when it changes. */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { openDeviceStorage } from '../../src/storage/index';
import { sessionTag } from '../../src/storage/session';

describe('storage: DTLS session record', () => {
  it('is returned for the same server/host name/certificate only, and rewritten only when it changed', () => {
    const f = new MemFlash(20 * 4096, 4096);
    const s = openDeviceStorage(f);
    const tag = sessionTag(['tb.example.com', '5684', 'tb.example.com', undefined, undefined]);
    const other = sessionTag(['tb.example.com', '5684', 'other.example.com', undefined, undefined]);
    const x509 = sessionTag(['tb.example.com', '5684', 'tb.example.com', new Uint8Array([1]), new Uint8Array([2])]);
    assert.notEqual(tag, other);
    assert.notEqual(tag, x509);
    const session = new Uint8Array([9, 8, 7, 6, 5]);
    assert.equal(s.session.save(tag, session), true);
    const writes = f.stats.writes;
    assert.equal(s.session.save(tag, session.slice()), false, 'same bytes: no write');
    assert.equal(f.stats.writes, writes);
    const again = openDeviceStorage(f);
    assert.deepEqual([...again.session.load(tag)!], [...session]);
    assert.equal(again.session.load(other), undefined);
    assert.equal(again.session.load(x509), undefined);
    again.session.clear();
    assert.equal(openDeviceStorage(f).session.load(tag), undefined);
  });
});
