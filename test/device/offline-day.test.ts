/*
 * 24 simulated hours, a reading a minute, with a 6-hour outage and a reboot in the middle of it:
 * every reading is stored at the server exactly once per (key, ts), with the ts it was taken at.
 * The device clock is a ManualClock and the server an in-memory ThingsBoard, so the day runs in
 * a few seconds; the queue is the flash ring (the RAM queue's 64 records would drop most of it).
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { MemFlash } from '../../tools/sim/flash';
import { SeededRandom } from '../../tools/sim/random';
import { DeviceApp } from '../../src/device/app';
import type { Platform } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import { memoryLog } from '../helpers/wait';
import { FakeThingsBoard } from './fake-tb';

const settle = () => new Promise<void>((r) => setImmediate(r));
const H = 3600_000;

describe('device: a day with a 6-hour outage and a reboot in the middle (ManualClock, flash queue)', function () {
  this.timeout(120_000);

  it('stores every reading exactly once by (key, ts) with its original ts, drops none', async () => {
    const clock = new ManualClock(0);
    const tb = new FakeThingsBoard();
    const flash = new MemFlash(20 * 4096, 4096);
    const taken: number[] = [];
    let peakQueued = 0;
    const boot = () => {
      const storage = openDeviceStorage(flash);
      const platform: Platform = { clock, net: { open: () => tb }, random: new SeededRandom(3), log: memoryLog() };
      const app = new DeviceApp(
        platform,
        { server: { host: 'tb', port: 5683 }, credentials: { kind: 'token', token: 'T' }, reportingIntervalMs: 60_000, storage: { queue: storage.queue, settings: storage.settings } },
        [{ name: 'n', read: () => (taken.push(clock.epochMs()), { temperature: 20 + (taken.length % 50) / 10, humidity: 50 }) }],
        tb,
      );
      app.onEvent = () => (peakQueued = Math.max(peakQueued, app.state.queued));
      return app;
    };
    const run = async (until: number) => {
      // Bounded: one step per hour of device time, timers fired in order within it.
      while (clock.now() < until) await clock.advanceAsync(Math.min(H, until - clock.now()), settle);
    };

    let app = boot();
    let started = app.start();
    await run(9 * H);
    await started;
    tb.online = false; // 09:00 - 15:00 the server is unreachable
    await run(12 * H);
    app.stop(); // 12:00 power cut; back 5 s later
    await clock.advanceAsync(5000, settle);
    app = boot();
    assert.ok(app.state.queued >= 170, `readings from the first half of the outage came back from flash (${app.state.queued})`);
    started = app.start();
    await run(15 * H);
    tb.online = true;
    await run(24 * H + 10 * 60_000); // the day, then ten minutes to drain
    await started;
    app.stop();

    const stored = tb.stored('temperature');
    assert.ok(taken.length >= 24 * 60, `a reading a minute all day (${taken.length})`);
    assert.equal(new Set(taken).size, taken.length, 'distinct timestamps');
    assert.equal(stored.length, taken.length, 'as many points stored as readings taken');
    assert.deepEqual(stored, [...taken].sort((a, b) => a - b), 'each with its original ts');
    assert.equal(tb.stored('humidity').length, taken.length);
    assert.equal(app.state.dropped, 0);
    assert.ok(peakQueued > 300, `the outage queued ${peakQueued} readings (the RAM queue holds 64)`);
    console.log(`      ${taken.length} readings, ${tb.telemetryPosts} telemetry POSTs, peak queue ${peakQueued}, flash: ${flash.stats.writes} programs, ${flash.stats.erases} erases`);
  });
});
