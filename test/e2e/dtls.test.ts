/*
 * CoAP over DTLS 1.2 end to end, over real loopback UDP: the firmware app (src/device over
 * src/dtls over the mbedTLS addon) and the ThingsBoard guide's coap-client-openssl against the
 * local endpoint's CoAPs listener (tools/tb-server over hardware/dtls DtlsServer).
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { SimDevice, SimDeviceOptions } from '../../tools/sim/device';
import { makeTestPki } from '../../tools/provision/certs';
import { admin, useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

const COAP_CLIENT = '/usr/bin/coap-client-openssl';

function run(cmd: string, args: string[], timeoutMs = 15000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('e2e: CoAP over DTLS (coaps://) against the local endpoint', function () {
  this.timeout(30000);
  const pki = makeTestPki();
  const serverDtls = () => ({ port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') });
  const e2e = useEndpoint(() => ({ dtls: serverDtls() }));
  let plaintext: Buffer[] = [];

  beforeEach(() => {
    plaintext = [];
    e2e.server.dtlsServer!.on('message', (buf: Buffer) => plaintext.push(buf));
  });

  /** A device over DTLS whose datagrams on the wire are kept in `wire`. */
  function device(extra: Partial<SimDeviceOptions> & Pick<SimDeviceOptions, 'credentials' | 'dtls'>): SimDevice & { wire: Buffer[] } {
    const d = e2e.device(extra);
    const wire: Buffer[] = [];
    d.udp.tap = (_dir, data) => wire.push(Buffer.from(data));
    return Object.assign(d, { wire });
  }

  it('one-way DTLS with the access token: telemetry stored, token never on the wire in clear', async () => {
    const dev = e2e.server.store.createDevice('dtls-token');
    const d = device({
      credentials: { kind: 'token', token: dev.token },
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' },
    });
    await d.app.start();
    await waitFor('telemetry', () => e2e.server.store.latestTelemetry(dev.id).temperature);
    assert.equal(d.app.dtls!.state, 'connected');
    const all = Buffer.concat(d.wire);
    assert.equal(all.indexOf(dev.token), -1, 'token not in any datagram');
    assert.ok(plaintext.some((p) => p.includes(dev.token)), 'the server decrypted requests carrying the token');
  });

  it('mutual X.509: no token in the URL, device found by its certificate', async () => {
    assert.equal((await admin(e2e.server, 'POST', '/api/devices', { name: 'dtls-x509', certPem: pki.read('device.pem').toString() })).status, 201);
    const dev = e2e.server.store.findDevice('dtls-x509')!;
    const d = device({
      credentials: { kind: 'x509' },
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') },
    });
    await d.app.start();
    await waitFor('telemetry', () => e2e.server.store.latestTelemetry(dev.id).temperature);
    assert.ok(plaintext.length > 0);
    assert.ok(plaintext.every((p) => !p.includes(dev.token)), 'no token sent');
    assert.ok(plaintext.some((p) => p.includes('telemetry')));
  });

  it('an unregistered client certificate completes the handshake and then gets 4.01: the device stops', async () => {
    const d = device({
      credentials: { kind: 'x509' },
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device-rsa.pem'), key: pki.read('device-rsa.key') },
    });
    await d.app.start();
    assert.equal(d.app.dtls!.state, 'connected');
    assert.equal(d.app.tb.stopped?.code, 'unauthorized');
  });

  it('fails closed on an unknown CA: clear error, no token and no data reach the server', async () => {
    const dev = e2e.server.store.createDevice('dtls-rogue');
    const log = memoryLog();
    const d = device({
      credentials: { kind: 'token', token: dev.token },
      dtls: { ca: pki.read('rogue-ca.pem'), hostname: 'localhost' },
      log,
    });
    await d.app.start();
    assert.equal(d.app.tb.stopped?.code, 'security');
    assert.match(d.app.tb.stopped!.message, /DTLS_UNKNOWN_CA: unknown CA/);
    assert.equal(plaintext.length, 0, 'no application data decrypted at the server');
    assert.deepEqual(e2e.server.store.latestTelemetry(dev.id), {});
    assert.ok(log.lines.some((l) => /unknown CA/.test(l)));
    assert.ok(!log.lines.some((l) => l.includes(dev.token)), 'token never logged');
    assert.equal(d.app.state.queued, 1, 'reading kept, not sent');
  });

  it('fails closed on a hostname mismatch', async () => {
    const dev = e2e.server.store.createDevice('dtls-host');
    const d = device({
      credentials: { kind: 'token', token: dev.token },
      dtls: { ca: pki.read('ca.pem'), hostname: 'other.example' },
    });
    await d.app.start();
    assert.equal(d.app.tb.stopped?.code, 'security');
    assert.match(d.app.tb.stopped!.message, /DTLS_HOSTNAME_MISMATCH/);
    assert.equal(plaintext.length, 0);
  });

  it('resumes the DTLS session after a simulated sleep with fewer bytes than a full handshake', async () => {
    const dev = e2e.server.store.createDevice('dtls-sleep');
    const dtls = { ca: pki.read('ca.pem'), hostname: 'localhost' };
    const first = device({ credentials: { kind: 'token', token: dev.token }, dtls });
    await first.app.start();
    await waitFor('first report', () => first.app.state.reports >= 1);
    const session = first.app.securitySession();
    assert.ok(session && session.length > 0, 'session saved');
    const fullBytes = first.wire.reduce((n, b) => n + b.length, 0);
    first.app.stop();
    // Wake-up: a new socket (new source port), a new app, the saved session.
    const second = device({ credentials: { kind: 'token', token: dev.token }, dtls: { ...dtls, session } });
    await second.app.start();
    await waitFor('second report', () => second.app.state.reports >= 1);
    assert.equal(second.app.dtls!.resumed, true, 'abbreviated handshake');
    const resumedBytes = second.wire.reduce((n, b) => n + b.length, 0);
    assert.ok(resumedBytes < fullBytes, `resumed ${resumedBytes} B < full ${fullBytes} B`);
  });

  describe('X.509 devices after sleep (ThingsBoard maps certificates by address at full handshakes)', () => {
    async function registerDevice(name: string): Promise<string> {
      assert.equal((await admin(e2e.server, 'POST', '/api/devices', { name, certPem: pki.read('device.pem').toString() })).status, 201);
      return e2e.server.store.findDevice(name)!.id;
    }
    const x509 = () => ({ ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') });

    async function sleepCycle(): Promise<Uint8Array> {
      const first = device({ credentials: { kind: 'x509' }, dtls: x509() });
      await first.app.start();
      await waitFor('first report', () => first.app.state.reports >= 1);
      const session = first.app.securitySession()!;
      first.app.stop();
      return session;
    }

    it('by default does a full handshake after sleep, even with a saved session', async () => {
      const id = await registerDevice('x509-sleep');
      const session = await sleepCycle();
      const second = device({ credentials: { kind: 'x509' }, dtls: { ...x509(), session } });
      await second.app.start();
      await waitFor('second report', () => second.app.state.reports >= 1);
      assert.equal(second.app.dtls!.resumed, false);
      assert.equal(second.app.tb.stopped, undefined);
      assert.equal((e2e.server.store.telemetry(id, ['temperature']).temperature ?? []).length, 2);
    });

    it('with resumeX509, the resumed session from a new address gets 4.01; one full handshake recovers', async () => {
      const id = await registerDevice('x509-resume');
      const session = await sleepCycle();
      const log = memoryLog();
      const second = device({ credentials: { kind: 'x509' }, dtls: { ...x509(), session, resumeX509: true }, log });
      await second.app.start();
      await waitFor('second report', () => second.app.state.reports >= 1);
      assert.ok(log.lines.some((l) => /4\.01 on a resumed X\.509 session/.test(l)), log.lines.join('\n'));
      assert.equal(second.app.dtls!.handshakes, 2, 'resumed, then one full handshake');
      assert.equal(second.app.dtls!.resumed, false);
      assert.equal(second.app.tb.stopped, undefined);
      assert.equal((e2e.server.store.telemetry(id, ['temperature']).temperature ?? []).length, 2);
      await waitFor('client attributes after recovery', () => e2e.server.store.attributes(id).client.reportingInterval === 60);
    });
  });

  it('recovers from a server restart mid-session: new handshake, queued reading delivered, Observe re-registered', async () => {
    const dev = e2e.server.store.createDevice('dtls-restart');
    const d = device({
      credentials: { kind: 'token', token: dev.token },
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' },
      transmission: { ackTimeout: 300, ackRandomFactor: 1, maxRetransmit: 1, responseTimeout: 1000 },
    });
    await d.app.start();
    await waitFor('first report', () => d.app.state.reports >= 1);
    const port = e2e.server.coapsPort!;
    await e2e.server.close();
    await e2e.start({ dtls: { ...serverDtls(), port } });
    // The restarted server has no DTLS state: our records are dropped, the report times out,
    // the device handshakes again and its queued reading goes out on the next flush.
    await d.app.reportNow();
    assert.equal(d.app.state.queued, 1, 'kept while unanswered');
    await waitFor('new session', () => d.app.dtls!.handshakes >= 2 && d.app.dtls!.state === 'connected');
    await d.app.flush();
    assert.equal(d.app.state.queued, 0);
    assert.ok((e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? []).length >= 2, 'queued reading delivered');
    // Observe relations were re-registered on the new session: a shared attribute still arrives.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await admin(e2e.server, 'POST', '/api/devices/dtls-restart/attributes/shared', { reportingInterval: 7 })).status, 200);
    await waitFor('attribute after restart', () => d.app.intervalMs === 7000);
  });

  describe('the ThingsBoard guide client (coap-client-openssl) against the endpoint', () => {
    before(function () {
      if (!existsSync(COAP_CLIENT)) throw new Error(`${COAP_CLIENT} missing: apt-get install libcoap3-bin`);
    });

    it('one-way: -R ca.pem with the token in the URL stores the telemetry', async () => {
      const dev = e2e.server.store.createDevice('guide-token');
      const r = await run(COAP_CLIENT, [
        '-m', 'post', '-R', pki.path('ca.pem'), '-t', 'json', '-e', '{"temperature":25}',
        `coaps://localhost:${e2e.server.coapsPort}/api/v1/${dev.token}/telemetry`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor('stored', () => e2e.server.store.latestTelemetry(dev.id).temperature);
      assert.equal(e2e.server.store.latestTelemetry(dev.id).temperature!.value, 25);
    });

    it('mutual: -c cert -j key without a token stores the telemetry under the certificate\'s device', async () => {
      assert.equal((await admin(e2e.server, 'POST', '/api/devices', { name: 'guide-x509b', certPem: pki.read('device.pem').toString() })).status, 201);
      const dev = e2e.server.store.findDevice('guide-x509b')!;
      const r = await run(COAP_CLIENT, [
        '-m', 'post', '-R', pki.path('ca.pem'), '-c', pki.path('device.pem'), '-j', pki.path('device.key'),
        '-t', 'json', '-e', '{"humidity":40}', `coaps://localhost:${e2e.server.coapsPort}/api/v1/telemetry`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor('stored', () => e2e.server.store.latestTelemetry(dev.id).humidity);
      assert.equal(e2e.server.store.latestTelemetry(dev.id).humidity!.value, 40);
    });

    it('a client trusting another CA refuses the server and sends nothing', async () => {
      const dev = e2e.server.store.createDevice('guide-rogue');
      const r = await run(COAP_CLIENT, [
        '-m', 'post', '-R', pki.path('rogue-ca.pem'), '-t', 'json', '-e', '{"t":1}', '-B', '3',
        `coaps://localhost:${e2e.server.coapsPort}/api/v1/${dev.token}/telemetry`,
      ]);
      assert.ok(/verify|certificate|fail|error/i.test(r.stderr + r.stdout), `${r.stdout} ${r.stderr}`);
      assert.deepEqual(e2e.server.store.latestTelemetry(dev.id), {});
      assert.equal(plaintext.length, 0);
    });
  });
});
