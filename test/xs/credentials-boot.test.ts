/*
 * The firmware (src/main.ts) on the XS host checks the credentials record in flash at boot with
 * the xsmc DTLS binding (mbedTLS), not only at the first handshake: a key that does not belong to
 * the certificate, or an expired certificate, stops the boot at once with the field named and no
 * secret shown; a good record boots.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { waitFor } from '../helpers/wait';
import { useXsDevices } from './host-helpers';

describe('XS host: credentials checked at boot (mbedTLS through the xsmc binding)', function () {
  this.timeout(60000);
  const xs = useXsDevices();
  const pki = makeTestPki();
  const good: StoredCredentials = {
    server: 'coaps://localhost:5999',
    ca: pki.read('ca.pem').toString(),
    cert: pki.read('device.pem').toString(),
    key: pki.read('device.key').toString(),
  };

  /** A device directory whose flash partition holds `c` (the XS host builds for lin: src/platform/moddable/lin/flash.ts, an 80 KB image in the files directory). */
  function withRecord(c: StoredCredentials): string {
    const dir = mkdtempSync(join(tmpdir(), 'xs-cred-'));
    mkdirSync(join(dir, 'build', 'files'), { recursive: true });
    const f = new FileFlash(join(dir, 'build', 'files', 'flash-storage.bin'), 80 * 1024, 4096);
    openDeviceStorage(f).credentials.save(c);
    f.close();
    return dir;
  }

  async function bootLines(c: StoredCredentials): Promise<string> {
    const d = xs.start({ port: 5999, dir: withRecord(c), wallLimitMs: 20000 });
    await waitFor('boot verdict', () => d.live.code !== null || d.trace.some((l) => /credentials|ThingsBoard coaps/.test(l)), 20000).catch(() => undefined);
    await waitFor('host exits or runs on', () => d.live.code !== null || d.trace.some((l) => /ThingsBoard coaps/.test(l)), 20000).catch(() => undefined);
    return d.output();
  }

  it('a key that does not match its certificate stops the boot with the key named', async () => {
    const out = await bootLines({ ...good, key: pki.read('rogue-device.key').toString() });
    assert.match(out, /credentials: key refused by mbedTLS: .*does not match the certificate \(credentials in flash rejected at boot\)/, out);
    assert.ok(!/ThingsBoard coaps/.test(out), 'the device did not start');
    assert.ok(!out.includes('PRIVATE KEY') && !out.includes('MII'), 'no key material');
  });

  it('an expired device certificate stops the boot with its date', async () => {
    const out = await bootLines({ ...good, cert: pki.read('server-expired.pem').toString(), key: pki.read('server-expired.key').toString() });
    assert.match(out, /credentials: the device certificate expired on \d{4}-\d\d-\d\d \(today is/, out);
    assert.ok(!/ThingsBoard coaps/.test(out));
  });

  it('a good record boots (checked, not refused)', async () => {
    const out = await bootLines(good);
    assert.match(out, /credentials loaded from flash: coaps:\/\/localhost:5999 with X\.509 certificate/, out);
    assert.match(out, /ThingsBoard coaps:\/\/localhost:5999 \(X\.509, from flash\)/, out);
  });
});
