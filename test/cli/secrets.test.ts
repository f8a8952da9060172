/*
 * Full runs of the simulator and the endpoint (CoAP, CoAPs one-way, X.509, network provisioning, a
 * 4.01, debug log level), every output stream captured, grepped for the access tokens, the
 * provisioning secret, the admin token and private key material: none may appear.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, TOOLS, runTool } from './helpers';
import type { Run } from './helpers';
import { makeTestPki } from '../../tools/provision/certs';

interface Output { what: string; text: string }

function tokensIn(dataDir: string): string[] {
  const file = join(dataDir, 'state.json');
  if (!existsSync(file)) return [];
  const state = JSON.parse(readFileSync(file, 'utf8')) as { devices?: { token?: string }[] };
  return (state.devices ?? []).map((d) => d.token ?? '').filter((t) => t.length >= 8);
}

/** Base64 runs of a PEM key body (any 16 characters of it would do to leak it). */
function keyMaterial(pem: string): string[] {
  return pem.split('\n').filter((l) => l && !l.startsWith('-----')).map((l) => l.slice(0, 24)).filter((l) => l.length >= 16);
}

describe('cli: no secret in any output stream', function () {
  this.timeout(240000);
  const pki = makeTestPki();
  let dir: string;
  const outputs: Output[] = [];
  const keep = (what: string, r: Run): Run => {
    outputs.push({ what, text: `${r.stdout}\n${r.stderr}` });
    return r;
  };
  before(() => (dir = mkdtempSync(join(tmpdir(), 'cli-secrets-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('CoAP, CoAPs, X.509, provisioning, a 4.01 and debug logs print no token, secret or key', async () => {
    const run = ['--coap-port', '0', '--http-port', '0', '--duration', '15s', '--speed', '10', '--interval', '5s', '--log', 'debug'];
    const dCoap = join(dir, 'coap');
    const dCoaps = join(dir, 'coaps');
    const dX509 = join(dir, 'x509');
    assert.equal(keep('npm start (CoAP)', await runTool(TOOLS.start, [...run, '--data', dCoap])).code, 0);
    assert.equal(keep('npm start --coaps', await runTool(TOOLS.start, [...run, '--coaps', '--coaps-port', '0', '--certs', pki.dir, '--data', dCoaps])).code, 0);
    assert.equal(keep('npm start --x509', await runTool(TOOLS.start, [...run, '--x509', '--coaps-port', '0', '--certs', pki.dir, '--data', dX509])).code, 0);

    // A separate endpoint, with CoAPs, for the sim runs.
    const dServe = join(dir, 'serve');
    const serve = spawn(process.execPath, ['--import', 'tsx', TOOLS.tbServer, 'serve', '--coap-port', '0', '--http-port', '0', '--coaps-port', '0',
      '--data', dServe, '--cert', pki.path('server.pem'), '--key', pki.path('server.key'), '--ca', pki.path('ca.pem')], { cwd: ROOT });
    let serveOut = '';
    serve.stdout.on('data', (b: Buffer) => (serveOut += b.toString()));
    serve.stderr.on('data', (b: Buffer) => (serveOut += b.toString()));
    const serveExit = new Promise<number | null>((r) => serve.on('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 60000;
      let m: RegExpExecArray | null = null;
      while (!(m = /CoAP on udp:\/\/127\.0\.0\.1:(\d+), CoAPs on udp:\/\/127\.0\.0\.1:(\d+), admin HTTP on (http:\/\/127\.0\.0\.1:\d+)/.exec(serveOut))) {
        assert.ok(Date.now() < deadline && serve.exitCode === null, `endpoint did not start:\n${serveOut}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const [, coapPort, coapsPort, http] = m;
      const admin = ['--http', http!, '--data', dServe];

      // network provisioning: profile secret from a file, key/secret into the flash image from the environment
      const secret = 'PROV_SECRET_9f3a7c21';
      writeFileSync(join(dir, 'secret.txt'), `${secret}\n`);
      assert.equal(keep('tb-server add-profile', await runTool(TOOLS.tbServer, ['add-profile', 'prov-key-1', '--secret-file', join(dir, 'secret.txt'), ...admin])).code, 0);
      const flash = join(dir, 'flash.bin');
      const prov = keep('npm run provision', await runTool(TOOLS.provision, ['--server', `coap://127.0.0.1:${coapPort}`, '--provision-key-env', 'PK', '--provision-secret-env', 'PS', '--flash', flash],
        { env: { PK: 'prov-key-1', PS: secret, TB_TOKEN: undefined } }));
      assert.equal(prov.code, 0, prov.stderr);
      const provisioned = keep('sim --flash (provisioning)', await runTool(TOOLS.sim, ['--flash', flash, '--device-name', 'prov-dev', '--duration', '15s', '--speed', '10', '--interval', '5s', '--log', 'debug']));
      assert.equal(provisioned.code, 0, `${provisioned.stdout}\n${provisioned.stderr}`);

      // one-way CoAPs with a token from the environment
      const chosen = 'ONE_WAY_TOKEN_5b8e1d';
      writeFileSync(join(dir, 'chosen.txt'), chosen);
      const add = await runTool(TOOLS.tbServer, ['add-device', 'oneway-dev', '--token-file', join(dir, 'chosen.txt'), ...admin]);
      assert.equal(add.code, 0, add.stderr); // its output is the device record, token included: asked for, not grepped
      const oneWay = keep('sim coaps one-way (TB_TOKEN)', await runTool(TOOLS.sim, ['--server', `coaps://localhost:${coapsPort}`, '--ca', pki.path('ca.pem'), '--duration', '15s', '--speed', '10', '--interval', '5s', '--log', 'debug'],
        { env: { TB_TOKEN: chosen } }));
      assert.equal(oneWay.code, 0, `${oneWay.stdout}\n${oneWay.stderr}`);

      // an unknown token: 4.01, the device stops, exit 1
      const wrong = 'WRONG_TOKEN_77c0e4aa';
      writeFileSync(join(dir, 'wrong.txt'), `${wrong}\n`);
      const unauthorized = keep('sim 4.01', await runTool(TOOLS.sim, ['--server', `coap://127.0.0.1:${coapPort}`, '--token-file', join(dir, 'wrong.txt'), '--duration', '30s', '--speed', '10', '--log', 'debug']));
      assert.equal(unauthorized.code, 1, unauthorized.stdout);
      assert.match(unauthorized.stdout, /4\.01|[Uu]nauthori[sz]ed/);

      const list = keep('tb-server devices', await runTool(TOOLS.tbServer, ['devices', ...admin]));
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /"token": "\*\*\* \(\d+ characters; --show-secrets prints it\)"/);
      const shown = await runTool(TOOLS.tbServer, ['devices', '--show-secrets', ...admin]);
      assert.ok(shown.stdout.includes(chosen), '--show-secrets shows the tokens');

      const secrets = [
        secret, chosen, wrong,
        ...tokensIn(dCoap), ...tokensIn(dCoaps), ...tokensIn(dX509), ...tokensIn(dServe),
        ...[dCoap, dCoaps, dX509, dServe].map((d) => readFileSync(join(d, 'admin-token'), 'utf8').trim()),
      ];
      assert.ok(tokensIn(dServe).length >= 2, 'the provisioned device and the one-way device exist');
      const keys = ['device.key', 'server.key', 'ca.key', 'device-rsa.key'].flatMap((k) => keyMaterial(pki.read(k).toString()));
      serve.kill('SIGINT');
      await serveExit;
      outputs.push({ what: 'tb-server serve', text: serveOut });
      assert.ok(outputs.every((o) => o.text.length > 0));
      for (const o of outputs) {
        for (const s of secrets) assert.ok(!o.text.includes(s), `${o.what} printed a secret (${s.slice(0, 3)}...)`);
        for (const k of keys) assert.ok(!o.text.includes(k), `${o.what} printed private key material`);
        assert.doesNotMatch(o.text, /PRIVATE KEY/, `${o.what} printed a PEM key`);
      }
      // the runs did log at debug level, and did exchange data
      assert.ok(outputs.some((o) => /DEBUG/.test(o.text)), 'debug lines were printed');
      assert.match(serveOut, /POST \/api\/v1\/<prov-dev>\/telemetry -> 2\.01/);
      assert.match(serveOut, /<unknown token>\/\w+ -> 4\.01/);
    } finally {
      if (serve.exitCode === null) serve.kill('SIGKILL');
    }
  });
});
