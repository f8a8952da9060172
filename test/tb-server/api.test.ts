import { strict as assert } from 'node:assert';
import { Client, http, sleep, startTemp } from './helpers';

type Tb = Awaited<ReturnType<typeof startTemp>>;

describe('tb-server /api/v1 request/response', () => {
  let tb: Tb;
  let c: Client;
  const TOKEN = 'A1_TEST_TOKEN';
  const tel = `/api/v1/${TOKEN}/telemetry`;
  const attr = `/api/v1/${TOKEN}/attributes`;

  before(async () => {
    tb = await startTemp();
    tb.store.createDevice('dev-a', { token: TOKEN });
    c = new Client(tb.coapPort);
  });
  after(async () => {
    await c.close();
    await tb.close();
  });

  const latest = (): Record<string, { ts: number; value: unknown }> => tb.store.latestTelemetry(tb.store.findDevice('dev-a')!.id);

  describe('telemetry', () => {
    it('accepts a flat object with server time, typed values, nulls skipped', async () => {
      const before = Date.now();
      const r = await c.request({ method: 'POST', pathname: tel, payload: '{"t":21.5,"n":3,"s":"abc","b":true,"o":{"x":[1,2]},"z":null,"ns":"42","big":"123456789012345678901234"}' });
      assert.equal(r.code, '2.01');
      const l = latest();
      assert.equal(l.t.value, 21.5);
      assert.equal(l.n.value, 3);
      assert.equal(l.s.value, 'abc');
      assert.equal(l.b.value, true);
      assert.deepEqual(l.o.value, { x: [1, 2] });
      assert.equal(l.z, undefined);
      assert.equal(l.ns.value, 42, 'numeric strings are cast (JSON_TYPE_CAST_ENABLED)');
      assert.equal(l.big.value, '123456789012345678901234', 'integers beyond a long stay strings');
      assert.ok(l.t.ts >= before && l.t.ts <= Date.now());
    });

    it('accepts {ts, values}, arrays and mixed arrays', async () => {
      assert.equal((await c.request({ method: 'POST', pathname: tel, payload: '{"ts":1700000000000,"values":{"k1":1}}' })).code, '2.01');
      assert.equal(latest().k1.ts, 1700000000000);
      const r = await c.request({ method: 'POST', pathname: tel, payload: '[{"ts":1700000001000,"values":{"k2":"v"}},{"k3":false}]' });
      assert.equal(r.code, '2.01');
      assert.equal(latest().k2.ts, 1700000001000);
      assert.equal(latest().k3.value, false);
      const h = await http(tb, 'GET', '/api/devices/dev-a/telemetry?keys=k1,k2');
      assert.equal(h.status, 200);
      assert.deepEqual(Object.keys(h.json).sort(), ['k1', 'k2']);
      assert.deepEqual(h.json.k1, [{ ts: 1700000000000, value: 1 }]);
    });

    it('an object with ts but no values is a flat object', async () => {
      assert.equal((await c.request({ method: 'POST', pathname: tel, payload: '{"ts":5,"q":1}' })).code, '2.01');
      assert.equal(latest().ts.value, 5);
    });

    for (const [name, body] of [
      ['invalid JSON', '{"a":'], ['empty body', ''], ['array of numbers', '[1,2]'], ['a number', '42'], ['a string', '"x"'],
      ['values not an object', '{"ts":1,"values":3}'],
    ] as const) {
      it(`returns 4.00 for ${name}`, async () => {
        const r = await c.request({ method: 'POST', pathname: tel, payload: body });
        assert.equal(r.code, '4.00');
      });
    }

    it('newest-first history over admin HTTP', async () => {
      for (const v of [1, 2, 3]) {
        await c.request({ method: 'POST', pathname: tel, payload: JSON.stringify({ ts: 1000 + v, values: { hist: v } }) });
      }
      const h = await http(tb, 'GET', '/api/devices/dev-a/telemetry?keys=hist');
      assert.deepEqual(h.json.hist.map((p: { value: number }) => p.value), [3, 2, 1]);
    });

    it('NON request gets a NON 2.01', async () => {
      const r = await c.request({ method: 'POST', pathname: tel, payload: '{"non":1}', confirmable: false });
      assert.equal(r.code, '2.01');
      assert.equal(latest().non.value, 1);
    });

    it('feature segment is case-insensitive', async () => {
      const r = await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/TeLeMeTrY`, payload: '{"cs":1}' });
      assert.equal(r.code, '2.01');
    });
  });

  describe('attributes', () => {
    it('POST stores client attributes; arrays are 4.00', async () => {
      assert.equal((await c.request({ method: 'POST', pathname: attr, payload: '{"fw":"v1.0","serial":"SN1","ver":"1.0"}' })).code, '2.01');
      assert.equal((await c.request({ method: 'POST', pathname: attr, payload: '[{"a":1}]' })).code, '4.00');
      assert.equal((await c.request({ method: 'POST', pathname: attr, payload: 'nope' })).code, '4.00');
      const h = await http(tb, 'GET', '/api/devices/dev-a/attributes');
      // like TB with JSON_TYPE_CAST_ENABLED: the numeric-looking string "1.0" becomes the number 1.0
      assert.deepEqual(h.json.client, { fw: 'v1.0', serial: 'SN1', ver: 1 });
    });

    it('GET with keys returns only found sections; nothing found is 4.04; no keys returns all', async () => {
      assert.equal((await http(tb, 'POST', '/api/devices/dev-a/attributes/shared', { interval: 30, mode: 'eco' })).status, 200);
      await http(tb, 'POST', '/api/devices/dev-a/attributes/shared', { fwv: '1.0' });
      assert.deepEqual((await c.request({ pathname: attr, query: 'sharedKeys=fwv' })).json, { shared: { fwv: '1.0' } }, 'admin values are not type-cast');
      await http(tb, 'DELETE', '/api/devices/dev-a/attributes/shared?keys=fwv');
      let r = await c.request({ pathname: attr, query: 'clientKeys=fw&sharedKeys=interval,missing' });
      assert.equal(r.code, '2.05');
      assert.deepEqual(r.json, { client: { fw: 'v1.0' }, shared: { interval: 30 } });
      r = await c.request({ pathname: attr, query: 'sharedKeys=mode' });
      assert.deepEqual(r.json, { shared: { mode: 'eco' } }, 'empty client section omitted');
      r = await c.request({ pathname: attr, query: 'sharedKeys=nope' });
      assert.equal(r.code, '4.04');
      r = await c.request({ pathname: attr });
      assert.deepEqual(r.json, { client: { fw: 'v1.0', serial: 'SN1', ver: 1 }, shared: { interval: 30, mode: 'eco' } });
      assert.equal(r.headers['Content-Format'], 'application/json');
    });
  });

  describe('paths, methods, auth', () => {
    it('unknown token is 4.01 and the token is not logged', async () => {
      const r = await c.request({ method: 'POST', pathname: '/api/v1/NOT_A_TOKEN_XYZ/telemetry', payload: '{"a":1}' });
      assert.equal(r.code, '4.01');
      assert.ok(tb.lines.some((l) => l.includes('<unknown token>')));
      assert.ok(!tb.lines.some((l) => l.includes('NOT_A_TOKEN_XYZ')), 'token leaked into the log');
      assert.ok(!tb.lines.some((l) => l.includes(TOKEN)), 'device token leaked into the log');
    });

    it('unknown top-level path is 4.04', async () => {
      assert.equal((await c.request({ pathname: '/nope' })).code, '4.04');
      assert.equal((await c.request({ pathname: '/api/v2/x/telemetry' })).code, '4.04');
    });

    it('PUT and DELETE on /api/v1 are 4.05, any method on /api is 4.05', async () => {
      assert.equal((await c.request({ method: 'PUT', pathname: tel, payload: '{}' })).code, '4.05');
      assert.equal((await c.request({ method: 'DELETE', pathname: attr })).code, '4.05');
      assert.equal((await c.request({ pathname: '/api' })).code, '4.05');
      assert.ok(!tb.lines.some((l) => l.includes(TOKEN)), 'device token leaked into the log');
    });

    it('unknown feature, GET telemetry and plain GET rpc are 4.00', async () => {
      assert.equal((await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/firmware`, payload: '{}' })).code, '4.00');
      assert.equal((await c.request({ pathname: tel })).code, '4.00');
      assert.equal((await c.request({ pathname: `/api/v1/${TOKEN}/rpc` })).code, '4.00');
      assert.equal((await c.request({ method: 'POST', pathname: '/api/v1/telemetry', payload: '{}' })).code, '4.01', 'no token, no certificate');
    });
  });

  describe('client-side RPC and claim', () => {
    it('getTime returns the server time, other methods an error', async () => {
      let r = await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/rpc`, payload: '{"method":"getTime","params":{}}' });
      assert.equal(r.code, '2.05');
      assert.ok(Math.abs((r.json as { time: number }).time - Date.now()) < 5000);
      r = await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/rpc`, payload: '{"method":"other"}' });
      assert.deepEqual(r.json, { error: 'no rule chain' });
    });

    it('malformed client RPC gets no response', async () => {
      const r = await c.maybe({ method: 'POST', pathname: `/api/v1/${TOKEN}/rpc`, payload: '{"params":1}' }, 800);
      assert.equal(r, null);
    });

    it('claim with and without body is 2.01', async () => {
      assert.equal((await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/claim`, payload: '{"secretKey":"s","durationMs":60000}' })).code, '2.01');
      assert.equal((await c.request({ method: 'POST', pathname: `/api/v1/${TOKEN}/claim` })).code, '2.01');
      assert.equal(tb.store.findDevice('dev-a')!.claim!.secretKey, '');
    });
  });

  describe('provision', () => {
    before(async () => {
      assert.equal((await http(tb, 'POST', '/api/provision-profiles', { key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' })).status, 201);
      assert.equal((await http(tb, 'POST', '/api/provision-profiles', { key: 'pre', secret: 'pres', strategy: 'CHECK_PRE_PROVISIONED_DEVICES' })).status, 201);
    });

    it('creates a device and returns its access token', async () => {
      const r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"prov-1","provisionDeviceKey":"pk","provisionDeviceSecret":"ps"}' });
      assert.equal(r.code, '2.01');
      const body = r.json as { credentialsValue: string; credentialsType: string; status: string };
      assert.equal(body.status, 'SUCCESS');
      assert.equal(body.credentialsType, 'ACCESS_TOKEN');
      assert.equal(tb.store.findDevice('prov-1')!.token, body.credentialsValue);
      // the new token works
      const t = await c.request({ method: 'POST', pathname: `/api/v1/${body.credentialsValue}/telemetry`, payload: '{"p":1}' });
      assert.equal(t.code, '2.01');
      assert.equal(r.headers['Content-Format'], undefined, 'provision responses carry no Content-Format');
    });

    it('accepts a chosen token and the /api/v1/x/provision form', async () => {
      const r = await c.request({ method: 'POST', pathname: '/api/v1/x/provision', payload: '{"deviceName":"prov-2","provisionDeviceKey":"pk","provisionDeviceSecret":"ps","token":"MY_TOKEN_2"}' });
      assert.equal(r.code, '2.01');
      assert.equal((r.json as { credentialsValue: string }).credentialsValue, 'MY_TOKEN_2');
    });

    it('bad key or secret is 4.00 NOT_FOUND', async () => {
      const r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"x","provisionDeviceKey":"pk","provisionDeviceSecret":"wrong"}' });
      assert.equal(r.code, '4.00');
      assert.deepEqual(r.json, { errorMsg: 'Provision data was not found!', status: 'NOT_FOUND' });
    });

    it('existing device under ALLOW_CREATE_NEW_DEVICES is FAILURE; missing fields are 4.00 without body', async () => {
      let r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"prov-1","provisionDeviceKey":"pk","provisionDeviceSecret":"ps"}' });
      assert.equal(r.code, '4.00');
      assert.deepEqual(r.json, { errorMsg: 'Failed to provision device!', status: 'FAILURE' });
      r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"y"}' });
      assert.equal(r.code, '4.00');
      assert.equal(r.payload.length, 0);
    });

    it('CHECK_PRE_PROVISIONED_DEVICES succeeds once for an existing device', async () => {
      tb.store.createDevice('pre-1', { token: 'PRE_TOKEN_1' });
      const body = '{"deviceName":"pre-1","provisionDeviceKey":"pre","provisionDeviceSecret":"pres"}';
      let r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: body });
      assert.equal(r.code, '2.01');
      assert.equal((r.json as { credentialsValue: string }).credentialsValue, 'PRE_TOKEN_1');
      r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: body });
      assert.equal((r.json as { status: string }).status, 'FAILURE');
      r = await c.request({ method: 'POST', pathname: '/api/v1/provision', payload: '{"deviceName":"nobody","provisionDeviceKey":"pre","provisionDeviceSecret":"pres"}' });
      assert.equal((r.json as { status: string }).status, 'FAILURE');
    });
  });

  describe('OTA /fw', () => {
    const image = Buffer.from(Buffer.alloc(3000).map((_, i) => i % 251));
    before(async () => {
      const r = await http(tb, 'POST', '/api/devices/dev-a/ota', { title: 'fw', version: '2.0', data: image.toString('base64') });
      assert.equal(r.status, 200);
      assert.equal(r.json.fw_size, 3000);
    });

    it('serves chunks, nothing past the end, 4.00 on version mismatch, 4.01 bad token, 4.05 POST', async () => {
      let r = await c.request({ pathname: `/fw/${TOKEN}`, query: 'title=fw&version=2.0&size=512&chunk=1' });
      assert.equal(r.code, '2.05');
      assert.deepEqual(r.payload, image.subarray(512, 1024));
      r = await c.request({ pathname: `/fw/${TOKEN}`, query: 'title=fw&version=2.0&size=512&chunk=5' });
      assert.equal(r.payload.length, 3000 - 5 * 512);
      assert.equal(await c.maybe({ pathname: `/fw/${TOKEN}`, query: 'title=fw&version=2.0&size=512&chunk=6' }, 800), null);
      assert.equal((await c.request({ pathname: `/fw/${TOKEN}`, query: 'title=fw&version=1.0&size=512&chunk=0' })).code, '4.00');
      assert.equal((await c.request({ pathname: '/fw/BAD', query: 'size=512&chunk=0' })).code, '4.01');
      assert.equal((await c.request({ method: 'POST', pathname: `/fw/${TOKEN}` })).code, '4.05');
      assert.equal((await c.request({ pathname: `/sw/${TOKEN}` })).code, '4.04', 'no software package');
    });

    it('serves the whole image with Block2 when no size is given', async () => {
      const r = await c.request({ pathname: `/fw/${TOKEN}`, query: 'title=fw&version=2.0', timeoutMs: 5000 });
      assert.equal(r.code, '2.05');
      assert.deepEqual(r.payload, image);
    });
  });

  describe('response timing', () => {
    let slow: Tb;
    let sc: Client;
    before(async () => {
      slow = await startTemp({ responseDelayMs: 700, piggybackTimeoutMs: 200 });
      slow.store.createDevice('s', { token: 'SLOW_TOKEN' });
      sc = new Client(slow.coapPort);
    });
    after(async () => { await sc.close(); await slow.close(); });

    it('slow attribute request and client RPC still answer (empty ACK then separate response)', async () => {
      const t0 = Date.now();
      const r = await sc.request({ pathname: '/api/v1/SLOW_TOKEN/rpc', method: 'POST', payload: '{"method":"getTime"}' });
      assert.equal(r.code, '2.05');
      assert.ok(Date.now() - t0 >= 650);
      await http(slow, 'POST', '/api/devices/s/attributes/shared', { a: 1 });
      const a = await sc.request({ pathname: '/api/v1/SLOW_TOKEN/attributes' });
      assert.deepEqual(a.json, { shared: { a: 1 } });
    });

    it('a client-RPC handler slower than COAP_TIMEOUT gets no response', async () => {
      const t = await startTemp({ coapTimeoutMs: 300, clientRpc: () => new Promise((r) => setTimeout(() => r({ late: true }), 600)) });
      const tc = new Client(t.coapPort);
      try {
        t.store.createDevice('t', { token: 'RPC_TO_TOKEN' });
        assert.equal(await tc.maybe({ method: 'POST', pathname: '/api/v1/RPC_TO_TOKEN/rpc', payload: '{"method":"x"}' }, 1000), null);
      } finally {
        await tc.close();
        await t.close();
      }
    });

    it('past COAP_TIMEOUT there is no response at all', async () => {
      const t = await startTemp({ responseDelayMs: 400, coapTimeoutMs: 300 });
      const tc = new Client(t.coapPort);
      try {
        t.store.createDevice('t', { token: 'TO_TOKEN' });
        assert.equal(await tc.maybe({ pathname: '/api/v1/TO_TOKEN/attributes' }, 1000), null);
      } finally {
        await tc.close();
        await t.close();
      }
    });
  });

  it('close() releases its sockets and timers (nothing left to keep a process alive)', async () => {
    const count = () => {
      const c: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) c[r] = (c[r] ?? 0) + 1;
      return c;
    };
    await sleep(10);
    const before = count();
    const t = await startTemp();
    const running = count();
    assert.ok((running.UDPWrap ?? 0) > (before.UDPWrap ?? 0), 'the CoAP socket was open');
    await t.close();
    await sleep(10);
    const after = count();
    for (const kind of ['UDPWrap', 'TCPServerWrap', 'Timeout']) {
      assert.ok((after[kind] ?? 0) <= (before[kind] ?? 0), `${kind}: ${before[kind] ?? 0} before, ${after[kind] ?? 0} after close()`);
    }
  });
});
