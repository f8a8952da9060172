/*
 * The firmware itself (manifest.json -> src/main.ts) on the XS host over MQTT and MQTTS: the
 * server URL's scheme picks the transport, src/platform/moddable/tcp.ts runs over the host's
 * embedded:io/socket/tcp (real TCP on loopback), and MQTTS runs the xsmc binding's TLS stream mode
 * (hardware/dtls/xs_binding.c, transport 'stream') against the endpoint's MQTT listener.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTbServer } from '../../tools/tb-server/server';
import type { TbServer } from '../../tools/tb-server/server';
import { makeTestPki } from '../../tools/provision/certs';
import { admin } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';
import { useXsDevices } from './host-helpers';
import type { XsDevice } from './host-helpers';

const pki = makeTestPki();

async function waitForLine(d: XsDevice, what: string, re: RegExp, timeoutMs = 15000): Promise<string> {
  try {
    const l = await waitFor(what, () => d.trace.find((x) => re.test(x)) ?? (d.live.code !== null ? 'exited' : undefined), timeoutMs);
    if (l === 'exited') throw new Error(`host exited before ${what}`);
    return l;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- XS host output ---\n${d.output()}`);
  }
}

function assertNoAbort(d: XsDevice): void {
  assert.ok(!d.host.some((l) => /abort|unhandled/.test(l)), `no abort on the XS host:\n${d.output()}`);
}

for (const secure of [false, true]) {
  describe(`XS host: the firmware over ${secure ? 'mqtts' : 'mqtt'} against the local endpoint`, function () {
    this.timeout(60000);
    const xs = useXsDevices();
    let server: TbServer;
    let dir: string;
    let packetsIn = 0;
    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'xs-mqtt-'));
      server = await startTbServer({
        coapPort: 0, httpPort: 0, dataDir: dir, log: () => undefined,
        mqtt: { port: 0, ...(secure ? { tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } : {}) },
      });
      packetsIn = 0;
      server.mqtt!.events.on('packet', (p: { dir: string }) => void (p.dir === 'in' && packetsIn++));
    });
    afterEach(async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const start = (token: string, extra: { ca?: string; config?: Record<string, unknown> } = {}) =>
      xs.start({
        scheme: 'mqtt',
        port: secure ? server.mqtt!.tlsPort! : server.mqtt!.port!,
        token,
        ...(secure ? { dtls: { ca: pki.path(extra.ca ?? 'ca.pem'), hostname: 'localhost' } } : {}),
        ...(extra.config ? { config: extra.config } : {}),
      });

    it('reports in Protobuf (payload=protobuf) and answers RPC, the attribute request in ThingsBoard\'s fixed message', async () => {
      const dev = server.store.createDevice('xs-mpb');
      const dir = join(__dirname, '../../tools/proto/profiles/device');
      const schema = (f: string) => readFileSync(join(dir, f), 'utf8');
      const r = await admin(server, 'PUT', '/api/devices/xs-mpb/payload', {
        transportPayloadType: 'PROTOBUF',
        telemetry: schema('telemetry.proto'),
        attributes: schema('attributes.proto'),
        rpcRequest: schema('rpc-request.proto'),
        rpcResponse: schema('rpc-response.proto'),
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const d = start(dev.token, { config: { payload: 'protobuf' } });
      await waitForLine(d, 'Protobuf at boot', /Protobuf \(profile device\)/);
      await waitForLine(d, 'start', /device started/);
      const latest = await waitFor('Protobuf telemetry from XS over MQTT', () => {
        const t = server.store.latestTelemetry(dev.id);
        return t.temperature && t.batteryVoltage ? t : undefined;
      }, 20000).catch((e: Error) => assert.fail(`${e.message}\n${d.output()}`));
      assert.ok(Math.abs((latest.temperature!.value as number) - 22) < 10, JSON.stringify(latest));
      const state = await admin(server, 'POST', '/api/devices/xs-mpb/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
      assert.equal(state.status, 200, `${JSON.stringify(state.json)}\n${d.output()}`);
      assertNoAbort(d);
    });

    it('reports telemetry, takes reportingInterval from a shared attribute and answers RPC', async () => {
      const dev = server.store.createDevice('xs-m1');
      const d = start(dev.token);
      await waitForLine(d, 'transport chosen by the URL', new RegExp(`ThingsBoard ${secure ? 'mqtts' : 'mqtt'}://127\\.0\\.0\\.1:`));
      if (secure) await waitForLine(d, 'TLS handshake on XS', /TLS session established \(full handshake\)/);
      await waitForLine(d, 'start', /device started/);
      const latest = await waitFor('telemetry from XS over MQTT', () => {
        const t = server.store.latestTelemetry(dev.id);
        return t.temperature && t.batteryVoltage ? t : undefined;
      }, 20000).catch((e: Error) => assert.fail(`${e.message}\n${d.output()}`));
      assert.ok(Math.abs(latest.temperature!.ts - Date.now()) < 10000, 'device timestamp');
      assert.equal(server.store.attributes(dev.id).client.current_fw_title, 'tb-coap-firmware');
      const r = await admin(server, 'POST', '/api/devices/xs-m1/attributes/shared', { reportingInterval: 5 });
      assert.equal(r.status, 200);
      await waitForLine(d, 'interval change on XS', /reporting interval now 5 s from shared attribute/);
      const state = await admin(server, 'POST', '/api/devices/xs-m1/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
      assert.equal(state.status, 200, `${JSON.stringify(state.json)}\n${d.output()}`);
      assert.equal(state.json.response.reportingInterval, 5);
      const set = await admin(server, 'POST', '/api/devices/xs-m1/rpc', { method: 'setInterval', params: { interval: 15 }, timeoutMs: 5000 });
      assert.deepEqual(set.json.response, { interval: 15 }, d.output());
      await waitFor('client attribute', () => server.store.attributes(dev.id).client.reportingInterval === 15);
      assert.ok(!d.output().includes(dev.token), 'token never printed');
      assertNoAbort(d);
    });

    it('takes an RPC of 3 KB (over mqtts: one TLS record larger than the 2 KB the core takes per feed)', async () => {
      const dev = server.store.createDevice('xs-big');
      const d = start(dev.token);
      await waitForLine(d, 'start', /device started/);
      const big = 'x'.repeat(3000);
      const r = await admin(server, 'POST', '/api/devices/xs-big/rpc', { method: 'getState', params: { pad: big }, timeoutMs: 5000 });
      assert.equal(r.status, 200, `${JSON.stringify(r.json)}\n${d.output()}`);
      assert.equal(r.json.response.reportingInterval, 60);
      assert.equal(r.json.response.stopped, null);
      assertNoAbort(d);
    });

    it('a wrong token stops on CONNACK 5 with the reason logged, no abort', async () => {
      const token = 'xs-wrong-token-42';
      const d = start(token);
      await waitForLine(d, 'CONNACK 5 logged', /CONNACK 5/);
      await waitForLine(d, 'not sending', /device started but not sending/);
      assert.ok(!d.output().includes(token), 'token never printed');
      assertNoAbort(d);
    });

    if (!secure) {
      it('config errors stop the boot before anything is sent: a tls block with mqtt://, tls and dtls together', async () => {
        const a = xs.start({ scheme: 'mqtt', port: server.mqtt!.port!, token: 't', config: { tls: { ca: 'ca.pem' } } });
        await waitForLine(a, 'config error', /config: tls is configured but server is mqtt:\/\/: use mqtts:\/\/ \(port 8883\)/);
        const b = xs.start({ scheme: 'mqtt', port: server.mqtt!.port!, token: 't', config: { tls: { ca: 'ca.pem' }, dtls: { ca: 'ca.pem' } } });
        await waitForLine(b, 'config error', /config: set tls or dtls/);
        assert.equal(packetsIn, 0, 'nothing sent');
      });
    }

    if (secure) {
      it('an unknown CA fails closed: no MQTT packet reaches the endpoint', async () => {
        const dev = server.store.createDevice('xs-m3');
        const d = start(dev.token, { ca: 'rogue-ca.pem' });
        await waitForLine(d, 'refused', /DTLS_UNKNOWN_CA/);
        assert.equal(packetsIn, 0, 'no CONNECT sent');
        assertNoAbort(d);
      });
    }
  });
}
