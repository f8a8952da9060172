// MQTTS: the endpoint's TLS listener (node:tls, client certificates mapped by SHA3-256 like
// ThingsBoard) with the guide's mosquitto_pub --cafile and a python3 paho one-way-SSL client, and the
// device's TLS stream (mbedTLS core in stream mode, hardware/dtls) under the MQTT client: one-way
// with the token, mutual X.509, session resumption, and fail-closed refusals before CONNECT.
import { strict as assert } from 'node:assert';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import { TlsStreamFactory } from '../../src/mqtt/tls-stream';
import type { TlsStreamFactoryOptions } from '../../src/mqtt/tls-stream';
import { TbError } from '../../src/thingsboard/errors';
import { loadDtlsEngine } from '../../hardware/dtls/index';
import { makeTestPki } from '../../tools/provision/certs';
import { certSha3FromPem } from '../../tools/tb-server/store';
import { ScaledClock } from '../../tools/sim/clock';
import { TcpStreamFactory } from '../../tools/sim/tcp';
import { cryptoRandom } from '../../tools/sim/random';
import type { TbServer } from '../../tools/tb-server/server';
import { run, startMqttTb } from './helpers';
import { memoryLog, waitFor } from '../helpers/wait';

describe('MQTTS (TLS 1.2): endpoint, guide clients and the device TLS stream', function () {
  const pki = makeTestPki();
  let tb: TbServer & { lines: string[]; port: number };
  let tlsPort: number;
  let token: string;
  let deviceId: string;
  let packetsIn: number;
  const clients: MqttThingsBoardClient[] = [];

  const start = async (cert = 'server.pem', key = 'server.key') => {
    tb = await startMqttTb({ port: 0, tls: { port: 0, cert: pki.read(cert), key: pki.read(key) } });
    tlsPort = tb.mqtt!.tlsPort!;
    const d = tb.store.createDevice('tls-dev');
    token = d.token;
    deviceId = d.id;
    packetsIn = 0;
    tb.mqtt!.events.on('packet', (p: { dir: string }) => void (p.dir === 'in' && packetsIn++));
  };
  beforeEach(async () => start());
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await tb.close();
  });

  const device = (engine: TlsStreamFactoryOptions['engine'], extra: { token?: string | null; host?: string } = {}) => {
    const clock = new ScaledClock(1);
    const tcp = new TcpStreamFactory();
    const log = memoryLog();
    const tls = new TlsStreamFactory(tcp, { clock, createEngine: loadDtlsEngine().create, engine, handshakeTimeoutMs: 10000 });
    const c = new MqttThingsBoardClient({
      stream: tls, host: extra.host ?? '127.0.0.1', port: tlsPort,
      credentials: extra.token === null ? { kind: 'x509' } : { kind: 'token', token: extra.token ?? token },
      clock, random: cryptoRandom, log, responseTimeoutMs: 10000, reconnect: { initialMs: 50, maxMs: 200 },
    });
    clients.push(c);
    return { c, tls, tcp, log };
  };

  it("the guide's mosquitto_pub --cafile ca.pem -p 8883 stores the value; a wrong CA is refused", async () => {
    const ok = await run('mosquitto_pub', ['-d', '-q', '1', '--cafile', pki.path('ca.pem'), '-h', 'localhost', '-p', String(tlsPort), '-t', 'v1/devices/me/telemetry', '-u', token, '-m', '{"temperature":25}']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(tb.store.latestTelemetry(deviceId).temperature?.value, 25);
    const bad = await run('mosquitto_pub', ['-q', '1', '--cafile', pki.path('rogue-ca.pem'), '-h', 'localhost', '-p', String(tlsPort), '-t', 'v1/devices/me/telemetry', '-u', token, '-m', '{"temperature":99}']);
    assert.notEqual(bad.code, 0);
    assert.equal(tb.store.latestTelemetry(deviceId).temperature?.value, 25);
  });

  it('mosquitto_pub with a client certificate (no user name) is mapped to the X.509 device by SHA3-256', async () => {
    tb.store.updateDevice(tb.store.findDevice(deviceId)!, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
    const r = await run('mosquitto_pub', ['-q', '1', '--cafile', pki.path('ca.pem'), '--cert', pki.path('device.pem'), '--key', pki.path('device.key'), '-h', 'localhost', '-p', String(tlsPort), '-t', 'v1/devices/me/telemetry', '-m', '{"x509":1}']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(tb.store.latestTelemetry(deviceId).x509?.value, 1);
    const rogue = await run('mosquitto_pub', ['-d', '-q', '1', '--cafile', pki.path('ca.pem'), '--cert', pki.path('rogue-device.pem'), '--key', pki.path('rogue-device.key'), '-h', 'localhost', '-p', String(tlsPort), '-t', 'v1/devices/me/telemetry', '-m', '{"x509":2}']);
    assert.notEqual(rogue.code, 0);
    assert.match(rogue.stdout + rogue.stderr, /CONNACK \(5\)|not authori[sz]ed/i);
  });

  it('a python3 paho one-way-SSL client (tls_set with the CA) stores telemetry', async () => {
    const script = `
import sys, paho.mqtt.client as mqtt
port, token, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
except AttributeError:
    c = mqtt.Client()
c.tls_set(ca_certs=ca)
c.username_pw_set(token)
c.connect("localhost", port, 60)
c.loop_start()
info = c.publish("v1/devices/me/telemetry", '{"paho_tls":7}', qos=1)
info.wait_for_publish(10)
print("PUBLISHED", info.is_published())
c.disconnect(); c.loop_stop()
`;
    const r = await run('/usr/bin/python3', ['-c', script, String(tlsPort), token, pki.path('ca.pem')], 30000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /PUBLISHED True/);
    assert.equal(tb.store.latestTelemetry(deviceId).paho_tls?.value, 7);
  });

  it('device over TLS (one-way, token): telemetry, server RPC, and session resumption on reconnect', async () => {
    const { c, tls } = device({ ca: pki.read('ca.pem'), hostname: 'localhost' });
    await c.sendTelemetry({ tls: 1 });
    assert.equal(tb.store.latestTelemetry(deviceId).tls?.value, 1);
    assert.equal(tls.last!.resumed, false);
    assert.ok(tls.session && tls.session.length > 0, 'a session to keep');
    const sub = c.subscribeRpc(() => ({ ok: true }));
    await sub.registered;
    assert.deepEqual((await tb.service.sendRpc(tb.store.findDevice(deviceId)!, { method: 'ping' })).response, { ok: true });
    const first = tls.last!;
    tb.mqtt!.sessionFor(deviceId)!.close('test: drop');
    await waitFor('reconnected', () => tls.last !== first && tls.last!.connected && tb.mqtt!.sessionFor(deviceId)?.subs.size);
    assert.equal(tls.last!.resumed, true, 'abbreviated handshake with the saved session');
    await c.sendTelemetry({ tls: 2 });
    assert.equal(tb.store.latestTelemetry(deviceId).tls?.value, 2);
  });

  it('device over mutual TLS (EC key, no token) is mapped to its X.509 device', async () => {
    tb.store.updateDevice(tb.store.findDevice(deviceId)!, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
    const { c } = device({ ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') }, { token: null });
    await c.sendTelemetry({ mutual: 1 });
    assert.equal(tb.store.latestTelemetry(deviceId).mutual?.value, 1);
  });

  const refusals: [string, () => Promise<void> | void, TlsStreamFactoryOptions['engine'], RegExp][] = [
    ['unknown CA', () => undefined, { ca: pki.read('rogue-ca.pem'), hostname: 'localhost' }, /DTLS_UNKNOWN_CA/],
    ['wrong host name', () => undefined, { ca: pki.read('ca.pem'), hostname: 'other.example' }, /DTLS_HOSTNAME_MISMATCH/],
    ['expired server certificate', async () => { await tb.close(); await start('server-expired.pem', 'server-expired.key'); }, { ca: pki.read('ca.pem'), hostname: 'localhost' }, /DTLS_CERT_EXPIRED/],
  ];
  for (const [name, prepare, engine, code] of refusals) {
    it(`${name}: refused before CONNECT is sent (no token leaves the device), and the client stops`, async () => {
      await prepare();
      const { c, tcp, log } = device(engine);
      await assert.rejects(c.sendTelemetry({ leaked: 1 }), (e: unknown) => e instanceof TbError && (e.code === 'security' || e.code === 'stopped'));
      assert.equal(c.stopped?.code, 'security');
      assert.match(c.stopped!.message, code);
      assert.equal(packetsIn, 0, 'the server received no MQTT packet');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(tcp.stats.connects, 1, 'no reconnect after a certificate failure');
      assert.ok(!log.lines.join('\n').includes(token));
    });
  }

  it('a TLS client without a CA is a configuration error (there is no "accept any certificate" mode)', async () => {
    const { c } = device({ hostname: 'localhost' });
    await assert.rejects(c.sendTelemetry({ x: 1 }));
    assert.equal(c.stopped?.code, 'security');
    assert.match(c.stopped!.message, /DTLS_CONFIG/);
    assert.equal(packetsIn, 0);
  });
});
