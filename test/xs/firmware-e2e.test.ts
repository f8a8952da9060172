/*
 * The e2e scenarios of test/e2e (Node engine, tools/sim) on the XS engine: the firmware itself
 * (manifest.json -> src/main.ts, every module compiled on its own, preloads, frozen built-ins,
 * creation.stack, the real xsmc DTLS binding over mbedTLS) runs in the XS host
 * (node_modules/.cache/xs-host/xshost) against the local endpoint (tools/tb-server) over real loopback UDP.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { admin, useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';
import { makeTestPki } from '../../tools/provision/certs';
import { useXsDevices } from './host-helpers';
import type { XsDevice } from './host-helpers';

/** Waits for a trace line; on failure the message carries the device's whole output. */
async function waitForLine(d: XsDevice, what: string, re: RegExp, timeoutMs = 15000): Promise<string> {
  try {
    return await waitFor(what, () => d.trace.find((l) => re.test(l)) ?? (d.live.code !== null ? 'exited' : undefined), timeoutMs).then((l) => {
      if (l === 'exited') throw new Error(`host exited before ${what}`);
      return l;
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- XS host output ---\n${d.output()}`);
  }
}

function assertNoAbort(d: XsDevice): void {
  assert.ok(!d.host.some((l) => /abort|unhandled/.test(l)), `no abort on the XS host:\n${d.output()}`);
}

describe('XS host: the firmware (src/main.ts) against the local endpoint', function () {
  this.timeout(40000);
  const e2e = useEndpoint();
  const xs = useXsDevices();

  it('reports telemetry that the server stores with the device timestamp', async () => {
    const dev = e2e.server.store.createDevice('xs-1');
    const d = xs.start({ port: e2e.server.coapPort, token: dev.token });
    const latest = await waitFor(
      'telemetry from XS',
      () => {
        const t = e2e.server.store.latestTelemetry(dev.id);
        return t.temperature && t.batteryVoltage ? t : undefined;
      },
      20000,
    ).catch((e: Error) => assert.fail(`${e.message}\n${d.output()}`));
    assert.equal(typeof latest.temperature!.value, 'number');
    assert.ok(Math.abs((latest.temperature!.value as number) - 22) < 10, 'temperature from the stand-in SHT3x');
    assert.ok(Math.abs(latest.temperature!.ts - Date.now()) < 10000, 'device timestamp (Date.now on XS)');
    assertNoAbort(d);
  });

  it('reports in Protobuf with payload=protobuf (the device profile of tools/proto/profiles/device) and answers RPC', async () => {
    const dev = e2e.server.store.createDevice('xs-pb');
    const dir = join(__dirname, '../../tools/proto/profiles/device');
    const schema = (f: string) => readFileSync(join(dir, f), 'utf8');
    const r = await admin(e2e.server, 'PUT', '/api/devices/xs-pb/payload', {
      transportPayloadType: 'PROTOBUF',
      telemetry: schema('telemetry.proto'),
      attributes: schema('attributes.proto'),
      rpcRequest: schema('rpc-request.proto'),
      rpcResponse: schema('rpc-response.proto'),
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const d = xs.start({ port: e2e.server.coapPort, token: dev.token, config: { payload: 'protobuf' } });
    await waitForLine(d, 'Protobuf at boot', /Protobuf \(profile device\)/);
    const latest = await waitFor('Protobuf telemetry from XS', () => {
      const t = e2e.server.store.latestTelemetry(dev.id);
      return t.temperature && t.batteryVoltage ? t : undefined;
    }, 20000).catch((e: Error) => assert.fail(`${e.message}\n${d.output()}`));
    assert.ok(Math.abs((latest.temperature!.value as number) - 22) < 10, `decoded by the server: ${JSON.stringify(latest)}`);
    await waitForLine(d, 'start (subscriptions registered)', /device started/);
    const state = await admin(e2e.server, 'POST', '/api/devices/xs-pb/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
    assert.equal(state.status, 200, `${JSON.stringify(state.json)}\n${d.output()}`);
    assertNoAbort(d);
  });

  it('applies a shared-attribute update pushed through Observe (reportingInterval)', async () => {
    const dev = e2e.server.store.createDevice('xs-2');
    const d = xs.start({ port: e2e.server.coapPort, token: dev.token });
    await waitForLine(d, 'start (subscriptions registered)', /device started/);
    const r = await admin(e2e.server, 'POST', '/api/devices/xs-2/attributes/shared', { reportingInterval: 5 });
    assert.equal(r.status, 200);
    await waitForLine(d, 'interval change on XS', /reporting interval now 5 s from shared attribute/);
    const state = await admin(e2e.server, 'POST', '/api/devices/xs-2/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
    assert.equal(state.status, 200, JSON.stringify(state.json));
    assert.equal(state.json.response.reportingInterval, 5);
    assertNoAbort(d);
  });

  it('answers a server-side RPC (getState, setInterval) round trip', async () => {
    const dev = e2e.server.store.createDevice('xs-3');
    const d = xs.start({ port: e2e.server.coapPort, token: dev.token });
    await waitForLine(d, 'start (subscriptions registered)', /device started/);
    const state = await admin(e2e.server, 'POST', '/api/devices/xs-3/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
    assert.equal(state.status, 200, `${JSON.stringify(state.json)}\n${d.output()}`);
    assert.equal(state.json.response.reportingInterval, 60);
    assert.ok(state.json.response.reports >= 1);
    const set = await admin(e2e.server, 'POST', '/api/devices/xs-3/rpc', { method: 'setInterval', params: { interval: 15 }, timeoutMs: 5000 });
    assert.equal(set.status, 200, `setInterval RPC: ${JSON.stringify(set.json)}\n${d.output()}`);
    assert.deepEqual(set.json.response, { interval: 15 });
    await waitFor('client attribute', () => e2e.server.store.attributes(dev.id).client.reportingInterval === 15);
    const bad = await admin(e2e.server, 'POST', '/api/devices/xs-3/rpc', { method: 'reboot', params: {}, timeoutMs: 5000 });
    assert.match(String(bad.json.response.error), /unknown method reboot/);
    assertNoAbort(d);
  });

  it('stops cleanly on 4.01 (wrong token): logged reason without the token, nothing more sent, no crash', async () => {
    const token = 'not-a-real-token-xs-123';
    let requests = 0;
    e2e.server.events.on('request', () => requests++);
    // reports every 2 s of device time at 10x for 20 s of device time, then the host ends by itself
    const d = xs.start({ port: e2e.server.coapPort, token, reportingInterval: 2, speed: 10, durationMs: 20000 });
    await waitForLine(d, 'the stop', /4\.01 Unauthorized/);
    const seen = requests;
    const r = await d.done;
    assert.equal(r.code, 0, `host ran to its end:\n${d.output()}`);
    assert.equal(requests, seen, 'no request after the 4.01');
    assert.ok(d.trace.some((l) => /\[error\].*4\.01 Unauthorized/.test(l)), 'reason logged as an error');
    assert.ok(!d.output().includes(token), 'token never printed');
    assertNoAbort(d);
  });
});

describe('XS host: the firmware over DTLS (xs_binding.c over dtls_core.c and mbedTLS)', function () {
  this.timeout(40000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));
  const xs = useXsDevices();
  let plaintext: Buffer[] = [];
  beforeEach(() => {
    plaintext = [];
    e2e.server.dtlsServer!.on('message', (buf: Buffer) => plaintext.push(buf));
  });

  it('one-way DTLS with a CA and host name: telemetry stored, RPC answered through the session', async () => {
    const dev = e2e.server.store.createDevice('xs-dtls-token');
    const d = xs.start({
      port: e2e.server.coapsPort!,
      token: dev.token,
      dtls: { ca: pki.path('ca.pem'), hostname: 'localhost' },
    });
    await waitFor('telemetry over DTLS', () => e2e.server.store.latestTelemetry(dev.id).temperature, 20000).catch((e: Error) =>
      assert.fail(`${e.message}\n${d.output()}`),
    );
    await waitForLine(d, 'start (subscriptions registered)', /device started/);
    assert.ok(plaintext.some((p) => p.includes(dev.token)), 'the server decrypted requests carrying the token');
    // downlink decrypted by the binding (read() gives Uint8Array) and decoded as CoAP by src/coap
    const state = await admin(e2e.server, 'POST', '/api/devices/xs-dtls-token/rpc', { method: 'getState', params: {}, timeoutMs: 5000 });
    assert.equal(state.status, 200, `${JSON.stringify(state.json)}\n${d.output()}`);
    assert.equal(state.json.response.reportingInterval, 60);
    assertNoAbort(d);
  });

  it('a restart resumes the DTLS session saved in flash (saveSession() bytes through the flash store)', async () => {
    const dev = e2e.server.store.createDevice('xs-dtls-resume');
    const options = { port: e2e.server.coapsPort!, token: dev.token, dtls: { ca: pki.path('ca.pem'), hostname: 'localhost' } };
    const first = xs.start(options);
    await waitForLine(first, 'first boot', /DTLS session established \(full handshake\)/);
    await waitForLine(first, 'first boot done', /device started/);
    first.stop();
    await first.done;
    // the same build and files directory: the flash image of the first boot
    const second = xs.start({ ...options, dir: first.dir });
    await waitForLine(second, 'second boot', /DTLS session established/);
    assert.ok(second.trace.some((l) => /DTLS session established \(resumed\)/.test(l)), `abbreviated handshake on the second boot:\n${second.output()}`);
    await waitForLine(second, 'second boot done', /device started/);
    assertNoAbort(first);
    assertNoAbort(second);
  });

  it('mutual X.509: no token, device found by its certificate', async () => {
    assert.equal((await admin(e2e.server, 'POST', '/api/devices', { name: 'xs-dtls-x509', certPem: pki.read('device.pem').toString() })).status, 201);
    const dev = e2e.server.store.findDevice('xs-dtls-x509')!;
    const d = xs.start({
      port: e2e.server.coapsPort!,
      dtls: { ca: pki.path('ca.pem'), hostname: 'localhost', cert: pki.path('device.pem'), key: pki.path('device.key') },
    });
    await waitFor('telemetry over mutual DTLS', () => e2e.server.store.latestTelemetry(dev.id).temperature, 20000).catch((e: Error) =>
      assert.fail(`${e.message}\n${d.output()}`),
    );
    assert.ok(plaintext.every((p) => !p.includes(dev.token)), 'no token sent');
    assertNoAbort(d);
  });

  it('fails closed on a host name mismatch: logged, nothing decrypted at the server, no crash', async () => {
    const dev = e2e.server.store.createDevice('xs-dtls-host');
    const d = xs.start({
      port: e2e.server.coapsPort!,
      token: dev.token,
      dtls: { ca: pki.path('ca.pem'), hostname: 'other.example' },
    });
    await waitForLine(d, 'the security stop', /DTLS_HOSTNAME_MISMATCH/);
    assert.equal(plaintext.length, 0);
    assertNoAbort(d);
  });
});
