import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import * as dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { Store, HISTORY_LIMIT, certSha3FromPem } from '../../tools/tb-server/store';
import { Client, http, startTemp, tempDir } from './helpers';

describe('tb-server persistence', () => {
  it('keeps one telemetry point per (key, ts), like ThingsBoard\'s ts_kv: a replayed report replaces itself', () => {
    const store = new Store(tempDir());
    const dev = store.createDevice('replay');
    store.saveTelemetry(dev.id, [{ ts: 1000, values: { t: 1, h: 5 } }]);
    store.saveTelemetry(dev.id, [{ ts: 1000, values: { t: 2 } }, { ts: 2000, values: { t: 3 } }]);
    assert.deepEqual(store.telemetry(dev.id, ['t']).t, [{ ts: 2000, value: 3 }, { ts: 1000, value: 2 }]);
    assert.deepEqual(store.telemetry(dev.id, ['h']).h, [{ ts: 1000, value: 5 }]);
    store.close();
  });

  it('devices, telemetry, attributes, profiles and power settings survive a restart', async () => {
    const dataDir = tempDir();
    let tb = await startTemp({ dataDir });
    let c = new Client(tb.coapPort);
    try {
      const created = await http(tb, 'POST', '/api/devices', { name: 'keep', token: 'KEEP_TOKEN' });
      assert.equal(created.status, 201);
      assert.equal((await c.request({ method: 'POST', pathname: '/api/v1/KEEP_TOKEN/telemetry', payload: '{"t":7}' })).code, '2.01');
      await c.request({ method: 'POST', pathname: '/api/v1/KEEP_TOKEN/attributes', payload: '{"fw":"a1"}' });
      await http(tb, 'POST', '/api/devices/keep/attributes/shared', { s: 1 });
      await http(tb, 'PUT', '/api/devices/keep/power', { powerMode: 'PSM', psmActivityTimer: 5000 });
      await http(tb, 'POST', '/api/provision-profiles', { key: 'k', secret: 's', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    } finally {
      await c.close();
      await tb.close();
    }
    assert.ok(fs.existsSync(path.join(dataDir, 'state.json')));
    assert.deepEqual(fs.readdirSync(dataDir).filter((f) => f.endsWith('.tmp')), [], 'no temp files left behind');

    tb = await startTemp({ dataDir });
    c = new Client(tb.coapPort);
    try {
      const devs = await http(tb, 'GET', '/api/devices');
      assert.equal(devs.json.length, 1);
      assert.equal(devs.json[0].name, 'keep');
      assert.equal(devs.json[0].power.powerMode, 'PSM');
      assert.equal((await http(tb, 'GET', '/api/devices/keep/telemetry')).json.t[0].value, 7);
      assert.deepEqual((await http(tb, 'GET', '/api/devices/keep/attributes')).json, { client: { fw: 'a1' }, shared: { s: 1 } });
      // the old token still authenticates, the profile still provisions
      assert.equal((await c.request({ method: 'POST', pathname: '/api/v1/KEEP_TOKEN/telemetry', payload: '{"t":8}' })).code, '2.01');
      const p = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"n","provisionDeviceKey":"k","provisionDeviceSecret":"s"}' });
      assert.equal(p.code, '2.01');
      // device addressed by id as well as by name
      const byId = await http(tb, 'GET', `/api/devices/${devs.json[0].id}/attributes`);
      assert.equal(byId.status, 200);
    } finally {
      await c.close();
      await tb.close();
    }
  });

  it('telemetry history is bounded per device', () => {
    const s = new Store(tempDir(), { historyLimit: 50 });
    const d = s.createDevice('h');
    for (let i = 0; i < 120; i++) s.saveTelemetry(d.id, [{ ts: i, values: { v: i } }]);
    const t = s.telemetry(d.id, ['v']).v;
    assert.equal(t.length, 50);
    assert.equal(t[0].value, 119);
    assert.equal(s.latestTelemetry(d.id).v.value, 119);
    s.close();
    assert.equal(HISTORY_LIMIT, 1000);
  });

  it('a half-written temp file does not corrupt the state', () => {
    const dir = tempDir();
    const s = new Store(dir);
    s.createDevice('x', { token: 'X_TOKEN' });
    s.close();
    fs.writeFileSync(path.join(dir, 'state.json.999.tmp'), '{"version":1,"devi');
    const s2 = new Store(dir);
    assert.equal(s2.byToken('X_TOKEN')?.name, 'x');
    s2.close();
  });

  it('admin HTTP errors: duplicate name 409, unknown device 404, bad JSON 400', async () => {
    const tb = await startTemp();
    try {
      assert.equal((await http(tb, 'POST', '/api/devices', { name: 'dup' })).status, 201);
      assert.equal((await http(tb, 'POST', '/api/devices', { name: 'dup' })).status, 409);
      assert.equal((await http(tb, 'GET', '/api/devices/nope/attributes')).status, 404);
      const res = await fetch(`http://127.0.0.1:${tb.httpPort}/api/devices`, { method: 'POST', body: '{bad', headers: { authorization: `Bearer ${tb.adminToken}` } });
      assert.equal(res.status, 400);
      assert.equal((await http(tb, 'PUT', '/api/devices/dup/power', { powerMode: 'X' })).status, 400);
    } finally {
      await tb.close();
    }
  });
});

describe('tb-server second transport (DTLS hook)', () => {
  it('attachCoapSocket serves a socket-like emitter; x509 auth resolves the device without a token', async () => {
    const tb = await startTemp();
    // Stand-in for a DTLS layer: a plain UDP socket wrapped in the socket-like interface, reporting a
    // client certificate for every peer.
    const inner = dgram.createSocket('udp4');
    await new Promise<void>((r) => inner.bind(0, '127.0.0.1', () => r()));
    const fake = Object.assign(new EventEmitter(), {
      send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (e: Error | null, n?: number) => void) {
        inner.send(buf, offset, length, port, address, cb);
      },
    });
    inner.on('message', (m, rinfo) => fake.emit('message', m, rinfo));
    const pem = '-----BEGIN CERTIFICATE-----\nMIIBfakecertbody==\n-----END CERTIFICATE-----\n';
    const sha3 = certSha3FromPem(pem);
    const created = await http(tb, 'POST', '/api/devices', { name: 'x509-dev', certPem: pem });
    assert.equal(created.json.certSha3, sha3);
    const detach = tb.attachCoapSocket(fake, () => ({ kind: 'x509', certSha3: sha3 }));
    const c = new Client((inner.address()).port);
    try {
      let r = await c.request({ method: 'POST', pathname: '/api/v1/telemetry', payload: '{"secure":1}' });
      assert.equal(r.code, '2.01');
      assert.equal(tb.store.latestTelemetry(tb.store.findDevice('x509-dev')!.id).secure.value, 1);
      // a token in the URL is ignored when the certificate maps to a device
      r = await c.request({ method: 'POST', pathname: '/api/v1/WHATEVER/attributes', payload: '{"a":1}' });
      assert.equal(r.code, '2.01');
      assert.deepEqual(tb.store.attributes(tb.store.findDevice('x509-dev')!.id).client, { a: 1 });
      // plain UDP without token: 4.01
      const plain = new Client(tb.coapPort);
      assert.equal((await plain.request({ method: 'POST', pathname: '/api/v1/telemetry', payload: '{}' })).code, '4.01');
      await plain.close();
    } finally {
      await c.close();
      await detach();
      inner.close();
      await tb.close();
    }
  });
});

