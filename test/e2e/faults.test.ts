/*
 * Network faults between the firmware app and the local endpoint, over real loopback UDP with
 * the simulator's fault injection: lost, duplicated and truncated datagrams, NAT rebinding.
 * Nothing is lost and nothing is stored twice.
 */
import { strict as assert } from 'node:assert';
import dgram from 'node:dgram';
import { SeededRandom } from '../../tools/sim/random';
import type { SimDevice, SimDeviceOptions } from '../../tools/sim/device';
import { admin, useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';

/** Lets the wall clock move past the last report's millisecond. */
const tick = () => new Promise((r) => setTimeout(r, 5));

const FAST = { ackTimeout: 100, ackRandomFactor: 1.5, maxRetransmit: 6, responseTimeout: 600 };

describe('e2e: network faults (real UDP with fault injection)', function () {
  this.timeout(30000);
  const e2e = useEndpoint(undefined, { reportingIntervalMs: 3_600_000, transmission: FAST, replayPaceMs: 10 });
  const device = (token: string, extra: Partial<SimDeviceOptions> = {}): SimDevice =>
    e2e.device({ credentials: { kind: 'token', token }, ...extra });

  const stored = (id: string) => e2e.server.store.telemetry(id, ['temperature']).temperature ?? [];

  it('25% loss each way: every reading arrives, none stored twice (retransmission, dedup, replay by ts)', async () => {
    const dev = e2e.server.store.createDevice('lossy');
    const d = device(dev.token);
    const rnd = new SeededRandom(42);
    d.udp.faults = { lossOut: 0.25, lossIn: 0.25, random: () => rnd.next() };
    await d.app.start();
    for (let i = 0; i < 8; i++) {
      await tick(); // distinct timestamps: (key, ts) is the identity of a point
      await d.app.reportNow();
    }
    for (let i = 0; i < 20 && d.app.state.queued > 0; i++) await d.app.flush();
    assert.equal(d.app.state.queued, 0, 'queue drained');
    // A report whose separate response was lost beyond responseTimeout is replayed with its original
    // ts; the server (like ThingsBoard's ts_kv) keeps one point per (key, ts).
    const points = stored(dev.id);
    assert.equal(points.length, 1 + 8, 'the start-up reading and eight more, each once');
    assert.ok(d.app.link.coap!.stats.retransmissions > 0, 'losses were retransmitted');
  });

  it('every datagram duplicated: the server processes each request once, the device each response once', async () => {
    const dev = e2e.server.store.createDevice('dup');
    const d = device(dev.token);
    d.udp.faults = { duplicateOut: 1, random: () => 0 };
    await d.app.start();
    for (let i = 0; i < 5; i++) {
      await tick();
      await d.app.reportNow();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(stored(dev.id).length, 6);
    assert.equal(d.app.state.queued, 0);
  });

  it('garbage and truncated datagrams from the server address are ignored without losing the exchange', async () => {
    const dev = e2e.server.store.createDevice('garbage');
    const d = device(dev.token);
    await d.app.start();
    // Inject junk from the server's own address/port: a spoofer on the path (or a broken NAT).
    const spoof = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoof.bind(0, '127.0.0.1', () => r()));
    const junk = [Buffer.from([0xff, 0x00]), Buffer.from([0x41, 0x45, 0x00]), Buffer.from('not coap at all'), Buffer.alloc(0)];
    for (const j of junk) spoof.send(j, d.udp.localPort, '127.0.0.1');
    spoof.close();
    await tick();
    await d.app.reportNow();
    assert.equal(d.app.state.queued, 0);
    assert.equal(stored(dev.id).length, 2);
  });

  it('NAT rebinding: notifications go to the old port until the observations are re-registered', async () => {
    const dev = e2e.server.store.createDevice('nat');
    const d = device(dev.token, { observeRefreshMs: 1 });
    await d.app.start();
    const setShared = (v: number) =>
      admin(e2e.server, 'POST', '/api/devices/nat/attributes/shared', { reportingInterval: v });
    await setShared(100);
    await waitFor('before rebinding', () => d.app.intervalMs === 100_000);
    d.udp.rebind(); // the NAT maps us to a new port: the server still notifies the old one
    await setShared(200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(d.app.intervalMs, 100_000, 'the notification went to the old mapping');
    // The next report re-registers (observeRefreshMs) from the new port: the server answers
    // the new registration with the current shared attributes, and later changes arrive again.
    await d.app.reportNow();
    await waitFor('snapshot after re-registration', () => d.app.intervalMs === 200_000);
    await setShared(300);
    await waitFor('after re-registration', () => d.app.intervalMs === 300_000);
  });
});
