/*
 * `npm run sim -- --engine xs`: tools/sim/cli.ts runs the firmware (src/main.ts) on the XS host, its
 * options mapped to the build's config, against the local endpoint.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { useEndpoint } from '../helpers/e2e';
import { makeTestPki } from '../../tools/provision/certs';
import { ROOT } from '../../tools/xs/firmware';

function sim(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/sim/cli.ts'), ...args], { timeout: 60000, cwd: ROOT }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

describe('npm run sim -- --engine xs', function () {
  this.timeout(60000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));

  it('runs src/main.ts on the XS host over coaps:// with --ca/--hostname/--token/--interval/--speed/--duration', async () => {
    const dev = e2e.server.store.createDevice('sim-xs');
    const r = await sim([
      '--engine', 'xs',
      '--server', `coaps://127.0.0.1:${e2e.server.coapsPort}`,
      '--ca', pki.path('ca.pem'),
      '--hostname', 'localhost',
      '--token', dev.token,
      '--interval', '2',
      '--speed', '2',
      '--duration', '10',
    ]);
    const output = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 0, output);
    assert.match(r.stderr, /engine xs: \d+ modules/);
    assert.match(r.stdout, /ThingsBoard coaps:\/\/127\.0\.0\.1:\d+ \(access token/);
    assert.match(r.stdout, /reporting every 2 s/);
    assert.match(r.stdout, /DTLS session established/);
    const points = e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    // 10 s of device time, a report at start and every 2 s: 5 or 6 reports once the handshake is
    // done; the handshake runs in wall time on a shared machine (at 2x a 2 s wall handshake costs
    // 4 s of device time, and at 10x a loaded CI run got 4): at least 4
    assert.ok(points.length >= 4, `${points.length} reports stored\n${output}`);
    assert.ok(!output.includes(dev.token), 'token never printed');
  });

  it('refuses options the firmware has no config entry for', async () => {
    const r = await sim(['--engine', 'xs', '--server', 'coap://127.0.0.1:5683', '--token', 't', '--non']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--non is not a config entry of the firmware/);
  });
});
