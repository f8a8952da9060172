/*
 * A device run ends after --duration of device time whatever the server does, with a summary and
 * the exit code: 1 when nothing (or not everything) was delivered, 0 when everything was.
 */
import { strict as assert } from 'node:assert';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOOLS, runTool } from './helpers';
import { Store } from '../../tools/tb-server/store';

function summaryOf(stdout: string): { deviceS: number; taken: number; delivered: number; queued: number; sent: number } {
  const head = /^summary \(--duration reached\): ([\d.]+) s device time/m.exec(stdout);
  const r = /^  readings: (\d+) taken, (\d+) delivered, (\d+) queued, (\d+) dropped$/m.exec(stdout);
  const t = /^  traffic: +(\d+) datagrams sent \((\d+) B\), (\d+) received \((\d+) B\)$/m.exec(stdout);
  assert.ok(head && r && t, `no summary after --duration:\n${stdout}`);
  return { deviceS: Number(head[1]), taken: Number(r[1]), delivered: Number(r[2]), queued: Number(r[3]), sent: Number(t[1]) };
}

describe('cli: --duration, summary and exit code', function () {
  this.timeout(120000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'cli-run-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a silent server: a 30 s run ends at 30 s of device time with exit 1 and a summary (nothing delivered)', async () => {
    const silent = dgram.createSocket('udp4');
    let received = 0;
    silent.on('message', () => received++); // never answers
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    writeFileSync(join(dir, 'token.txt'), 'SILENT_TOKEN_1\n');
    try {
      const r = await runTool(TOOLS.sim, [
        '--server', `coap://127.0.0.1:${silent.address().port}`, '--token-file', join(dir, 'token.txt'),
        '--duration', '30s', '--speed', '10', '--interval', '10s', '--quiet',
      ]);
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      const s = summaryOf(r.stdout);
      // Readings at 0, 10, 20 (and 30) s of device time: the run did not go on for the
      // registrations' retransmissions (282 s before).
      assert.ok(s.taken >= 3 && s.taken <= 4, `taken ${s.taken}\n${r.stdout}`);
      assert.equal(s.delivered, 0);
      assert.equal(s.queued, s.taken);
      assert.ok(received > 0 && s.sent >= received, 'the device did send');
      assert.match(r.stdout, /^exit 1: nothing delivered/m);
      assert.doesNotMatch(r.stdout + r.stderr, /SILENT_TOKEN_1/);
    } finally {
      silent.close();
    }
  });

  it('npm start --quiet against its own endpoint: every reading delivered, exit 0, no trace lines', async () => {
    const data = join(dir, 'tb');
    const r = await runTool(TOOLS.start, ['--coap-port', '0', '--http-port', '0', '--data', data, '--duration', '20s', '--speed', '10', '--interval', '5s', '--quiet']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const s = summaryOf(r.stdout);
    assert.ok(s.taken >= 4 && s.delivered === s.taken && s.queued === 0, r.stdout);
    assert.match(r.stdout, /^exit 0: every reading delivered/m);
    assert.doesNotMatch(r.stdout, /device (->|<-) /, '--quiet hides the datagram trace');
    assert.doesNotMatch(r.stdout, /CON POST \/api\/v1/, '--quiet hides the request lines');
    // The state is kept for the next run; a server-set interval then overrides --interval, once, and says so.
    const state = JSON.parse(readFileSync(join(data, 'state.json'), 'utf8')) as { devices: unknown };
    assert.ok(state.devices);
  });

  it('a reportingInterval kept in the endpoint\'s state overrides --interval: said once, naming both values; --fresh clears it', async () => {
    const data = join(dir, 'tb-override');
    const store = new Store(data);
    store.setSharedAttributes(store.createDevice('sim-device-1').id, { reportingInterval: 3 });
    store.close();
    const args = ['--coap-port', '0', '--http-port', '0', '--data', data, '--duration', '12s', '--speed', '10', '--interval', '5s', '--quiet'];
    const r = await runTool(TOOLS.start, args);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const notes = r.stdout.split('\n').filter((l) => /overrides --interval/.test(l) && /WARN/.test(l));
    assert.equal(notes.length, 1, r.stdout);
    assert.match(notes[0]!, /the server's reporting interval \(3 s\) overrides --interval 5s \(5 s\)/);
    assert.match(r.stdout, /reporting interval now 3 s from shared attribute reportingInterval \(was 5 s from the command line \(--interval\)\)/);
    const fresh = await runTool(TOOLS.start, [...args, '--fresh']);
    assert.equal(fresh.code, 0, `${fresh.stdout}\n${fresh.stderr}`);
    assert.match(fresh.stdout, /--fresh: endpoint state in .* cleared/);
    assert.doesNotMatch(fresh.stdout, /overrides --interval|reporting interval now/);
  });
});

describe('cli: npm start -- --ota', function () {
  this.timeout(180000);
  it('shows a firmware update end to end: package assigned, downloaded, verified, switched, UPDATED from the new image (exit 0)', async () => {
    const r = await runTool(TOOLS.start, ['--ota'], { timeoutMs: 170000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    for (const s of ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED']) assert.match(r.stdout, new RegExp(`fw_state ${s}\\b`));
    assert.match(r.stdout, /--- boots: A 1\.0\.0 \| B 1\.1\.0 trial 1; running 1\.1\.0/);
  });
});
