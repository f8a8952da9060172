/*
 * The credentials record: checked when written and at boot with errors that name the field and
 * never show a secret; loaded into the device's connection settings; written by `npm run provision`.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash, MemFlash } from '../../tools/sim/flash';
import { openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { CredentialsError, KEY_CREDENTIALS, validateCredentials } from '../../src/storage/credentials';
import { loadSecurity, securityFromCredentials } from '../../src/device/provisioned';
import { provision } from '../../tools/provision/provision';
import { memoryLog } from '../helpers/wait';
import { fakePem } from './helpers';

const TOKEN = 'S3cretT0ken-do-not-print';
const invalid = (field: string, re: RegExp) => (e: unknown) =>
  e instanceof CredentialsError && e.code === 'invalid' && e.field === field && re.test(e.message) && !e.message.includes(TOKEN) && !e.message.includes('MII');

describe('storage: credentials record', () => {
  const ca = fakePem('CERTIFICATE', 400, 1);
  const cert = fakePem('CERTIFICATE', 300, 2);
  const key = fakePem('EC PRIVATE KEY', 121, 3);

  it('accepts a token device, a one-way coaps device and a mutual X.509 device (a real openssl EC key with its EC PARAMETERS too)', () => {
    validateCredentials({ server: 'coap://tb.example.com', token: TOKEN });
    validateCredentials({ server: 'coaps://tb.example.com:5684', token: TOKEN, ca });
    validateCredentials({ server: 'coaps://[::1]:5684', ca, cert, key });
    const realKey = execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey']).toString();
    assert.match(realKey, /EC PARAMETERS/);
    validateCredentials({ server: 'coaps://tb.example.com', ca, cert, key: realKey });
    validateCredentials({ server: 'coap://tb.example.com', provisionKey: 'k', provisionSecret: 's' });
  });

  it('rejects at once, naming the field and never showing its value', () => {
    const base: StoredCredentials = { server: 'coap://tb.example.com', token: TOKEN };
    assert.throws(() => validateCredentials({ ...base, token: '' }), invalid('token', /token is empty/));
    assert.throws(() => validateCredentials({ ...base, token: `${TOKEN}/x` }), invalid('token', /URI path/));
    assert.throws(() => validateCredentials({ ...base, token: `${TOKEN} ` }), invalid('token', /space/));
    assert.throws(() => validateCredentials({ ...base, server: 'http://tb.example.com' }), invalid('server', /coap:\/\//));
    assert.throws(() => validateCredentials({ server: 'coap://tb' }), invalid('token', /could not authenticate/));
    const s = { server: 'coaps://tb.example.com', ca };
    assert.throws(() => validateCredentials({ ...s, cert }), invalid('key', /go together/));
    assert.throws(() => validateCredentials({ ...s, cert, key: cert }), invalid('key', /holds CERTIFICATE/));
    assert.throws(() => validateCredentials({ ...s, cert: key, key }), invalid('cert', /holds EC PRIVATE KEY/));
    assert.throws(() => validateCredentials({ ...s, cert: cert.replace(/-----END CERTIFICATE-----\n$/, ''), key }), invalid('cert', /no END line/));
    assert.throws(() => validateCredentials({ ...s, cert: cert.replace('MI', 'M!'), key }), invalid('cert', /not base64/));
    assert.throws(() => validateCredentials({ ...s, cert: 'just text', key }), invalid('cert', /not a PEM certificate/));
    assert.throws(() => validateCredentials({ ...s, cert: cert.replace(/\nMI/, '\nAI'), key }), invalid('cert', /not DER/));
    assert.throws(() => validateCredentials({ ...s, cert, key: fakePem('ENCRYPTED PRIVATE KEY', 200) }), invalid('key', /encrypted/));
    assert.throws(() => validateCredentials({ server: 'coaps://tb', cert, key }), invalid('ca', /needs ca/));
    assert.throws(() => validateCredentials({ server: 'coap://tb', ca, cert, key }), invalid('server', /coaps/));
    assert.throws(() => validateCredentials({ ...base, provisionKey: 'k' }), invalid('provisionSecret', /together/));
  });

  it('save() refuses a bad record and leaves the stored one; load() re-checks at boot', () => {
    const f = new MemFlash(8 * 4096, 4096);
    const s = openDeviceStorage(f);
    assert.throws(() => s.credentials.load(), (e: unknown) => e instanceof CredentialsError && e.code === 'missing' && /provision/.test(e.message));
    s.credentials.save({ server: 'coap://tb.example.com', token: TOKEN });
    assert.throws(() => s.credentials.save({ server: 'coap://tb.example.com', token: '' }), invalid('token', /empty/));
    assert.equal(openDeviceStorage(f).credentials.load().token, TOKEN);
    // A record that passed its CRC but does not hold valid credentials (written by a broken tool):
    s.kv.put(KEY_CREDENTIALS, new Uint8Array([1, 0, 3, 0, 0x61, 0x62, 0x63]));
    const log = memoryLog();
    assert.equal(loadSecurity(openDeviceStorage(f).credentials, log), undefined);
    assert.match(log.lines.join('\n'), /error credentials: server must look like/);
  });

  it('becomes the device connection settings: token, one-way DTLS, mutual X.509', () => {
    assert.deepEqual(securityFromCredentials({ server: 'coap://tb.example.com', token: TOKEN }), {
      server: { host: 'tb.example.com', port: 5683 },
      credentials: { kind: 'token', token: TOKEN },
    });
    const x = securityFromCredentials({ server: 'coaps://tb.example.com', ca, cert, key, hostname: 'tb.internal' });
    assert.deepEqual(x.credentials, { kind: 'x509' });
    assert.equal(x.server.port, 5684);
    assert.equal(x.dtls!.hostname, 'tb.internal');
    assert.equal(x.dtls!.cert, cert);
    // mqtt:// and mqtts:// records pick the MQTT transport; mqtts takes the same fields as `tls`
    assert.deepEqual(securityFromCredentials({ server: 'mqtt://tb.example.com', token: TOKEN }), {
      server: { host: 'tb.example.com', port: 1883 },
      transport: 'mqtt',
      credentials: { kind: 'token', token: TOKEN },
    });
    const m = securityFromCredentials({ server: 'mqtts://tb.example.com', ca, cert, key });
    assert.equal(m.transport, 'mqtt');
    assert.equal(m.server.port, 8883);
    assert.equal(m.dtls, undefined);
    assert.equal(m.tls!.hostname, 'tb.example.com');
    assert.equal(m.tls!.cert, cert);
    const log = memoryLog();
    const f = new MemFlash(8 * 4096, 4096);
    openDeviceStorage(f).credentials.save({ server: 'coap://tb.example.com', token: TOKEN });
    assert.ok(loadSecurity(openDeviceStorage(f).credentials, log));
    assert.match(log.lines[0]!, /credentials loaded from flash: coap:\/\/tb.example.com with access token/);
    assert.ok(!log.lines.join('').includes(TOKEN));
  });

  describe('npm run provision', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'prov-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('writes a partition image and the simulator flash from a token file or env var, printing no secret', () => {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, `${TOKEN}\n`);
      const out = join(dir, 'creds.bin');
      const flash = join(dir, 'flash.bin');
      const r = provision(['--server', 'coap://127.0.0.1:5683', '--token-file', tokenFile, '--out', out, '--flash', flash], {});
      const printed = r.lines.join('\n');
      assert.match(printed, /wrote .*creds.bin: 80 KB storage partition image/);
      assert.match(printed, /created simulator flash/);
      assert.ok(!printed.includes(TOKEN), 'token not printed');
      for (const path of [out, flash]) {
        const f = new FileFlash(path, 80 * 1024);
        assert.equal(openDeviceStorage(f).credentials.load().token, TOKEN);
        f.close();
      }
      // Replaced from an env var; the queue in the simulator flash is kept.
      const f = new FileFlash(flash, 80 * 1024);
      openDeviceStorage(f).queue.push({ ts: 1, values: { t: 1 } });
      f.close();
      const r2 = provision(['--server', 'coap://127.0.0.1:5683', '--token-env', 'TB_TOKEN', '--flash', flash], { TB_TOKEN: 'other-token' });
      assert.match(r2.lines.join(''), /credentials replaced \(queue: 1 readings kept\)/);
      assert.ok(!r2.lines.join('').includes('other-token'));
      const g = new FileFlash(flash, 80 * 1024);
      assert.equal(openDeviceStorage(g).credentials.load().token, 'other-token');
      g.close();
    });

    it('refuses a token on the command line, an empty token file and a bad PEM, before writing anything', () => {
      const out = join(dir, 'creds.bin');
      assert.throws(() => provision(['--server', 'coap://h', '--token', TOKEN, '--out', out], {}), /refused/);
      const empty = join(dir, 'empty');
      writeFileSync(empty, '\n');
      assert.throws(() => provision(['--server', 'coap://h', '--token-file', empty, '--out', out], {}), /token is empty/);
      const bad = join(dir, 'bad.pem');
      writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n');
      const keyFile = join(dir, 'k.pem');
      writeFileSync(keyFile, key);
      assert.throws(() => provision(['--server', 'coaps://h', '--ca', bad, '--cert', bad, '--key', keyFile, '--out', out], {}), /cert is not a PEM certificate/);
      assert.throws(() => provision(['--server', 'coap://h', '--token-env', 'NOPE', '--out', out], {}), /NOPE is not set/);
      assert.throws(() => require('node:fs').statSync(out), /ENOENT/, 'nothing written');
    });
  });
});
