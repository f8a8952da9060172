// The device's MQTT stack through a lossy TCP proxy (test/helpers/lossy-proxy.ts: seeded cuts at
// packet boundaries and inside packets, stalls; bounded) against the local endpoint:
// - QoS 1 telemetry in flight when a connection dies is sent again with DUP after the reconnect;
//   delivery is at least once on the wire (ThingsBoard ignores DUP), and every reading is stored
//   exactly once by (ts, key) because the endpoint, like ThingsBoard's ts_kv, keys points by it;
// - a firmware download over v2/fw completes through the cuts, and a stalled answer is undefined
//   after the request's timeout without breaking the next one.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import type { MqttThingsBoardOptions } from '../../src/thingsboard/mqtt-client';
import { ScaledClock } from '../../tools/sim/clock';
import { TcpStreamFactory } from '../../tools/sim/tcp';
import { cryptoRandom } from '../../tools/sim/random';
import type { TbServer } from '../../tools/tb-server/server';
import { LossyProxy } from '../helpers/lossy-proxy';
import { startMqttTb } from './helpers';
import { memoryLog } from '../helpers/wait';

for (const seed of [20261201, 7]) {
  describe(`MQTT through a lossy TCP proxy (seed ${seed})`, function () {
    this.timeout(60000);
    let tb: TbServer & { lines: string[]; port: number };
    let proxy: LossyProxy;
    let token: string;
    let deviceId: string;
    const clients: MqttThingsBoardClient[] = [];
    const make = (extra: Partial<MqttThingsBoardOptions> = {}) => {
      const c = new MqttThingsBoardClient({
        stream: new TcpStreamFactory(), host: '127.0.0.1', port: proxy.port, credentials: { kind: 'token', token }, clock: new ScaledClock(1),
        random: cryptoRandom, log: memoryLog(), responseTimeoutMs: 50000, reconnect: { initialMs: 20, maxMs: 200 }, ...extra,
      });
      clients.push(c);
      return c;
    };

    beforeEach(async () => {
      tb = await startMqttTb();
      const d = tb.store.createDevice('lossy');
      token = d.token;
      deviceId = d.id;
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await proxy.close();
      await tb.close();
    });

    it('QoS 1 telemetry: retransmitted with DUP after each cut; every reading stored once by (ts, key)', async () => {
      proxy = new LossyProxy({ targetPort: tb.port, seed, maxCuts: 10, cutWithin: 25, midPacket: 0.5, stallChance: 0.05, maxStallMs: 200 });
      await proxy.start();
      let delivered = 0;
      tb.service.events.on('telemetry', (e: { entries: { values: Record<string, unknown> }[] }) => (delivered += e.entries.filter((x) => 'seq' in x.values).length));
      const c = make();
      const N = 120;
      const base = 1_700_000_000_000;
      // eight in flight at a time, as the device's queue replays
      for (let i = 0; i < N; i += 8) {
        await Promise.all(Array.from({ length: Math.min(8, N - i) }, (_, k) => c.sendTelemetry({ ts: base + (i + k) * 1000, values: { seq: i + k } })));
      }
      const points = tb.store.telemetry(deviceId, ['seq']).seq!;
      assert.equal(points.length, N, 'one point per (ts, key)');
      assert.deepEqual(points.map((p) => p.ts).sort((a, b) => a - b), Array.from({ length: N }, (_, i) => base + i * 1000));
      for (const p of points) assert.equal(p.value, (p.ts - base) / 1000);
      assert.equal(proxy.stats.cuts, 10, 'every cut was used');
      assert.ok(proxy.stats.cutsMidPacket > 0, 'cuts inside packets too');
      assert.ok(proxy.stats.dupPublishes > 0, 'retransmissions carry DUP');
      // (a retransmission written into a connection that is being cut does not cross the proxy)
      assert.ok(proxy.stats.dupPublishes <= c.mqtt!.stats.retransmitted, 'DUP only on what the client resent');
      assert.ok(delivered >= N, `at least once: ${delivered} deliveries of ${N} readings`);
      console.log(`      seed ${seed}: ${proxy.stats.connections} connections, ${proxy.stats.cuts} cuts (${proxy.stats.cutsMidPacket} mid-packet), ${proxy.stats.stalls} stalls, ${proxy.stats.dupPublishes} DUP retransmissions, ${delivered} deliveries for ${N} readings`);
    });

    it('a firmware download over v2/fw completes through the cuts; a stalled answer is undefined after timeoutMs', async () => {
      proxy = new LossyProxy({ targetPort: tb.port, seed, maxCuts: 8, cutWithin: 12, midPacket: 0.6 });
      await proxy.start();
      const pkg = randomBytes(24 * 1024 + 77);
      tb.store.setOta(deviceId, { type: 'fw', title: 'app', version: '2.0.0', data: pkg.toString('base64'), checksumAlgorithm: 'SHA256', checksum: createHash('sha256').update(pkg).digest('hex') });
      const c = make();
      const parts: Buffer[] = [];
      let misses = 0;
      const count = Math.ceil(pkg.length / 1024);
      for (let i = 0, attempts = 0; i < count; attempts++) {
        assert.ok(attempts < 400, 'bounded');
        const b = await c.requestFirmwareChunk({ title: 'app', version: '2.0.0', chunk: i, size: 1024, timeoutMs: 700 });
        if (!b) {
          misses++;
          continue;
        }
        assert.equal(b.length, Math.min(1024, pkg.length - i * 1024), `chunk ${i}`);
        parts.push(Buffer.from(b));
        i++;
      }
      assert.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), createHash('sha256').update(pkg).digest('hex'));
      assert.equal(proxy.stats.cuts, 8);
      // a stalled path: no answer within the timeout is undefined, and the late answer is dropped
      proxy.lossy = false;
      proxy.holdDown();
      assert.equal(await c.requestFirmwareChunk({ title: 'app', version: '2.0.0', chunk: 0, size: 1024, timeoutMs: 300 }), undefined);
      proxy.release();
      const again = await c.requestFirmwareChunk({ title: 'app', version: '2.0.0', chunk: 1, size: 1024, timeoutMs: 3000 });
      assert.deepEqual(Buffer.from(again!), pkg.subarray(1024, 2048), 'the late chunk 0 is not taken for chunk 1');
      console.log(`      seed ${seed}: ${count} chunks, ${misses} requests without an answer, ${proxy.stats.connections} connections`);
    });
  });
}
