/*
 * End to end: the unchanged firmware app (src/device) over real loopback UDP against the local
 * ThingsBoard-compatible endpoint (tools/tb-server, built on node-coap, not on src/coap).
 */
import { strict as assert } from 'node:assert';
import type { SimDevice, SimDeviceOptions } from '../../tools/sim/device';
import { admin, useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

describe('e2e: simulated device <-> local ThingsBoard endpoint (real UDP)', function () {
  const e2e = useEndpoint();
  const device = (token: string, extra: Partial<SimDeviceOptions> = {}): SimDevice =>
    e2e.device({ credentials: { kind: 'token', token }, ...extra });

  it('reports sensor telemetry that the server stores with the device timestamp', async () => {
    const dev = e2e.server.store.createDevice('e2e-1');
    const d = device(dev.token);
    await d.app.start();
    const latest = await waitFor('telemetry', () => {
      const t = e2e.server.store.latestTelemetry(dev.id);
      return t.temperature && t.pressure ? t : undefined;
    });
    for (const key of ['temperature', 'humidity', 'pressure', 'batteryVoltage']) assert.ok(latest[key], `${key} reported`);
    assert.equal(typeof latest.temperature!.value, 'number');
    assert.ok(Math.abs((latest.temperature!.value as number) - 22) < 5, 'temperature near the simulated environment');
    assert.ok(Math.abs((latest.pressure!.value as number) - 1013.25) < 10, 'pressure in hPa');
    assert.ok(Math.abs(latest.temperature!.ts - Date.now()) < 5000, 'device timestamp kept');
    assert.equal(e2e.server.store.attributes(dev.id).client.current_fw_version, undefined, 'no firmware configured');
    assert.equal(e2e.server.store.attributes(dev.id).client.reportingInterval, 60);
  });

  it('applies a shared-attribute update pushed through Observe (reportingInterval)', async () => {
    const dev = e2e.server.store.createDevice('e2e-2');
    const d = device(dev.token);
    await d.app.start();
    assert.equal(d.app.intervalMs, 60000);
    const r = await admin(e2e.server, 'POST', `/api/devices/e2e-2/attributes/shared`, { reportingInterval: 5 });
    assert.equal(r.status, 200);
    await waitFor('interval change', () => d.app.intervalMs === 5000);
  });

  it('takes the shared attributes present at subscription as the first notification', async () => {
    const dev = e2e.server.store.createDevice('e2e-3');
    e2e.server.store.setSharedAttributes(dev.id, { reportingInterval: 30 });
    const d = device(dev.token);
    await d.app.start();
    await waitFor('snapshot applied', () => d.app.intervalMs === 30000);
  });

  it('answers a server-side RPC (getState, setInterval) round trip', async () => {
    const dev = e2e.server.store.createDevice('e2e-4');
    const d = device(dev.token);
    await d.app.start();
    const state = await admin(e2e.server, 'POST', `/api/devices/e2e-4/rpc`, { method: 'getState', params: {}, timeoutMs: 5000 });
    assert.equal(state.status, 200, JSON.stringify(state.json));
    assert.equal(state.json.response.reportingInterval, 60);
    assert.ok(state.json.response.reports >= 1);
    const set = await admin(e2e.server, 'POST', `/api/devices/e2e-4/rpc`, { method: 'setInterval', params: { interval: 15 }, timeoutMs: 5000 });
    assert.equal(set.status, 200);
    assert.deepEqual(set.json.response, { interval: 15 });
    assert.equal(d.app.intervalMs, 15000);
    await waitFor('client attribute', () => e2e.server.store.attributes(dev.id).client.reportingInterval === 15);
    const bad = await admin(e2e.server, 'POST', `/api/devices/e2e-4/rpc`, { method: 'reboot', params: {}, timeoutMs: 5000 });
    assert.match(String(bad.json.response.error), /unknown method reboot/);
  });

  it('stops on 4.01 with a clear error that does not contain the token, and sends nothing more', async () => {
    const token = 'not-a-real-token-123';
    const log = memoryLog();
    const d = device(token, { log });
    let requests = 0;
    e2e.server.events.on('request', () => requests++);
    await d.app.start();
    assert.ok(d.app.tb.stopped, 'stopped');
    assert.equal(d.app.tb.stopped!.code, 'unauthorized');
    assert.match(d.app.tb.stopped!.message, /4\.01 Unauthorized/);
    const seen = requests;
    await d.app.reportNow();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(requests, seen, 'no request after the 4.01');
    assert.equal(d.app.state.queued, 2, 'readings kept, not lost');
    assert.ok(log.lines.some((l) => /4\.01/.test(l)), 'reported in the log');
    assert.ok(!log.lines.some((l) => l.includes(token)), 'token never logged');
  });

  it('keeps readings while the server is down and delivers them with original timestamps after it restarts', async function () {
    this.timeout(20000);
    const dev = e2e.server.store.createDevice('e2e-5');
    const port = e2e.server.coapPort;
    const d = device(dev.token, { transmission: { ackTimeout: 200, ackRandomFactor: 1, maxRetransmit: 1 } });
    await d.app.start();
    await waitFor('first report', () => d.app.state.reports >= 1);
    await e2e.server.close();
    const offlineTs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      await d.app.reportNow();
      offlineTs.push(before);
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.equal(d.app.state.queued, 3, 'three readings queued while offline');
    await e2e.start({ coapPort: port });
    await d.app.flush();
    await waitFor('queue drained', () => d.app.state.queued === 0, 8000);
    const history = e2e.server.store.telemetry(dev.id, ['temperature']).temperature!;
    assert.ok(history.length >= 4, `history survived the restart and got the replay (${history.length})`);
    for (const ts of offlineTs) assert.ok(history.some((p) => Math.abs(p.ts - ts) < 1000), `reading from ${ts} delivered`);
  });
});