describe('tb-server CLI', function () {
  this.timeout(60000);
  const cli = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', path.resolve('tools/tb-server/cli.ts'), ...args], { timeout: 20000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });

  it('prints usage on no or unknown command', async () => {
    const r = await cli([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage:/);
    const u = await cli(['frobnicate']);
    assert.match(u.stderr, /unknown command: frobnicate/);
  });

  it('admin commands against a running server', async () => {
    const tb = await startTemp();
    const h = ['--http', `http://127.0.0.1:${tb.httpPort}`, '--data', tb.dataDir]; // --data: where the admin token is
    const c = new Client(tb.coapPort);
    try {
      const add = await cli(['add-device', 'cli-dev', '--token', 'CLI_TOKEN', ...h]);
      assert.equal(add.code, 0, add.stderr);
      assert.equal(JSON.parse(add.stdout).token, 'CLI_TOKEN');
      assert.equal(JSON.parse((await cli(['devices', ...h])).stdout)[0].name, 'cli-dev');
      await c.request({ method: 'POST', pathname: '/api/v1/CLI_TOKEN/telemetry', payload: '{"t":1}' });
      assert.equal(JSON.parse((await cli(['telemetry', 'cli-dev', ...h])).stdout).t[0].value, 1);
      assert.equal((await cli(['set-shared', 'cli-dev', 'n=5', 'o={"a":1}', 's=text', ...h])).code, 0);
      assert.deepEqual(JSON.parse((await cli(['attributes', 'cli-dev', ...h])).stdout).shared, { n: 5, o: { a: 1 }, s: 'text' });
      const pw = await cli(['power', 'cli-dev', 'PSM', '--activity', '2000', ...h]);
      assert.equal(JSON.parse(pw.stdout).power.psmActivityTimer, 2000);
      const o = await c.observe('/api/v1/CLI_TOKEN/rpc');
      await o.next();
      const rpc = cli(['rpc', 'cli-dev', 'ping', '{"x":1}', '--timeout', '5000', ...h]);
      const n = (await o.next(10000)).json as { id: number; params: unknown };
      assert.deepEqual(n.params, { x: 1 });
      await c.request({ method: 'POST', pathname: `/api/v1/CLI_TOKEN/rpc/${n.id}`, payload: '{"pong":1}' });
      const out = await rpc;
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout).response, { pong: 1 });
      o.close();
      const timeout = await cli(['rpc', 'cli-dev', 'nobody', '--timeout', '200', ...h]);
      assert.notEqual(timeout.code, 0);
      assert.match(timeout.stderr, /504/);
    } finally {
      await c.close();
      await tb.close();
    }
  });
});
