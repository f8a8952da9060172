/*
 * DeviceApp on a ManualClock against an in-memory ThingsBoard: sampling runs on the clock whatever
 * the network does, the queue survives reboots in flash, the reporting interval set by the server
 * is kept in flash and wins at boot (with the log saying which value won), and Observe is
 * re-registered after silences and outages by default.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { MemFlash } from '../../tools/sim/flash';
import { DeviceApp, OBSERVE_REFRESH_MS } from '../../src/device/app';
import type { DeviceConfig, TelemetrySource } from '../../src/device/app';
import type { Platform } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import type { DeviceStorage } from '../../src/storage/index';
import { SeededRandom } from '../../tools/sim/random';
import { memoryLog } from '../helpers/wait';
import { FakeThingsBoard } from './fake-tb';

const settle = () => new Promise<void>((r) => setImmediate(r));
const FAST = { ackTimeout: 2000, ackRandomFactor: 1, maxRetransmit: 4, responseTimeout: 30000 };

interface Rig {
  app: DeviceApp;
  clock: ManualClock;
  tb: FakeThingsBoard;
  log: ReturnType<typeof memoryLog>;
  taken: number[];
}

function rig(clock: ManualClock, tb: FakeThingsBoard, config: Partial<DeviceConfig> = {}, storage?: DeviceStorage, taken: number[] = []): Rig {
  const log = memoryLog();
  const platform: Platform = { clock, net: { open: () => tb }, random: new SeededRandom(7), log };
  let n = 0;
  const source: TelemetrySource = {
    name: 'counter',
    read: () => {
      taken.push(clock.epochMs());
      return { temperature: 20 + (n++ % 10) / 10 };
    },
  };
  const app = new DeviceApp(
    platform,
    {
      server: { host: 'tb.local', port: 5683 },
      credentials: { kind: 'token', token: 'T' },
      reportingIntervalMs: 2000,
      transmission: FAST,
      replayPaceMs: 100,
      ...(storage ? { storage: { queue: storage.queue, settings: storage.settings } } : {}),
      ...config,
    },
    [source],
    tb,
  );
  return { app, clock, tb, log, taken };
}

describe('device: schedule, offline queue, persisted config, Observe refresh (ManualClock)', function () {
  this.timeout(30000);

  it('keeps sampling every interval while a report goes unanswered (a 60 s outage takes 30 readings, not 1), and delivers them all later', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const r = rig(clock, tb);
    await r.app.start();
    await clock.advanceAsync(1000, settle);
    const before = r.taken.length;
    tb.online = false;
    await clock.advanceAsync(60_000, settle);
    const during = r.taken.length - before;
    assert.ok(during >= 30, `readings taken during the outage: ${during}`);
    tb.online = true;
    await clock.advanceAsync(120_000, settle);
    assert.equal(r.app.state.queued, 0);
    assert.deepEqual(tb.stored('temperature'), r.taken, 'every reading stored, with the ts it was taken at');
    r.app.stop();
  });

  it('the sampling cadence does not drift with delivery time: reading n is taken at start + n * interval', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const r = rig(clock, tb, { reportingIntervalMs: 5000 });
    await r.app.start();
    tb.online = false; // every report now takes the whole retransmission series
    await clock.advanceAsync(50_000, settle);
    const offsets = r.taken.map((t) => t - r.taken[0]!);
    assert.deepEqual(offsets, Array.from({ length: 11 }, (_, i) => i * 5000));
    r.app.stop();
  });

  it('with flash: readings queued during an outage survive a reboot and are sent after it, once each, with their ts', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const flash = new MemFlash(20 * 4096, 4096);
    const taken: number[] = [];
    const a = rig(clock, tb, {}, openDeviceStorage(flash), taken);
    await a.app.start();
    await clock.advanceAsync(3000, settle);
    tb.online = false;
    await clock.advanceAsync(20_000, settle);
    assert.ok(a.app.state.queued >= 9, `queued ${a.app.state.queued}`);
    a.app.stop(); // power off
    tb.online = true;
    const b = rig(clock, tb, {}, openDeviceStorage(flash), taken);
    assert.ok(b.app.state.queued >= 9, 'the queue came back from flash');
    const started = b.app.start(); // replays the queue, paced on the clock
    await clock.advanceAsync(30_000, settle);
    await started;
    assert.equal(b.app.state.queued, 0);
    assert.deepEqual(tb.stored('temperature'), taken);
    assert.equal(b.app.state.dropped, 0);
    b.app.stop();
  });

  it('the reporting interval from the server is kept in flash and wins at the next boot; the log says which value won', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const flash = new MemFlash(20 * 4096, 4096);
    const a = rig(clock, tb, { reportingIntervalMs: 60_000 }, openDeviceStorage(flash));
    await a.app.start();
    assert.match(a.log.lines.join('\n'), /reporting interval 60 s from the build config \(no server value stored\)/);
    tb.notifyShared({ reportingInterval: 15 });
    await clock.advanceAsync(10, settle);
    assert.equal(a.app.intervalMs, 15_000);
    assert.match(a.log.lines.join('\n'), /reporting interval now 15 s from shared attribute reportingInterval \(was 60 s from the build config\)/);
    a.app.stop();
    // Reboot with the same build value: the stored server value applies before any notification.
    const b = rig(clock, tb, { reportingIntervalMs: 60_000 }, openDeviceStorage(flash));
    assert.equal(b.app.intervalMs, 15_000);
    assert.equal(b.app.intervalSource, 'server');
    await b.app.start();
    assert.match(b.log.lines.join('\n'), /reporting interval 15 s: the server's value stored in flash wins over the build's 60 s/);
    // The server drops the attribute: the registration snapshot no longer has it -> back to the build value.
    delete tb.shared.reportingInterval;
    await b.app.resubscribe();
    await clock.advanceAsync(10, settle);
    assert.equal(b.app.intervalMs, 60_000);
    assert.equal(b.app.intervalSource, 'build');
    b.app.stop();
    const c = rig(clock, tb, { reportingIntervalMs: 60_000 }, openDeviceStorage(flash));
    assert.equal(c.app.intervalMs, 60_000, 'nothing stored any more');
  });

  it(`re-registers Observe by default after an uplink that followed ${OBSERVE_REFRESH_MS / 1000} s of silence, and after an outage; not when reports are frequent`, async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const r = rig(clock, tb, { reportingIntervalMs: 10_000 });
    await r.app.start();
    assert.deepEqual(tb.registrations, ['attributes', 'rpc']);
    await clock.advanceAsync(60_000, settle);
    assert.equal(tb.registrations.length, 2, 'reports every 10 s keep the mapping alive: no re-registration');
    r.app.setReportingInterval(60_000);
    await clock.advanceAsync(60_000, settle);
    assert.equal(tb.registrations.length, 4, 'after 60 s of silence the report re-registers both');
    tb.online = false;
    r.app.setReportingInterval(10_000);
    await clock.advanceAsync(100_000, settle); // long enough for a report to fail (62 s of retransmissions)
    assert.ok(r.app.state.failures > 0);
    tb.online = true;
    await clock.advanceAsync(120_000, settle);
    assert.equal(tb.registrations.length, 6, 'after the outage: re-registered once');
    r.app.stop();
  });

  it('observeRefreshMs 0 turns the refresh off', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const r = rig(clock, tb, { reportingIntervalMs: 60_000, observeRefreshMs: 0 });
    await r.app.start();
    await clock.advanceAsync(300_000, settle);
    assert.equal(tb.registrations.length, 2);
    r.app.stop();
  });
});
