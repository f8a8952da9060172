/*
 * The endpoint's admin HTTP: a bearer token from the state folder (0600), no foreign Host or
 * Origin (DNS rebinding, text/plain CSRF POSTs); `tb-server reset`; tokens masked in the request
 * log whatever the path form.
 */
import { strict as assert } from 'node:assert';
import { existsSync, rmSync, statSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { Client, startTemp } from '../tb-server/helpers';
import { TOOLS, runTool } from './helpers';

/** A raw request (fetch would not let a test set Host). */
function raw(port: number, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/api/devices', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('cli: admin HTTP authentication, reset, masked request log', function () {
  this.timeout(120000);

  it('needs the bearer token kept 0600 in the state folder; refuses foreign Host and Origin', async () => {
    const tb = await startTemp();
    try {
      const file = join(tb.dataDir, 'admin-token');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.ok(tb.lines.some((l) => l.includes(`admin HTTP on http://127.0.0.1:${tb.httpPort} (bearer token in ${file})`)), tb.lines.join('\n'));
      tb.store.createDevice('victim', { token: 'VICTIM_TOKEN_1' });
      const auth = { authorization: `Bearer ${tb.adminToken}` };
      const ok = await raw(tb.httpPort, { headers: auth });
      assert.equal(ok.status, 200);
      assert.ok(ok.body.includes('VICTIM_TOKEN_1'));
      const none = await raw(tb.httpPort, {});
      assert.equal(none.status, 401);
      assert.ok(!none.body.includes('VICTIM_TOKEN_1'));
      assert.equal((await raw(tb.httpPort, { headers: { authorization: 'Bearer nope' } })).status, 401);
      // DNS rebinding: the browser sends the attacker's name as Host
      assert.equal((await raw(tb.httpPort, { headers: { ...auth, host: `evil.example:${tb.httpPort}` } })).status, 403);
      // a page's text/plain POST: foreign Origin, no token
      const csrf = await raw(tb.httpPort, {
        method: 'POST', path: '/api/devices/victim/attributes/shared', body: '{"reportingInterval":1}',
        headers: { 'content-type': 'text/plain', origin: 'http://evil.example' },
      });
      assert.equal(csrf.status, 403);
      assert.equal((await raw(tb.httpPort, { headers: { ...auth, origin: 'http://evil.example' } })).status, 403);
      assert.deepEqual(tb.store.attributes(tb.store.findDevice('victim')!.id).shared, {});
      // same-origin and localhost are fine
      assert.equal((await raw(tb.httpPort, { headers: { ...auth, host: `localhost:${tb.httpPort}`, origin: `http://localhost:${tb.httpPort}` } })).status, 200);
    } finally {
      await tb.close();
    }
  });

  it('the request log masks the token in every path form', async () => {
    const tb = await startTemp();
    const c = new Client(tb.coapPort);
    try {
      tb.store.createDevice('d', { token: 'LOGGED_TOKEN_1' });
      for (const p of ['/api/v2/LOGGED_TOKEN_1/telemetry', '/API/v1/LOGGED_TOKEN_1/telemetry', '/api/v1/telemetry/LOGGED_TOKEN_1',
        '/Api/V1/LOGGED_TOKEN_1', '/x/LOGGED_TOKEN_1', '/api/v1/LOGGED_TOKEN_1/telemetry'])
        await c.request({ method: 'POST', pathname: p, payload: '{"a":1}' });
      await c.request({ method: 'GET', pathname: '/api/v1/LOGGED_TOKEN_1/attributes', query: 'sharedKeys=a&secret=LOGGED_TOKEN_1' });
      assert.ok(tb.lines.length >= 7, tb.lines.join('\n'));
      assert.ok(!tb.lines.some((l) => l.includes('LOGGED_TOKEN_1')), tb.lines.join('\n'));
      assert.ok(tb.lines.some((l) => l.includes('/api/v2/***/telemetry')), tb.lines.join('\n'));
    } finally {
      await c.close();
      await tb.close();
    }
  });

  it('tb-server reset clears the state (refused while the endpoint runs); devices masks tokens', async () => {
    const tb = await startTemp();
    const admin = ['--http', `http://127.0.0.1:${tb.httpPort}`, '--data', tb.dataDir];
    tb.store.createDevice('d1', { token: 'MASKED_TOKEN_1' });
    tb.store.flush();
    const list = await runTool(TOOLS.tbServer, ['devices', ...admin]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!list.stdout.includes('MASKED_TOKEN_1') && list.stdout.includes('"name": "d1"'), list.stdout);
    const busy = await runTool(TOOLS.tbServer, ['reset', ...admin]);
    assert.equal(busy.code, 2);
    assert.match(busy.stderr, /an endpoint is running at .*stop it first/);
    await tb.close();
    assert.ok(existsSync(join(tb.dataDir, 'state.json')));
    const r = await runTool(TOOLS.tbServer, ['reset', ...admin]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reset: removed state\.json/);
    assert.ok(!existsSync(join(tb.dataDir, 'state.json')));
    assert.ok(existsSync(join(tb.dataDir, 'admin-token')), 'the admin token is kept');
    rmSync(tb.dataDir, { recursive: true, force: true });
  });
});
