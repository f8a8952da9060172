/*
 * Bad command lines and bad configuration stop at once with exit 2 and one line naming the problem
 * (an option, a value, a file); nothing is started, nothing is sent.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOOLS, limited, runTool } from './helpers';
import { makeTestPki } from '../../tools/provision/certs';
import { checkDtlsMaterial, loadDtlsFiles, parseServerUrl, readToken } from '../../tools/sim/config-check';
import { parseDuration } from '../../tools/cli/options';

describe('cli: usage and configuration errors (exit 2, named)', function () {
  this.timeout(180000);
  const pki = makeTestPki();
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cli-usage-'));
    writeFileSync(join(dir, 'token.txt'), 'A_TOKEN_123\n');
    writeFileSync(join(dir, 'not-pem.txt'), 'hello, this is not a certificate\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('each bad input gives exit 2 and names the option or file', async () => {
    const tok = ['--token-file', join(dir, 'token.txt')];
    const cases: [string, string[], RegExp][] = [
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--interval', '0'], /--interval must be greater than 0/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--interval', '0.5'], /--interval must be at least 1s/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--bogus'], /unknown option --bogus/],
      [TOOLS.sim, ['--sever', 'coap://127.0.0.1:5683'], /unknown option --sever \(did you mean --server\?\)/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:99999', ...tok], /port .*1-65535 \(got '99999'\)/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--duration', '10x'], /--duration must be a duration such as 30s/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--speed', '0'], /--speed must be a number greater than 0/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--log', 'loud'], /--log must be one of debug, info, warn, error/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', ...tok, '--quiet=yes'], /--quiet takes no value/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', '--token'], /--token needs a value/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683'], /needs the access token: --token-file FILE, TB_TOKEN/],
      [TOOLS.sim, ['--server', 'coap://127.0.0.1:5683', '--token-file', join(dir, 'missing.txt')], /--token-file: no such file/],
      [TOOLS.sim, ['--server', 'coap://no-such-host.invalid:5683', ...tok], /server host 'no-such-host\.invalid' does not resolve/],
      [TOOLS.sim, ['--server', 'coaps://127.0.0.1:5684', '--ca', pki.path('ca.pem'), ...tok], /matches DNS names only, never an IP address.*coaps:\/\/localhost:5684/],
      [TOOLS.sim, ['--server', 'coaps://localhost:5684', '--ca', join(dir, 'not-pem.txt'), ...tok], /--ca .*not-pem\.txt: not a certificate in PEM or DER/],
      [TOOLS.sim, ['--server', 'coaps://localhost:5684', '--ca', pki.path('ca.pem'), '--cert', pki.path('device.pem'), '--key', pki.path('server.key')], /--key .*server\.key does not belong to --cert/],
      [TOOLS.sim, ['--server', 'coaps://localhost:5684', '--ca', pki.path('ca.pem'), '--cert', pki.path('server-expired.pem'), '--key', pki.path('server-expired.key')], /--cert .*server-expired\.pem: the certificate expired on/],
      [TOOLS.start, ['--interval', '0'], /--interval must be greater than 0/],
      [TOOLS.start, ['--quite'], /unknown option --quite \(did you mean --quiet\?\)/],
      [TOOLS.start, ['--http-port', '65536'], /--http-port must be a port number/],
      [TOOLS.tbServer, ['serve', '--coap-port', 'abc'], /--coap-port must be a port number/],
      [TOOLS.tbServer, ['devices', '--bogus'], /unknown option --bogus/],
      [TOOLS.certs, ['--outt', dir], /unknown option --outt/],
      [TOOLS.provision, ['--server', 'coap://h', '--token', 'T', '--out', join(dir, 'x.bin')], /--token on the command line is refused/],
    ];
    const runs = await limited(3, cases.map(([script, args]) => () => runTool(script, args, { timeoutMs: 30000, env: { TB_TOKEN: undefined } })));
    runs.forEach((r, i) => {
      const [script, args, re] = cases[i]!;
      const what = `${script.split('/').slice(-2).join('/')} ${args.join(' ')}`;
      assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, re, `${what}\n${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line\n${r.stderr}`);
      assert.doesNotMatch(r.stdout, /summary \(|local ThingsBoard endpoint:/, `${what}: started anyway`);
    });
  });

  it('the token comes from --token-file, --token or TB_TOKEN, never two at once', () => {
    const f = join(dir, 'token.txt');
    assert.equal(readToken({ tokenFile: f }, {}), 'A_TOKEN_123');
    assert.equal(readToken({}, { TB_TOKEN: 'ENV_TOKEN' }), 'ENV_TOKEN');
    assert.equal(readToken({ token: 'CLI' }, { TB_TOKEN: 'ENV_TOKEN' }), 'CLI');
    assert.equal(readToken({}, {}), undefined);
    assert.throws(() => readToken({ token: 'a', tokenFile: f }, {}), /give one/);
    assert.throws(() => readToken({ token: 'a b' }, {}), /contains a space/);
  });

  it('durations take units; URLs and DER/PEM files are checked', () => {
    assert.equal(parseDuration('30s', 'x'), 30000);
    assert.equal(parseDuration('15m', 'x'), 900000);
    assert.equal(parseDuration('1h30m', 'x'), 5400000);
    assert.equal(parseDuration('45', 'x'), 45000);
    assert.equal(parseDuration('500ms', 'x'), 500);
    assert.throws(() => parseDuration('1 hour', 'x'), /duration/);
    assert.deepEqual(parseServerUrl('coaps://tb.example.com'), { scheme: 'coaps', host: 'tb.example.com', port: 5684, secure: true });
    assert.throws(() => parseServerUrl('http://x'), /coap:\/\/HOST/);
    // DER certificate and key are fine; a key given as the certificate is named
    assert.ok(loadDtlsFiles({ ca: pki.path('ca.pem'), cert: pki.path('device.der'), key: pki.path('device.key.der') }).cert);
    assert.throws(() => loadDtlsFiles({ ca: pki.path('ca.key') }), /--ca .*without a CERTIFICATE block/);
    assert.throws(() => loadDtlsFiles({ ca: pki.path('ca.pem'), cert: pki.path('device.pem') }), /--cert and --key go together/);
    assert.throws(() => loadDtlsFiles({ ca: pki.path('ca.pem'), cert: pki.path('device.pem'), key: pki.path('device.pem') }), /--key .*holds a certificate/);
    // the same checks for credentials from a flash image (npm run sim -- --flash)
    assert.throws(() => checkDtlsMaterial({ ca: pki.read('ca.pem'), cert: pki.read('device.pem'), key: pki.read('device-rsa.key') }, { ca: '(ca in f.bin)', cert: '(cert in f.bin)', key: '(key in f.bin)' }),
      /--key \(key in f\.bin\) does not belong to --cert \(cert in f\.bin\)/);
  });
});
