/*
 * Credentials checked at boot on the device (src/device/provisioned.ts checkCredentialsAtBoot), not
 * only at the first handshake: a key that does not match its certificate, a certificate outside its
 * validity period, bytes that are not an X.509 certificate inside a well-formed PEM. The DER and
 * dates are read in TypeScript (no node:crypto in src/); the key/certificate pair is checked by the
 * platform's mbedTLS engine (here the N-API binding, on the XS host its xsmc twin: test/xs).
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash, MemFlash } from '../../tools/sim/flash';
import { provision } from '../../tools/provision/provision';
import { makeTestPki } from '../../tools/provision/certs';
import type { TestPki } from '../../tools/provision/certs';
import { loadDtlsEngine } from '../../hardware/dtls/index';
import { openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { CLOCK_SET_AFTER_MS, CredentialsError, certificateBase64, certificateValidity, validityProblem } from '../../src/storage/credentials';
import { checkCredentialsAtBoot, loadSecurity } from '../../src/device/provisioned';
import { memoryLog } from '../helpers/wait';
import { fakePem } from './helpers';

const clockAt = (ms: number) => ({ epochMs: () => ms });

describe('storage: credentials checked at boot (DER, validity, key pair)', function () {
  this.timeout(30000);
  let pki: TestPki;
  let dtls: ReturnType<typeof loadDtlsEngine>['create'];
  let good: StoredCredentials;

  before(() => {
    pki = makeTestPki();
    dtls = loadDtlsEngine().create;
    good = {
      server: 'coaps://localhost:5684',
      ca: pki.read('ca.pem').toString(),
      cert: pki.read('device.pem').toString(),
      key: pki.read('device.key').toString(),
    };
  });

  const rejects = (field: string, re: RegExp) => (e: unknown) =>
    e instanceof CredentialsError && e.code === 'invalid' && e.field === field && re.test(e.message) && !e.message.includes('PRIVATE') && !e.message.includes('MII');

  it('reads notBefore/notAfter from the DER exactly as node:crypto does (EC, RSA, CA bundle)', () => {
    for (const name of ['device.pem', 'device-rsa.pem', 'server-expired.pem', 'ca.pem']) {
      const pem = pki.read(name).toString();
      const [v] = certificateValidity('cert', pem);
      const x = new X509Certificate(pem);
      assert.equal(v!.notBefore, Date.parse(x.validFrom), name);
      assert.equal(v!.notAfter, Date.parse(x.validTo), name);
    }
    const bundle = pki.read('ca.pem').toString() + pki.read('rogue-ca.pem').toString();
    assert.equal(certificateValidity('ca', bundle).length, 2);
    // the provisioning `hash`: the PEM body without line breaks = base64 of the DER
    assert.equal(certificateBase64(good.cert!), new X509Certificate(good.cert!).raw.toString('base64'));
  });

  it('accepts a good record with the key checked by mbedTLS and the dates by the clock', () => {
    const log = memoryLog();
    assert.equal(checkCredentialsAtBoot(good, { dtls, clock: clockAt(Date.now()) }, log), undefined);
    assert.equal(checkCredentialsAtBoot({ ...good, cert: pki.read('device-rsa.pem').toString(), key: pki.read('device-rsa.key').toString() }, { dtls, clock: clockAt(Date.now()) }, log), undefined);
  });

  it('a key that does not match its certificate is an error at once, naming the key', () => {
    const c = { ...good, key: pki.read('rogue-device.key').toString() };
    assert.throws(() => checkCredentialsAtBoot(c, { dtls, clock: clockAt(Date.now()) }, memoryLog()), rejects('key', /key refused by mbedTLS: .*does not match/));
    // an RSA key for an EC certificate too
    assert.throws(() => checkCredentialsAtBoot({ ...good, key: pki.read('device-rsa.key').toString() }, { dtls }, memoryLog()), rejects('key', /refused by mbedTLS/));
  });

  it('an expired or not yet valid certificate is an error at once, with its dates', () => {
    const expired = { ...good, cert: pki.read('server-expired.pem').toString(), key: pki.read('server-expired.key').toString() };
    assert.throws(() => checkCredentialsAtBoot(expired, { dtls, clock: clockAt(Date.now()) }, memoryLog()), rejects('cert', /device certificate expired on \d{4}-\d\d-\d\d \(today is/));
    const [v] = certificateValidity('cert', good.cert!);
    assert.throws(() => checkCredentialsAtBoot(good, { dtls, clock: clockAt(v!.notBefore - 86400_000) }, memoryLog()), rejects('cert', /is not valid before/));
    assert.throws(() => checkCredentialsAtBoot(good, { dtls, clock: clockAt(v!.notAfter + 1000) }, memoryLog()), rejects('cert', /expired on/));
  });

  it('an expired CA is an error when every CA in the bundle is expired, a warning when one still is valid', () => {
    const [ca] = certificateValidity('ca', good.ca!);
    const log = memoryLog();
    const bundle = good.ca! + pki.read('server-expired.pem').toString();
    assert.equal(checkCredentialsAtBoot({ ...good, ca: bundle }, { clock: clockAt(Date.now()) }, log), undefined);
    assert.match(log.lines.join('\n'), /1 of 2 CA certificates are outside their validity period/);
    assert.throws(() => checkCredentialsAtBoot({ server: good.server, ca: good.ca!, token: 't' }, { clock: clockAt(ca!.notAfter + 1) }, memoryLog()), rejects('ca', /CA certificate expired on/));
  });

  it('with the clock not set (no RTC, before 2020) the dates are logged, not judged, and handed back for later', () => {
    const log = memoryLog();
    const expired = { ...good, cert: pki.read('server-expired.pem').toString(), key: pki.read('server-expired.key').toString() };
    const later = checkCredentialsAtBoot(expired, { dtls, clock: clockAt(5000) }, log);
    assert.ok(later, 'validity handed back');
    assert.match(log.lines.join('\n'), /clock not set yet: the device certificate \(valid \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d\) is judged once it is/);
    assert.equal(validityProblem('cert', later!, 5000), undefined, 'still not judged');
    assert.match(validityProblem('cert', later!, Date.now()) ?? '', /expired on/, 'judged once the clock is set');
    assert.ok(CLOCK_SET_AFTER_MS > 5000);
  });

  it('a PEM of the right shape around bytes that are not a certificate is a clear error (before any engine)', () => {
    const fake = fakePem('CERTIFICATE', 300, 2);
    assert.throws(() => checkCredentialsAtBoot({ ...good, cert: fake }, {}, memoryLog()), rejects('cert', /cert is not an X\.509 certificate/));
    assert.throws(() => checkCredentialsAtBoot({ ...good, ca: fake }, {}, memoryLog()), rejects('ca', /ca \(certificate 1\) is not an X\.509 certificate/));
    // a key that is not a key: mbedTLS says so
    const badKey = fakePem('EC PRIVATE KEY', 121, 3);
    assert.throws(() => checkCredentialsAtBoot({ ...good, key: badKey }, { dtls }, memoryLog()), rejects('key', /key refused by mbedTLS/));
  });

  it('loadSecurity with the boot check: a mismatched key in flash is rejected at boot with the field named', () => {
    const f = new MemFlash(20 * 4096, 4096);
    openDeviceStorage(f).credentials.save({ ...good, key: pki.read('rogue-device.key').toString() });
    const log = memoryLog();
    assert.equal(loadSecurity(openDeviceStorage(f).credentials, log, { dtls, clock: clockAt(Date.now()) }), undefined);
    assert.match(log.lines.join('\n'), /credentials: key refused by mbedTLS: .*does not match the certificate \(credentials in flash rejected at boot\)/);
    const f2 = new MemFlash(20 * 4096, 4096);
    openDeviceStorage(f2).credentials.save(good);
    const s = loadSecurity(openDeviceStorage(f2).credentials, memoryLog(), { dtls, clock: clockAt(1000) });
    assert.ok(s?.certificateValidity, 'clock not set: validity kept for the app');
  });

  it('npm run provision writes cert/key + provisioning key/secret (X.509 provisioning at first boot), no secret printed; refuses a mismatched key or an expired certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prov-x509-'));
    try {
      const flash = join(dir, 'flash.bin');
      const env = { PK: 'prov-key-x509', PS: 'prov-secret-x509' };
      const base = ['--server', 'mqtts://localhost:8883', '--ca', pki.path('ca.pem'), '--provision-key-env', 'PK', '--provision-secret-env', 'PS', '--flash', flash];
      const r = provision([...base, '--cert', pki.path('device.pem'), '--key', pki.path('device.key')], env);
      const printed = r.lines.join('\n');
      assert.match(printed, /with an X\.509 certificate and a CA, provisioning key\/secret \(not shown\): registers the certificate \(X509_CERTIFICATE\) at first boot/);
      for (const secret of [env.PK, env.PS, 'PRIVATE', 'MII']) assert.ok(!printed.includes(secret), `${secret} not printed`);
      const f = new FileFlash(flash, 80 * 1024);
      const c = openDeviceStorage(f).credentials.load();
      f.close();
      assert.equal(c.provisionKey, env.PK);
      assert.equal(c.cert, pki.read('device.pem').toString());
      assert.equal(c.provisionState, undefined);
      // node:crypto checks at write time: nothing written for a key of another certificate or an expired one
      const out = join(dir, 'bad.bin');
      assert.throws(() => provision([...base.slice(0, -2), '--out', out, '--cert', pki.path('device.pem'), '--key', pki.path('rogue-device.key')], env), /does not belong to --cert/);
      assert.throws(() => provision([...base.slice(0, -2), '--out', out, '--cert', pki.path('server-expired.pem'), '--key', pki.path('server-expired.key')], env), /expired on/);
      assert.equal(existsSync(out), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
