/*
 * End to end over MQTT and MQTTS: the unchanged firmware app (src/device DeviceApp, transport
 * 'mqtt') over real TCP on loopback (and TLS on the mbedTLS core for mqtts) against the local
 * endpoint's MQTT listener (mqtt-packet, not src/mqtt): telemetry, shared attributes, RPC, a bad
 * token, the offline queue replayed after the endpoint comes back, provisioning, and the TLS
 * session kept in flash.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceEvent } from '../../src/device/app';
import { openDeviceStorage } from '../../src/storage/index';
import { makeTestPki } from '../../tools/provision/certs';
import { ScaledClock } from '../../tools/sim/clock';
import { createSimDevice } from '../../tools/sim/device';
import type { SimDevice, SimDeviceOptions } from '../../tools/sim/device';
import { MemFlash } from '../../tools/sim/flash';
import { startTbServer } from '../../tools/tb-server/server';
import type { TbServer } from '../../tools/tb-server/server';
import { certSha3FromPem } from '../../tools/tb-server/store';
import { admin } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

const pki = makeTestPki();

for (const secure of [false, true]) {
  const scheme = secure ? 'mqtts' : 'mqtt';
  describe(`e2e over ${scheme}: DeviceApp <-> local endpoint`, function () {
    this.timeout(30000);
    let server: TbServer;
    let dir: string;
    let devices: SimDevice[] = [];
    let ports: { port: number; tlsPort?: number };

    const start = async (fixed?: { port: number; tlsPort?: number }) => {
      server = await startTbServer({
        coapPort: 0,
        httpPort: 0,
        dataDir: dir,
        log: () => undefined,
        mqtt: { port: fixed?.port ?? 0, ...(secure ? { tls: { port: fixed?.tlsPort ?? 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } : {}) },
      });
      ports = { port: server.mqtt!.port!, ...(secure ? { tlsPort: server.mqtt!.tlsPort! } : {}) };
      return server;
    };

    const device = (options: Partial<SimDeviceOptions> & Pick<SimDeviceOptions, 'credentials'>): SimDevice => {
      const d = createSimDevice({
        transport: 'mqtt',
        server: { host: secure ? 'localhost' : '127.0.0.1', port: secure ? ports.tlsPort! : ports.port },
        ...(secure ? { tls: { ca: pki.read('ca.pem'), hostname: 'localhost' } } : {}),
        reportingIntervalMs: 60000,
        clock: new ScaledClock(1),
        log: memoryLog(),
        mqtt: { responseTimeoutMs: 8000, reconnect: { initialMs: 50, maxMs: 400 } },
        ...options,
      });
      devices.push(d);
      return d;
    };

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tb-mqtt-e2e-'));
      await start();
    });
    afterEach(async () => {
      for (const d of devices) d.app.stop();
      devices = [];
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('reports telemetry with the device timestamp, and its client attributes', async () => {
      const dev = server.store.createDevice('m-1');
      const d = device({ credentials: { kind: 'token', token: dev.token }, firmware: { title: 'fw', version: '1.2.0' } });
      await d.app.start();
      const latest = await waitFor('telemetry', () => {
        const t = server.store.latestTelemetry(dev.id);
        return t.temperature && t.pressure ? t : undefined;
      });
      for (const key of ['temperature', 'humidity', 'pressure', 'batteryVoltage']) assert.ok(latest[key], `${key} reported`);
      assert.ok(Math.abs(latest.temperature!.ts - Date.now()) < 5000, 'device timestamp kept');
      assert.deepEqual(server.store.attributes(dev.id).client, { reportingInterval: 60, current_fw_title: 'fw', current_fw_version: '1.2.0' });
      assert.equal(d.app.state.reports, 1);
      assert.equal(d.app.state.queued, 0);
      assert.equal(d.udp.stats.datagramsSent, 0, 'nothing over UDP');
      assert.ok(d.tcp.stats.bytesSent > 0, 'over TCP');
      if (secure) assert.equal(d.app.link.tls!.last!.connected, true);
      else assert.equal(d.app.link.tls, undefined);
      assert.equal(d.app.link.coap, undefined, 'no CoAP client');
      assert.equal(d.app.link.scheme, secure ? 'mqtts' : 'mqtt');
    });

    it('takes reportingInterval from the shared attributes present at start, then from each update', async () => {
      const dev = server.store.createDevice('m-2');
      server.store.setSharedAttributes(dev.id, { reportingInterval: 30 });
      const d = device({ credentials: { kind: 'token', token: dev.token } });
      await d.app.start();
      await waitFor('snapshot applied', () => d.app.intervalMs === 30000);
      const r = await admin(server, 'POST', '/api/devices/m-2/attributes/shared', { reportingInterval: 5 });
      assert.equal(r.status, 200);
      await waitFor('update applied', () => d.app.intervalMs === 5000);
      assert.equal(d.app.intervalSource, 'server');
    });

    it('answers server RPC (getState, setInterval, an unknown method)', async () => {
      const dev = server.store.createDevice('m-3');
      const d = device({ credentials: { kind: 'token', token: dev.token } });
      await d.app.start();
      const state = await admin(server, 'POST', '/api/devices/m-3/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
      assert.equal(state.status, 200, JSON.stringify(state.json));
      assert.equal(state.json.response.reportingInterval, 60);
      assert.ok(state.json.response.reports >= 1);
      const set = await admin(server, 'POST', '/api/devices/m-3/rpc', { method: 'setInterval', params: { interval: 15 }, timeoutMs: 5000 });
      assert.deepEqual(set.json.response, { interval: 15 });
      assert.equal(d.app.intervalMs, 15000);
      await waitFor('client attribute reported back', () => server.store.attributes(dev.id).client.reportingInterval === 15);
      const bad = await admin(server, 'POST', '/api/devices/m-3/rpc', { method: 'reboot', params: {}, timeoutMs: 5000 });
      assert.match(String(bad.json.response.error), /unknown method reboot/);
    });

    it('a bad token stops the device cleanly: CONNACK 5, one connection, readings kept, token never logged', async () => {
      const token = 'not-a-real-token-123';
      const log = memoryLog();
      const d = device({ credentials: { kind: 'token', token }, log });
      const events: DeviceEvent[] = [];
      d.app.onEvent = (e) => events.push(e);
      await d.app.start();
      assert.equal(d.app.tb.stopped?.code, 'unauthorized');
      assert.match(d.app.tb.stopped!.message, /CONNACK 5/);
      assert.ok(events.some((e) => e.type === 'stopped' && /CONNACK 5/.test(e.reason)), 'stopped event');
      await d.app.reportNow();
      await new Promise((r) => setTimeout(r, 300)); // several reconnect back-off periods
      assert.equal(d.tcp.stats.connects, 1, 'no reconnect after CONNACK 5');
      assert.equal(d.app.state.queued, 2, 'readings kept, not lost');
      assert.ok(log.lines.some((l) => /CONNACK 5/.test(l)), 'reported in the log');
      assert.ok(!log.lines.some((l) => l.includes(token)), 'token never logged');
    });

    it('keeps readings while the endpoint is down and replays them with their timestamps when it is back', async () => {
      const dev = server.store.createDevice('m-5');
      const d = device({ credentials: { kind: 'token', token: dev.token } });
      await d.app.start();
      await waitFor('first report', () => d.app.state.reports >= 1);
      const fixed = ports;
      await server.close();
      await waitFor('connection loss seen', () => d.app.tb.retryAfter > 0);
      const offlineTs: number[] = [];
      for (let i = 0; i < 3; i++) {
        offlineTs.push(Date.now());
        await d.app.reportNow();
        await new Promise((r) => setTimeout(r, 30));
      }
      assert.equal(d.app.state.queued, 3, 'three readings queued while offline');
      await start(fixed);
      // The next reading's flush would send them; flush now (again while reconnecting).
      await waitFor('queue drained', () => {
        void d.app.flush();
        return d.app.state.queued === 0;
      }, 15000);
      const history = server.store.telemetry(dev.id, ['temperature']).temperature!;
      assert.ok(history.length >= 4, `history survived the restart and got the replay (${history.length})`);
      for (const ts of offlineTs) assert.ok(history.some((p) => Math.abs(p.ts - ts) < 1000), `reading from ${ts} delivered`);
      // Subscriptions came back with the connection: a shared attribute still reaches the app.
      const r = await admin(server, 'POST', '/api/devices/m-5/attributes/shared', { reportingInterval: 7 });
      assert.equal(r.status, 200);
      await waitFor('update after the restart', () => d.app.intervalMs === 7000);
    });

    it('provisions over its own connection (user name "provision"), then reports under the new device', async () => {
      server.store.addProfile({ key: 'pk-1', secret: 'ps-1', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
      const flash = new MemFlash(20 * 4096, 4096);
      openDeviceStorage(flash).credentials.save({ server: 'coap://127.0.0.1:5683', provisionKey: 'pk-1', provisionSecret: 'ps-1' });
      const log = memoryLog();
      const d = device({ credentials: { kind: 'token', token: '' }, flash, deviceName: 'm-prov', log });
      await d.app.start();
      const dev = await waitFor('device created by provisioning', () => server.store.findDevice('m-prov'));
      await waitFor('telemetry under the provisioned device', () => server.store.latestTelemetry(dev.id).temperature);
      const stored = openDeviceStorage(flash).credentials.load();
      assert.equal(stored.token, dev.token);
      assert.equal(stored.provisionState, 'done');
      assert.ok(!log.lines.join('\n').includes(dev.token), 'token not logged');
    });

    if (secure) {
      it('keeps the TLS session in flash (or passed as tls.session): the next boot resumes it (abbreviated handshake), X.509 too', async () => {
        for (const x509 of [false, true]) {
          const dev = server.store.createDevice(x509 ? 'm-x509' : 'm-tok');
          if (x509) server.store.updateDevice(dev, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
          const flash = new MemFlash(20 * 4096, 4096);
          const tls = { ca: pki.read('ca.pem'), hostname: 'localhost', ...(x509 ? { cert: pki.read('device.pem'), key: pki.read('device.key') } : {}) };
          const credentials = x509 ? ({ kind: 'x509' } as const) : ({ kind: 'token', token: dev.token } as const);
          const first = device({ credentials, tls, flash });
          await first.app.start();
          await waitFor('first report', () => first.app.state.reports >= 1);
          assert.equal(first.app.link.tls!.last!.resumed, false);
          assert.ok(first.app.securitySession(), 'session available for sleep');
          first.app.stop();
          const second = device({ credentials, tls, flash });
          await second.app.start();
          await waitFor('second report', () => second.app.state.reports >= 1);
          assert.equal(second.app.link.tls!.last!.resumed, true, 'resumed from the session in flash');
          assert.equal(second.app.tb.stopped, undefined);
          assert.equal(server.store.telemetry(dev.id, ['temperature']).temperature!.length, 2);
          // Kept in RAM across sleep instead (tls.session, as dtls.session for coaps): resumed too.
          const session = second.app.securitySession();
          assert.ok(session);
          second.app.stop();
          const third = device({ credentials, tls: { ...tls, session } });
          await third.app.start();
          await waitFor('third report', () => third.app.state.reports >= 1);
          assert.equal(third.app.link.tls!.last!.resumed, true, 'resumed from tls.session');
        }
      });

      it('fails closed on an unknown CA: stopped with the TLS code, no MQTT packet reaches the endpoint', async () => {
        const dev = server.store.createDevice('m-ca');
        let packetsIn = 0;
        server.mqtt!.events.on('packet', (p: { dir: string }) => void (p.dir === 'in' && packetsIn++));
        const d = device({ credentials: { kind: 'token', token: dev.token }, tls: { ca: pki.read('rogue-ca.pem'), hostname: 'localhost' } });
        const events: DeviceEvent[] = [];
        d.app.onEvent = (e) => events.push(e);
        await d.app.start();
        assert.equal(d.app.tb.stopped?.code, 'security');
        assert.match(d.app.tb.stopped!.message, /DTLS_UNKNOWN_CA/);
        assert.ok(events.some((e) => e.type === 'stopped'), 'stopped event');
        assert.equal(packetsIn, 0, 'no CONNECT (token) sent to an unverified server');
        assert.equal(d.app.state.queued, 1);
      });
    }
  });
}
