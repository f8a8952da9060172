// The simulator's MQTT device (tools/sim/mqtt-device.ts: the firmware's DeviceApp with transport
// 'mqtt') against the local endpoint: reports, shared attribute reportingInterval, RPC, and a trace
// that never shows the token.
import { strict as assert } from 'node:assert';
import { createSimMqttDevice } from '../../tools/sim/mqtt-device';
import { ScaledClock } from '../../tools/sim/clock';
import type { TbServer } from '../../tools/tb-server/server';
import { startMqttTb } from './helpers';
import { memoryLog, waitFor } from '../helpers/wait';

describe('simulated device over MQTT', function () {
  let tb: TbServer & { lines: string[]; port: number };
  afterEach(async () => tb.close());

  it('reports, follows reportingInterval and answers getState / setInterval; the trace hides the token', async () => {
    tb = await startMqttTb();
    const dev = tb.store.createDevice('sim-mqtt');
    const lines: string[] = [];
    const clock = new ScaledClock(50);
    const sim = createSimMqttDevice({ host: '127.0.0.1', port: tb.port, credentials: { kind: 'token', token: dev.token }, reportingIntervalMs: 60000, clock, log: memoryLog(), trace: (l) => lines.push(l) });
    try {
      await sim.start();
      await waitFor('first report', () => tb.store.latestTelemetry(dev.id).temperature);
      tb.store.setSharedAttributes(dev.id, { reportingInterval: 5 });
      tb.service.sharedAttributesChanged(dev, { reportingInterval: 5 }, []);
      await waitFor('reports every 5 s of device time', () => sim.state.reports >= 4, 15000);
      const state = (await tb.service.sendRpc(dev, { method: 'getState' })).response as { reportingInterval: number; reports: number };
      assert.equal(state.reportingInterval, 5);
      assert.ok(state.reports >= 4);
      assert.equal(sim.app.intervalMs, 5000);
      const set = (await tb.service.sendRpc(dev, { method: 'setInterval', params: { interval: 30 } })).response;
      assert.deepEqual(set, { interval: 30 });
      await waitFor('reported back as a client attribute', () => tb.store.attributes(dev.id).client.reportingInterval === 30);
      assert.ok(lines.some((l) => l.startsWith('-> CONNECT') && l.includes('user=***')));
      assert.ok(lines.some((l) => l.startsWith('-> PUBLISH v1/devices/me/telemetry q1')), 'telemetry traced');
      assert.ok(!lines.join('\n').includes(dev.token));
    } finally {
      sim.stop();
    }
  });
});
