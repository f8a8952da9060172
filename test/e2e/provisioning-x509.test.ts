/*
 * X.509 network provisioning against the local endpoint, over CoAPs (POST /api/v1/provision inside
 * the mutual DTLS session) and over MQTTS (/provision/request on a connection of its own): a device
 * whose flash holds a certificate, its key and a provisioning key/secret registers the certificate
 * (credentialsType X509_CERTIFICATE), saves the outcome, then talks mutual X.509 and its telemetry
 * lands under the new device. After a reboot it does not provision again. A certificate that
 * another device holds is a clear FAILURE, retried with back-off, never in a loop.
 */
import { strict as assert } from 'node:assert';
import { createHash, X509Certificate } from 'node:crypto';
import { MemFlash } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { loadDtlsEngine } from '../../hardware/dtls/index';
import type { SimDevice } from '../../tools/sim/device';
import { openDeviceStorage } from '../../src/storage/index';
import { loadSecurity } from '../../src/device/provisioned';
import { useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

const KEY = 'x509-prov-key';
const SECRET = 'x509-prov-secret';
const FAST = { ackTimeout: 300, ackRandomFactor: 1, maxRetransmit: 2, responseTimeout: 1000 };

describe('e2e: X.509 provisioning (X509_CERTIFICATE) over CoAPs and MQTTS', function () {
  this.timeout(40000);
  const pki = makeTestPki();
  const certPem = pki.read('device.pem').toString();
  const sha3 = createHash('sha3-256').update(new X509Certificate(certPem).raw.toString('base64')).digest('hex');
  const e2e = useEndpoint(() => ({
    dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') },
    mqtt: { port: 0, tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } },
  }));

  function flashFor(scheme: 'coaps' | 'mqtts'): MemFlash {
    const port = scheme === 'coaps' ? e2e.server.coapsPort! : e2e.server.mqtt!.tlsPort!;
    const flash = new MemFlash(20 * 4096, 4096);
    openDeviceStorage(flash).credentials.save({
      server: `${scheme}://localhost:${port}`,
      ca: pki.read('ca.pem').toString(),
      cert: certPem,
      key: pki.read('device.key').toString(),
      provisionKey: KEY,
      provisionSecret: SECRET,
    });
    return flash;
  }

  /** Boots as the firmware does: credentials from flash, checked at boot (mbedTLS engine, clock), provisioning from the record. */
  function boot(flash: MemFlash, name: string, log = memoryLog()): SimDevice {
    const security = loadSecurity(openDeviceStorage(flash).credentials, log, { dtls: loadDtlsEngine().create, clock: { epochMs: () => Date.now() } });
    assert.ok(security, log.lines.join('\n'));
    const mqtt = security.transport === 'mqtt';
    return e2e.device({
      ...security,
      // UDP to the address; the name checked against the server certificate stays localhost
      server: { host: mqtt ? 'localhost' : '127.0.0.1', port: security.server.port },
      flash,
      log,
      reportingIntervalMs: 1000,
      transmission: FAST,
      ...(mqtt ? { mqtt: { responseTimeoutMs: 8000, reconnect: { initialMs: 50, maxMs: 400 } } } : {}),
      deviceName: name,
      provisionRetryMs: { first: 1500, max: 3000 },
    });
  }

  for (const scheme of ['coaps', 'mqtts'] as const) {
    it(`${scheme}: registers the certificate, then talks mutual X.509; telemetry lands under the new device; no second provisioning after a reboot`, async () => {
      e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
      const flash = flashFor(scheme);
      const log = memoryLog();
      const d = boot(flash, `x509-${scheme}`, log);
      await d.app.start();
      const dev = await waitFor('device created by provisioning', () => e2e.server.store.findDevice(`x509-${scheme}`));
      assert.equal(dev.certSha3, sha3, 'registered by SHA3-256 of the certificate');
      await waitFor('telemetry under the provisioned device', () => e2e.server.store.latestTelemetry(dev.id).temperature);
      const stored = openDeviceStorage(flash).credentials.load();
      assert.equal(stored.provisionState, 'done');
      assert.equal(stored.token, undefined);
      const text = log.lines.join('\n');
      assert.match(text, new RegExp(`provisioned as x509-${scheme}: X\\.509 certificate registered, state saved in flash`));
      for (const secret of [SECRET, 'PRIVATE KEY', dev.token]) assert.ok(!text.includes(secret), `${secret} not logged`);
      assert.equal(d.app.tb.stopped, undefined);
      // CoAPs: the provisioning request went through a session whose certificate no device had; the
      // endpoint (as ThingsBoard) maps a certificate at a full handshake only, so the device did another.
      if (scheme === 'coaps') assert.ok(d.app.dtls!.handshakes >= 2, `full handshakes: ${d.app.dtls!.handshakes}`);
      d.app.stop();
      // Reboot: the stored state says done; X.509 straight away.
      const log2 = memoryLog();
      const again = boot(flash, `x509-${scheme}`, log2);
      const before = e2e.server.store.telemetry(dev.id, ['temperature']).temperature!.length;
      await again.app.start();
      await waitFor('telemetry after the reboot', () => e2e.server.store.telemetry(dev.id, ['temperature']).temperature!.length > before);
      assert.ok(!log2.lines.some((l) => /provision/.test(l) && !/credentials loaded/.test(l)), log2.lines.join('\n'));
      assert.equal(e2e.server.store.listDevices().filter((x) => x.certSha3 === sha3).length, 1);
    });
  }

  for (const scheme of ['coaps', 'mqtts'] as const)
  it(`${scheme}: FAILURE (the name is taken by a device without this certificate) is reported clearly and retried with back-off, not in a loop`, async () => {
    e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    e2e.server.store.createDevice('x509-taken');
    const log = memoryLog();
    const d = boot(flashFor(scheme), 'x509-taken', log);
    await d.app.start();
    await new Promise((r) => setTimeout(r, 3500));
    // each attempt: FAILURE, the certificate tried (it could have been registered earlier), 4.01 (CoAPs) or CONNACK 5 (MQTTS)
    const failures = log.lines.filter((l) => /provisioning failed: the server refuses to provision this device and does not know its saved credentials .*(4\.01|CONNACK 5).*; next attempt in \d+ s/.test(l));
    assert.equal(failures.length, 2, log.lines.join('\n')); // at 0 and 2 s (waits 1.5 s, 3 s), readings every second
    assert.equal(e2e.server.store.findDevice('x509-taken')!.certSha3, undefined);
    assert.equal(d.app.tb.stopped, undefined);
    assert.ok(d.app.state.queued >= 3);
  });

  it('coaps: a certificate an administrator registered already: FAILURE, then the certificate is accepted and used', async () => {
    e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const dev = e2e.server.store.createDevice('registered-by-admin', { certSha3: sha3 });
    const log = memoryLog();
    const flash = flashFor('coaps');
    const d = boot(flash, 'x509-new-name', log);
    await d.app.start();
    await waitFor('telemetry under the device holding the certificate', () => e2e.server.store.latestTelemetry(dev.id).temperature);
    assert.match(log.lines.join('\n'), /provisioning confirmed: the server accepts the saved certificate/);
    assert.equal(openDeviceStorage(flash).credentials.load().provisionState, 'done');
  });

  it('coaps: NOT_FOUND (wrong secret) is reported and retried with back-off', async () => {
    e2e.server.store.addProfile({ key: KEY, secret: 'another-secret', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const log = memoryLog();
    const d = boot(flashFor('coaps'), 'x509-nf', log);
    await d.app.start();
    await waitFor('refusal logged', () => log.lines.some((l) => /NOT_FOUND\); next attempt in 2 s/.test(l)));
    assert.ok(!log.lines.join('\n').includes(SECRET));
    assert.equal(d.storage!.credentials.load().provisionState, 'pending');
  });
});
