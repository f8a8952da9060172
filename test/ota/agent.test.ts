/*
 * OtaAgent against in-memory ThingsBoard/CoAP fakes on a ManualClock (fakes.ts): power cuts at every
 * flash operation of a download, loss, a version change mid-download, X.509, a wrong checksum.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { X509_UNSUPPORTED } from '../../src/ota/agent';
import { ManualClock } from '../../tools/sim/clock';
import { MemFlash, PowerCut } from '../../tools/sim/flash';
import { SimFirmwareSlots } from '../../tools/sim/ota-slots';
import { OtaStore } from '../../src/ota/store';
import { openDeviceStorage } from '../../src/storage/index';
import { bootAgent, drive, FakeThingsBoard, fwAttributes } from './fakes';
import { bytesOf } from './vectors';

const FACTORY = { title: 'fw', version: '1.0' };

function setup(size = 6000, slotBytes = 16 * 1024) {
  const clock = new ManualClock();
  const fake = new FakeThingsBoard(clock);
  fake.pkg = { title: 'fw', version: '2.0', data: bytesOf(size, 99) };
  const storage = new MemFlash(80 * 1024, 4096);
  const slots = new SimFirmwareSlots({ factory: FACTORY, slotBytes, blockSize: 4096 });
  let restarted = 0;
  slots.onRestart = () => restarted++;
  return { clock, fake, storage, slots, restarts: () => restarted };
}

describe('ota agent (in-memory ThingsBoard)', function () {
  this.timeout(120_000);

  it('downloads, verifies and switches: states in order, the slot holds the package', async () => {
    const s = setup();
    const { agent } = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.restarts() > 0);
    assert.deepEqual(s.fake.states(), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING']);
    assert.deepEqual(s.fake.requests.map((r) => r.chunk), Array.from({ length: 24 }, (_, i) => i), 'each chunk once, none past the end');
    assert.deepEqual(s.slots.slots[1].read(0, 6000), s.fake.pkg!.data);
    agent.stop();
    // the loader boots the new image on trial; it reports UPDATED and is kept
    const second = bootAgent(s);
    await drive(s.clock, () => !s.slots.running().trial);
    assert.equal(s.slots.running().version, '2.0');
    assert.deepEqual(s.fake.telemetry.at(-1), { fw_state: 'UPDATED', current_fw_title: 'fw', current_fw_version: '2.0' });
    second.agent.stop();
  });

  for (const [cs, size] of [[256, 6000], [1008, 10_000]] as const) {
  it(`a power cut at every flash operation of the download (chunk writes, erases, progress records; mid-operation and just after), ${cs}-byte chunks: resumed where it stopped, never from zero`, async () => {
    // Dry run: number the program/erase operations of both flashes during one download.
    const dry = setup(size);
    const dryAgent = bootAgent({ ...dry, options: { chunkSize: cs } }).agent;
    const storageOpsBefore = dry.storage.stats.ops; // opening the store writes nothing
    await drive(dry.clock, () => dry.restarts() > 0);
    dryAgent.stop();
    const slotOps = dry.slots.slots[1].stats.ops;
    const storageOps = dry.storage.stats.ops - storageOpsBefore;
    const count = Math.ceil(size / cs);
    assert.ok(slotOps >= count + 2 && storageOps >= count + 1, `${slotOps} slot ops, ${storageOps} storage ops`);
    let cases = 0;
    for (const which of ['slot', 'storage'] as const) {
      const ops = which === 'slot' ? slotOps : storageOps;
      for (let op = 1; op <= ops; op++) {
        for (const bytes of [7, 1 << 20]) {
          const s = setup(size);
          const flash = which === 'slot' ? s.slots.slots[1] : s.storage;
          flash.cutAt = { op, bytes };
          const first = bootAgent({ ...s, options: { chunkSize: cs } });
          await drive(s.clock, () => flash.cutAt === undefined || s.restarts() > 0);
          if (s.restarts() > 0) continue; // this op came after the switch (the boot record is not in these flashes)
          // the power is gone: nothing more runs on the old boot
          first.agent.stop();
          s.fake.dead = true;
          await drive(s.clock, () => s.clock.nextDue() === undefined);
          s.fake.dead = false;
          const before = s.fake.requests.length;
          const received = before; // no loss: every request before the cut was answered
          const second = bootAgent({ ...s, options: { chunkSize: cs } });
          try {
            await drive(s.clock, () => s.restarts() > 0);
          } catch (e) {
            throw new Error(`${which} op ${op} cut after ${bytes} B: ${(e as Error).message}\n${second.log.lines.join('\n')}\n${first.log.lines.join('\n')}`);
          }
          second.agent.stop();
          const after = s.fake.requests.slice(before).map((r) => r.chunk);
          const label = `${which} op ${op} cut after ${bytes} B (${received} chunks received before)`;
          assert.deepEqual(s.slots.slots[1].read(0, size), s.fake.pkg!.data, label);
          assert.ok(!s.fake.states().includes('FAILED'), label);
          if (received > 0 && after.length) {
            assert.ok(after[0]! >= received - 1, `${label}: resumed at chunk ${after[0]}`);
            assert.ok(after[0]! > 0 || received <= 1, `${label}: restarted from zero`);
          }
          assert.ok(received + after.length <= count + 1, `${label}: ${received} + ${after.length} chunk requests for ${count} chunks`);
          cases++;
        }
      }
    }
    assert.ok(cases >= 4 * count, `${cases} cut cases`);
    console.log(`      ${cs}-byte chunks: ${cases} power-cut cases (slot ${slotOps} ops, storage ${storageOps} ops, each cut mid-op and right after)`);
  });
  }

  it('20 % loss each way: completes with retries, the image intact', async () => {
    const s = setup(20_000, 32 * 1024);
    s.fake.lossRate = 0.2;
    const { agent } = bootAgent({ ...s, options: { chunkSize: 512 } });
    await drive(s.clock, () => s.restarts() > 0);
    agent.stop();
    assert.deepEqual(s.slots.slots[1].read(0, 20_000), s.fake.pkg!.data);
    assert.ok(agent.stats.timeouts > 5, `${agent.stats.timeouts} timeouts`);
    assert.equal(agent.stats.chunks, 40);
  });

  it('a new fw_version mid-download starts that package from chunk 0 and installs it (also across a reboot)', async () => {
    const s = setup();
    const first = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.fake.requests.length >= 8);
    s.fake.pkg = { title: 'fw', version: '3.0', data: bytesOf(5000, 7) };
    first.agent.onSharedAttributes(fwAttributes(s.fake.pkg), []);
    await drive(s.clock, () => s.fake.requests.some((r) => r.version === '3.0' && r.chunk >= 5));
    first.agent.stop(); // reboot mid-download of 3.0
    const second = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.restarts() > 0);
    second.agent.stop();
    const v3 = s.fake.requests.filter((r) => r.version === '3.0').map((r) => r.chunk);
    assert.equal(v3[0], 0, '3.0 starts at chunk 0');
    assert.ok(v3.length <= 20 + 1, `3.0 chunks requested: ${v3.length}`);
    const afterSwitch = s.fake.requests.slice(s.fake.requests.findIndex((r) => r.version === '3.0'));
    assert.ok(afterSwitch.every((r) => r.version === '3.0'), 'nothing of 2.0 after the switch');
    assert.deepEqual(s.slots.slots[1].read(0, 5000), s.fake.pkg.data);
    assert.deepEqual(s.fake.states().filter((x) => x !== 'DOWNLOADING'), ['DOWNLOADED', 'VERIFIED', 'UPDATING']);
  });

  it('wrong checksum: FAILED with fw_error, no switch, not downloaded again for the same package', async () => {
    const s = setup();
    s.fake.pkg!.checksum = createHash('sha256').update('something else').digest('hex');
    const { agent } = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.fake.states().includes('FAILED'));
    const failed = s.fake.telemetry.find((t) => t.fw_state === 'FAILED')!;
    assert.match(String(failed.fw_error), /checksum mismatch \(SHA256\)/);
    const n = s.fake.requests.length;
    agent.onSharedAttributes(fwAttributes(s.fake.pkg!), []);
    await drive(s.clock, () => s.clock.nextDue() === undefined);
    agent.stop();
    assert.equal(s.fake.requests.length, n, 'the failed package is not fetched again');
    assert.equal(s.restarts(), 0);
    s.slots.boot();
    assert.equal(s.slots.running().version, '1.0', 'the old image still boots');
  });

  it('X.509 device: FAILED once with the reason (ThingsBoard /fw is token-only), no /fw request', async () => {
    const s = setup();
    s.fake.x509 = true;
    const { agent, log } = bootAgent(s);
    await drive(s.clock, () => s.fake.states().includes('FAILED'));
    agent.onSharedAttributes(fwAttributes(s.fake.pkg!), []);
    await drive(s.clock, () => s.clock.nextDue() === undefined);
    agent.stop();
    assert.equal(s.fake.requests.length, 0);
    assert.deepEqual(s.fake.states(), ['FAILED']);
    assert.equal(s.fake.telemetry[0]!.fw_error, X509_UNSUPPORTED);
    assert.ok(log.lines.some((l) => l.startsWith('error') && l.includes('#13097')));
  });

  it('fw_state reports the server did not confirm are kept in flash and sent after the reboot with their own ts, before UPDATED', async () => {
    const s = setup();
    s.fake.telemetryDown = true; // chunks come, telemetry is refused: nothing reaches the history
    const first = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.restarts() > 0);
    first.agent.stop();
    assert.deepEqual(s.fake.states(), []);
    const kept = new OtaStore(openDeviceStorage(s.storage).kv).pendingStates();
    assert.deepEqual(kept.map((p) => p.values.fw_state), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING']);
    const sentBy = s.clock.epochMs();
    s.fake.telemetryDown = false;
    s.clock.advance(60_000);
    const second = bootAgent(s);
    await drive(s.clock, () => !s.slots.running().trial);
    second.agent.stop();
    assert.deepEqual(s.fake.states(), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED']);
    const ts = s.fake.records.map((r) => r.ts!);
    assert.deepEqual(ts.slice(0, 4), kept.map((p) => p.ts), 'sent with the ts of the moment they happened');
    assert.ok(ts[3]! <= sentBy && ts[4]! > sentBy, `ts ${ts}`);
    assert.ok(ts.every((t, i) => i === 0 || t > ts[i - 1]!), 'strictly increasing');
    assert.deepEqual(new OtaStore(openDeviceStorage(s.storage).kv).pendingStates(), [], 'removed once confirmed');
  });

  it('a power cut after a state was kept: it is still sent after the reboot, once', async () => {
    const s = setup();
    s.fake.pkg!.checksum = createHash('sha256').update('something else').digest('hex');
    s.fake.telemetryDown = true;
    const first = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => new OtaStore(openDeviceStorage(s.storage).kv).pendingStates().some((p) => p.values.fw_state === 'FAILED'));
    first.agent.stop(); // the power goes
    s.fake.telemetryDown = false;
    const second = bootAgent(s);
    await drive(s.clock, () => s.fake.states().includes('FAILED'));
    await drive(s.clock, () => s.clock.nextDue() === undefined);
    second.agent.stop();
    assert.deepEqual(s.fake.states(), ['DOWNLOADING', 'DOWNLOADED', 'FAILED']);
    assert.match(String(s.fake.telemetry[2]!.fw_error), /checksum mismatch/);
  });

  it('uses the platform digest given in options.hash (the device passes crypt Digest for MD5/SHA)', async () => {
    const s = setup();
    const used: string[] = [];
    const hash = (algorithm: string) => {
      used.push(algorithm);
      const h = createHash('sha256');
      return { update: (b: Uint8Array, start = 0, end = b.length) => void h.update(b.subarray(start, end)), digestHex: () => h.digest('hex') };
    };
    const { agent } = bootAgent({ ...s, options: { chunkSize: 256, hash: hash as never } });
    await drive(s.clock, () => s.restarts() > 0);
    agent.stop();
    assert.deepEqual(used, ['SHA256']);
    assert.deepEqual(s.fake.states(), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING']);
  });

  it('a new image that dies before the agent runs: switched again once, then FAILED, the old image stays', async () => {
    const s = setup();
    const first = bootAgent({ ...s, options: { chunkSize: 256 } });
    await drive(s.clock, () => s.restarts() > 0);
    first.agent.stop();
    for (let round = 0; round < 2; round++) {
      s.slots.boot(); // the new image starts on trial and dies at once: nothing noted
      assert.equal(s.slots.running().trial, true);
      s.slots.rollback();
      const old = bootAgent(s); // the loader goes back to the old image
      assert.equal(s.slots.running().version, '1.0');
      if (round === 0) {
        await drive(s.clock, () => s.restarts() > 1);
        old.agent.stop();
      } else {
        await drive(s.clock, () => s.fake.states().includes('FAILED'));
        await drive(s.clock, () => s.clock.nextDue() === undefined);
        old.agent.stop();
      }
    }
    assert.equal(s.restarts(), 2, 'one switch, and one more after the first failed start');
    const failed = s.fake.telemetry.find((t) => t.fw_state === 'FAILED')!;
    assert.match(String(failed.fw_error), /did not start after the switch/);
    s.slots.boot();
    assert.equal(s.slots.running().version, '1.0');
  });

  it('PowerCut is what the flash throws (the harness relies on it)', () => {
    const f = new MemFlash(4096, 4096);
    f.cutAt = { op: 1, bytes: 1 };
    assert.throws(() => f.write(0, new Uint8Array(4)), PowerCut);
  });
});
