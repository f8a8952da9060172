/*
 * The wake cycle end to end on one virtual clock: firmware (DeviceApp, schedule 'external') +
 * WakeCycle + nRF91 SLM driver + simulated modem (PSM, eDRX, NAT rebinding after PSM) + real
 * loopback UDP + the local endpoint with ThingsBoard's PSM / E_DRX downlink rules (its PSM state on
 * the same clock). Event-driven: no timed waits; every run is bounded by its virtual end time.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkActivityTimer } from '../../src/power/cycle';
import type { PowerProfile } from '../../src/power/cycle';
import { ManualClock } from '../../tools/sim/clock';
import type { PowerSim, PowerSimOptions } from '../../tools/sim/modem/power-sim';
import { createPowerSim } from '../../tools/sim/modem/power-sim';
import type { TbServer } from '../../tools/tb-server/server';
import { startTbServer } from '../../tools/tb-server/server';
import type { Device } from '../../tools/tb-server/store';
import { memoryLog } from '../helpers/wait';
import { makeTestPki } from '../../tools/provision/certs';

const S = 1000;
const MIN = 60 * S;

describe('power: T3324 against the profile activity timer', () => {
  const psm: PowerProfile = { powerMode: 'PSM', psmActivityTimer: 10000 };
  const reg = (activeTimeS: number | null | undefined) => ({ status: 'home' as const, registered: true, activeTimeS });
  it('agrees when T3324 covers the timer without much excess', () => {
    assert.equal(checkActivityTimer(psm, reg(10)), undefined);
    assert.equal(checkActivityTimer(psm, reg(20)), undefined);
    assert.equal(checkActivityTimer({ powerMode: 'PSM' }, reg(10)), undefined, 'TB default 10 s');
  });
  it('warns when T3324 is shorter, much longer, deactivated or unknown', () => {
    assert.match(checkActivityTimer(psm, reg(4))!, /shorter than the profile's PSM activity timer 10 s/);
    assert.match(checkActivityTimer(psm, reg(120))!, /much longer/);
    assert.match(checkActivityTimer(psm, reg(null))!, /did not grant PSM/);
    assert.match(checkActivityTimer(psm, reg(undefined))!, /did not report T3324/);
    assert.equal(checkActivityTimer({ powerMode: 'DRX' }, reg(4)), undefined, 'only PSM has an activity timer');
  });
});

describe('power: wake cycle against the local endpoint (virtual clock)', function () {
  this.timeout(240_000);
  let dir: string;
  let tb: TbServer;
  let clock: ManualClock;
  let ps: PowerSim | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-power-'));
    clock = new ManualClock(0, Date.UTC(2026, 0, 1));
    tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, clock });
  });
  afterEach(async () => {
    ps?.stop();
    ps = undefined;
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function device(profile: PowerProfile, options: Partial<PowerSimOptions> = {}): { dev: Device; ps: PowerSim; log: ReturnType<typeof memoryLog> } {
    const dev = tb.store.createDevice('battery-1');
    tb.store.updateDevice(dev, { power: { powerMode: profile.powerMode, psmActivityTimer: profile.psmActivityTimer ?? 10000, pagingTransmissionWindow: profile.pagingTransmissionWindow ?? 10000 } });
    const log = memoryLog();
    ps = createPowerSim({ clock, server: { port: tb.coapPort }, token: dev.token, profile, reportingIntervalMs: 5 * MIN, log, ...options });
    ps.start();
    return { dev: tb.store.findDevice(dev.id)!, ps, log };
  }

  /** Runs the device clock in 1 s steps until `p` settles (at most maxMs of device time). */
  async function until<T>(p: PowerSim, promise: Promise<T>, maxMs = 120 * S): Promise<T> {
    let done = false;
    const q = promise.finally(() => (done = true));
    const end = clock.now() + maxMs;
    while (!done && clock.now() < end) await p.runUntil(clock.now() + S);
    return q;
  }

  const rpcTimes = (p: PowerSim) => p.events.filter((e) => e.type === 'rpc').map((e) => e.t);

  it('PSM: an RPC queued during sleep arrives in the next window; one sent after the window waits for the wake after', async () => {
    const { dev, ps } = device({ powerMode: 'PSM', psmActivityTimer: 10000 });
    await ps.runUntil(2 * MIN);
    assert.equal(ps.sim.radio, 'psm', 'asleep between reports');
    assert.ok(tb.service.isAsleep(dev), 'and asleep in the endpoint\'s books');
    const first = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 3_600_000, persistent: true });
    await ps.runUntil(5 * MIN - S);
    assert.deepEqual(rpcTimes(ps), [], 'not delivered while asleep');
    await ps.runUntil(6 * MIN);
    const [t1] = rpcTimes(ps);
    assert.ok(t1 !== undefined && t1 >= 5 * MIN && t1 <= 5 * MIN + 20 * S, `delivered in the window after the 5-min wake: ${t1}`);
    const r1 = await until(ps, first);
    assert.equal((r1.response as { reportingInterval: number }).reportingInterval, 300);

    // After the window has closed: queued until the following wake (10 min).
    await ps.runUntil(5 * MIN + 40 * S);
    assert.ok(tb.service.isAsleep(dev));
    const second = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 3_600_000, persistent: true });
    await ps.runUntil(10 * MIN - S);
    assert.equal(rpcTimes(ps).length, 1, 'waits for the next wake');
    await ps.runUntil(11 * MIN);
    const t2 = rpcTimes(ps)[1];
    assert.ok(t2 !== undefined && t2 >= 10 * MIN && t2 <= 10 * MIN + 20 * S, `delivered after the 10-min wake: ${t2}`);
    await until(ps, second);

    // Inside the window (the wakes run ~4 s after the minute: the first attach took that): at once.
    await ps.runUntil(15 * MIN + 10 * S);
    assert.ok(!tb.service.isAsleep(dev), 'awake in the window');
    const third = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 60_000 });
    await ps.runUntil(15 * MIN + 13 * S);
    assert.equal(rpcTimes(ps).length, 3, 'delivered within 3 s');
    await until(ps, third);
  });

  it('PSM: a new source port after every sleep, and no notification lost (queued attribute updates merged, re-registered first)', async () => {
    const { dev, ps } = device({ powerMode: 'PSM', psmActivityTimer: 10000 });
    const notified: { ts: number; peer: string }[] = [];
    tb.events.on('request', (e: { method: string; path: string; peer: string }) => {
      if (e.method === 'NOTIFY' && e.path.includes('attributes')) notified.push({ ts: clock.now(), peer: e.peer });
    });
    await ps.runUntil(2 * MIN);
    const portBefore = ps.sim.localPort();
    tb.store.setSharedAttributes(dev.id, { reportingInterval: 600, mode: 'eco' });
    tb.service.sharedAttributesChanged(dev, { reportingInterval: 600 }, []);
    tb.service.sharedAttributesChanged(dev, { mode: 'eco' }, []);
    await ps.runUntil(6 * MIN);
    const portAfter = ps.sim.localPort();
    assert.notEqual(portAfter, portBefore, 'NAT rebinding on wake');
    assert.ok(ps.sim.stats.rebinds >= 1);
    // The re-registration's snapshot, then the merged notification of what was queued: both reach
    // the new address (the endpoint notifies the address of the current registration).
    const updates = ps.events.filter((e) => e.type === 'attributes' && e.t > 2 * MIN) as { shared: Record<string, unknown> }[];
    assert.equal(updates.length, 2, 'snapshot + one merged notification');
    assert.deepEqual(updates[1]!.shared, { reportingInterval: 600, mode: 'eco' });
    // (The endpoint also notifies the stale relation at the old port: node-coap keys relations by
    // peer, ThingsBoard replaces a device's relation on re-registration. Lost there, not here.)
    const notifies = notified.filter((n) => n.ts > 2 * MIN);
    assert.ok(notifies.some((n) => n.peer.endsWith(`:${portAfter}`)), `sent to the new port ${portAfter}: ${notifies.map((n) => n.peer)}`);
    assert.equal(ps.app.intervalMs, 600_000, 'the new interval applies');
    // The next wakes follow the new interval, each from a new port; every report arrives.
    await ps.runUntil(26 * MIN);
    const reports = ps.events.filter((e) => e.type === 'report');
    const points = tb.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    assert.equal(points.length, reports.length);
    assert.ok(ps.sim.stats.rebinds >= 3, `rebinds ${ps.sim.stats.rebinds}`);
    assert.equal(ps.cycle.cycles, 4, 'wakes at 0, 5, 15, 25 min');
  });

  it('E_DRX: one downlink per uplink outside the paging window reaches the modem at its next paging occasion', async () => {
    const { dev, ps } = device({ powerMode: 'E_DRX', pagingTransmissionWindow: 10000, edrxCycle: 81920 }, { reportingIntervalMs: 15 * MIN });
    await ps.runUntil(2 * MIN);
    assert.equal(ps.sim.radio, 'idle', 'eDRX: idle, never PSM');
    const sentAt = clock.now();
    const rpc = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 600_000 });
    await ps.runUntil(sentAt + 90 * S);
    const t = rpcTimes(ps)[0];
    assert.ok(t !== undefined && t > sentAt && t <= sentAt + 82 * S + 5 * S, `paged within one eDRX cycle: ${t}`);
    await until(ps, rpc);
    assert.equal(ps.sim.stats.lostAsleep, 0);
  });

  it('DRX: the link and the observations stay up; an RPC arrives between reports within a paging cycle', async () => {
    const { dev, ps } = device({ powerMode: 'DRX' }, { reportingIntervalMs: 15 * MIN });
    await ps.runUntil(3 * MIN);
    assert.equal(ps.sim.radio, 'idle');
    const sentAt = clock.now();
    const rpc = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 60_000 });
    await until(ps, rpc);
    const t = rpcTimes(ps)[0]!;
    assert.ok(t - sentAt <= 2560 + 1000, `paged within a DRX cycle: ${t - sentAt} ms`);
    assert.equal(ps.sim.stats.rebinds, 0);
  });

  it('BG95: the same wake cycle through its socket commands (QIOPEN/QISEND/QIRD), every report stored', async () => {
    const { dev, ps } = device({ powerMode: 'PSM', psmActivityTimer: 10000 }, { dialect: 'bg95' });
    await ps.runUntil(2 * MIN);
    const rpc = tb.service.sendRpc(dev, { method: 'getState', timeoutMs: 3_600_000, persistent: true });
    await ps.runUntil(31 * MIN);
    await until(ps, rpc);
    const points = tb.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    assert.equal(ps.cycle.cycles, 7);
    assert.equal(points.length, 7);
    assert.ok(ps.sim.stats.rebinds >= 6);
    assert.equal(rpcTimes(ps).length, 1);
    assert.equal(ps.at.garbage, 0);
  });

  it('warns when the network grants a T3324 shorter than the activity timer', async () => {
    const { log } = device({ powerMode: 'PSM', psmActivityTimer: 10000 }, { modem: { grant: { activeTimeS: 4 } } });
    await ps!.runUntil(30 * S);
    assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes('T3324 granted 4 s is shorter')), log.lines.join('\n'));
  });

  it('CoAPs: the session resumed after each PSM sleep from a new port; one re-registration per wake, before the telemetry', async function () {
    const pki = makeTestPki();
    await tb.close();
    tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, clock, dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } });
    const dev = tb.store.createDevice('dtls-battery');
    tb.store.updateDevice(dev, { power: { powerMode: 'PSM', psmActivityTimer: 10000, pagingTransmissionWindow: 10000 } });
    const order: string[] = [];
    tb.events.on('request', (e: { method: string; path: string }) => {
      if (e.method === 'GET' && e.path.endsWith('/attributes')) order.push('observe');
      if (e.method === 'POST' && e.path.endsWith('/telemetry')) order.push('telemetry');
    });
    ps = createPowerSim({
      clock,
      server: { port: tb.coapsPort! },
      token: dev.token,
      profile: { powerMode: 'PSM', psmActivityTimer: 10000 },
      reportingIntervalMs: 15 * MIN,
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' },
      dtlsAfterSleep: 'resume',
      log: memoryLog(),
    });
    ps.start();
    await ps.runUntil(3 * 60 * MIN);
    const points = tb.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    assert.equal(ps.cycle.cycles, 12);
    assert.equal(points.length, 12, 'every report');
    assert.equal(ps.app.dtls!.resumed, true, 'abbreviated handshakes');
    assert.ok(ps.sim.stats.rebinds >= 11, 'from a new port each time');
    assert.equal(ps.app.state.failures, 0);
    // After the first cycle (registration at start, then telemetry): observe, then telemetry, each wake.
    assert.deepEqual(order.slice(2), Array.from({ length: 11 }, () => ['observe', 'telemetry']).flat());
  });

  /** A CoAPs endpoint and a PSM device on it (dtlsAfterSleep left to the default: 'restore'). */
  async function coapsDevice(name: string, modem: PowerSimOptions['modem'] = {}): Promise<{ dev: Device; order: string[] }> {
    const pki = makeTestPki();
    await tb.close();
    tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, clock, dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } });
    const dev = tb.store.createDevice(name);
    tb.store.updateDevice(dev, { power: { powerMode: 'PSM', psmActivityTimer: 10000, pagingTransmissionWindow: 10000 } });
    const order: string[] = [];
    tb.events.on('request', (e: { method: string; path: string }) => {
      if (e.method === 'GET' && e.path.endsWith('/attributes')) order.push('observe');
      if (e.method === 'POST' && e.path.endsWith('/telemetry')) order.push('telemetry');
    });
    ps = createPowerSim({
      clock,
      server: { port: tb.coapsPort! },
      token: dev.token,
      profile: { powerMode: 'PSM', psmActivityTimer: 10000 },
      reportingIntervalMs: 15 * MIN,
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' },
      modem,
      log: memoryLog(),
    });
    return { dev, order };
  }

  it('CoAPs, restore (the default): the connection saved before each PSM sleep is used at wake with no handshake while the address stays', async function () {
    const { dev, order } = await coapsDevice('dtls-restore', { rebindOnWake: false });
    ps!.start();
    await ps!.runUntil(3 * 60 * MIN);
    const points = tb.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    assert.equal(ps!.cycle.cycles, 12);
    assert.equal(points.length, 12, 'every report');
    assert.equal(ps!.cycle.dtlsStats.saved, 12, 'saved before each sleep (the last one too)');
    assert.equal(ps!.cycle.dtlsStats.restored, 11, 'restored at each wake');
    const d = ps!.app.dtls!;
    assert.equal(d.path, 'restored');
    assert.equal(d.stats.restored, 11, 'each restored connection answered by the server');
    assert.equal(d.stats.restoreFallbacks, 0);
    assert.equal(d.handshakes, 1, 'the first full handshake only');
    assert.equal(tb.dtlsServer!.stats.handshakes, 1, 'no handshake at the server after the first');
    assert.equal(ps!.app.state.failures, 0);
    assert.deepEqual(order.slice(2), Array.from({ length: 11 }, () => ['observe', 'telemetry']).flat());
  });

  it('CoAPs, restore with a NAT rebinding at each wake: the server does not answer the restored connection, the session is resumed, every report stored', async function () {
    const { dev } = await coapsDevice('dtls-restore-nat');
    ps!.start();
    await ps!.runUntil(3 * 60 * MIN);
    const points = tb.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    assert.equal(ps!.cycle.cycles, 12);
    assert.equal(points.length, 12, 'every report');
    assert.ok(ps!.sim.stats.rebinds >= 11, 'from a new port each time');
    const d = ps!.app.dtls!;
    assert.equal(d.stats.restored, 0, 'never answered from a new address (no Connection ID)');
    assert.ok(d.stats.restoreFallbacks >= 11, `${d.stats.restoreFallbacks} fallbacks`);
    assert.ok(d.stats.resumed >= 11, `${d.stats.resumed} resumed`);
    assert.equal(d.stats.full, 1, 'the first handshake only in full');
    assert.equal(ps!.app.state.failures, 0);
  });

  it('30 days, a report an hour, 1 % datagram loss each way: every reading stored once with its original ts', async function () {
    this.timeout(600_000);
    const dev = tb.store.createDevice('long-run');
    // The endpoint keeps the last 1000 entries per device (two keys a report); a month is more.
    (tb.store as unknown as { historyLimit: number }).historyLimit = 10_000;
    tb.store.updateDevice(dev, { power: { powerMode: 'PSM', psmActivityTimer: 10000, pagingTransmissionWindow: 10000 } });
    ps = createPowerSim({
      clock,
      server: { port: tb.coapPort },
      token: dev.token,
      profile: { powerMode: 'PSM', psmActivityTimer: 10000 },
      reportingIntervalMs: 60 * MIN,
      loss: 0.01,
      seed: 42,
      log: memoryLog(),
    });
    ps.start();
    const days = 30;
    await ps.runUntil(days * 24 * 60 * MIN + 2 * 60 * MIN);
    const points = (tb.store.telemetry(dev.id, ['temperature']).temperature ?? []).map((p) => p.ts);
    assert.equal(new Set(points).size, points.length, 'one point per ts');
    assert.ok(points.length >= days * 24, `${points.length} points`);
    assert.equal(ps.app.state.queued, 0, 'nothing left queued');
    assert.equal(points.length, ps.cycle.cycles, 'a point for every wake');
    assert.ok(ps.traffic.sent > days * 24 * 3);
  });
});
