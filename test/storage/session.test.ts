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

  it('keeps the connection saved before sleep beside the session: tagged, rewritten each sleep, cleared once, survives a reboot', () => {
    const f = new MemFlash(20 * 4096, 4096);
    const s = openDeviceStorage(f);
    const tag = sessionTag(['tb.example.com', '5684', 'tb.example.com', undefined, undefined]);
    const other = sessionTag(['tb.example.com', '5684', 'other.example.com', undefined, undefined]);
    const session = new Uint8Array([9, 8, 7]);
    s.session.save(tag, session);
    const ctx = new Uint8Array(217).map((_, i) => i);
    const before = f.stats.bytesWritten;
    s.session.saveContext(tag, ctx);
    assert.equal(f.stats.bytesWritten - before, 240, 'one record: 16 B header + 4 B tag + 217 B, aligned to 16');
    const rebooted = openDeviceStorage(f);
    assert.deepEqual([...rebooted.session.loadContext(tag)!], [...ctx]);
    assert.equal(rebooted.session.loadContext(other), undefined, 'never offered to other credentials');
    assert.deepEqual([...rebooted.session.load(tag)!], [...session], 'the session stays for the fallback');
    const w = f.stats.bytesWritten;
    assert.equal(rebooted.session.clearContext(), true);
    assert.equal(f.stats.bytesWritten - w, 16, 'a tombstone');
    assert.equal(rebooted.session.clearContext(), false, 'nothing to clear: no write');
    assert.equal(f.stats.bytesWritten - w, 16);
    assert.equal(openDeviceStorage(f).session.loadContext(tag), undefined, 'cleared for good: a reboot cannot load it again');
    assert.deepEqual([...openDeviceStorage(f).session.load(tag)!], [...session]);
  });
});
