/*
 * The day of test/device/offline-day.test.ts against the local endpoint over real UDP: 24 device
 * hours, a reading a minute, a 6-hour outage (every datagram lost both ways) with a reboot in its
 * middle. The device runs on a ManualClock; between its timers the test waits (bounded) until the
 * loopback traffic is quiet. The endpoint keeps one point per (key, ts) like ThingsBoard's ts_kv.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { MemFlash } from '../../tools/sim/flash';
import type { SimDevice } from '../../tools/sim/device';
import { useEndpoint } from '../helpers/e2e';

const H = 3600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('e2e: a day with a 6-hour outage and a reboot in the middle (real UDP, flash queue)', function () {
  this.timeout(180_000);
  const e2e = useEndpoint();

  it('every reading stored exactly once by (key, ts) with its original ts', async () => {
    const dev = e2e.server.store.createDevice('day');
    // The endpoint keeps the last 1000 entries per device by default (HISTORY_LIMIT); a day is more.
    (e2e.server.store as unknown as { historyLimit: number }).historyLimit = 10_000;
    const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
    const flash = new MemFlash(20 * 4096, 4096);
    const taken: number[] = [];
    const boot = (): SimDevice =>
      e2e.device({
        credentials: { kind: 'token', token: dev.token },
        clock,
        flash,
        reportingIntervalMs: 60_000,
        sources: () => [{ name: 'n', read: () => (taken.push(clock.epochMs()), { temperature: 20 + (taken.length % 50) / 10 }) }],
      });
    let d = boot();
    let online = true;
    let traffic = 0;
    const activity = () => d.udp.stats.datagramsSent + d.udp.stats.datagramsReceived;
    // Between timers: until the loopback has been quiet for 4 ms (at most 400 ms).
    const settle = async () => {
      await new Promise((r) => setImmediate(r));
      if (!online || activity() === traffic) return;
      for (let i = 0, quiet = 0; i < 100 && quiet < 2; i++) {
        const before = activity();
        await sleep(2);
        await new Promise((r) => setImmediate(r));
        quiet = activity() === before ? quiet + 1 : 0;
      }
      traffic = activity();
    };
    const run = async (until: number) => {
      while (clock.now() < until) await clock.advanceAsync(Math.min(H, until - clock.now()), settle);
    };
    const outage = (on: boolean) => {
      online = !on;
      d.udp.faults = on ? { lossOut: 1, lossIn: 1 } : {};
    };

    let started = d.app.start();
    await run(9 * H);
    await started;
    outage(true);
    await run(12 * H);
    d.app.stop(); // power cut at 12:00, back 5 s later
    await clock.advanceAsync(5000, settle);
    d = boot();
    outage(true);
    assert.ok(d.app.state.queued >= 170, `queue back from flash: ${d.app.state.queued}`);
    started = d.app.start();
    await run(15 * H);
    outage(false);
    await run(24 * H + 10 * 60_000);
    await started;
    assert.equal(d.app.state.queued, 0, 'drained');

    const points = e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    const stored = points.map((p) => p.ts).sort((a, b) => a - b);
    assert.ok(taken.length >= 24 * 60, `${taken.length} readings`);
    assert.equal(new Set(stored).size, stored.length, 'one point per (key, ts)');
    assert.deepEqual(stored, [...taken].sort((a, b) => a - b), 'every reading, each with its original ts');
    assert.equal(d.app.state.dropped, 0);
  });
});
