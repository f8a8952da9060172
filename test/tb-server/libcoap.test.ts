// Interop with the client the ThingsBoard docs use: libcoap's coap-client (Debian libcoap3-bin,
// coap-client-notls). The binary must be installed; a missing binary fails with an install hint.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { COAP_CLIENT, coapClient, http, sleep, startTemp } from './helpers';

type Tb = Awaited<ReturnType<typeof startTemp>>;

describe('tb-server with libcoap coap-client-notls', () => {
  let tb: Tb;
  let base: string;
  const TOKEN = 'LIBCOAP_TOKEN';

  before(async () => {
    assert.ok(fs.existsSync(COAP_CLIENT), `${COAP_CLIENT} not found: install it with "apt-get install libcoap3-bin"`);
    tb = await startTemp();
    tb.store.createDevice('lc', { token: TOKEN });
    base = `coap://127.0.0.1:${tb.coapPort}`;
  });
  after(async () => { if (tb) await tb.close(); });

  it('POST telemetry as in the ThingsBoard docs is stored', async () => {
    const r = await coapClient(['-m', 'post', '-t', 'json', '-e', '{"temperature":25}', `${base}/api/v1/${TOKEN}/telemetry`]);
    assert.doesNotMatch(r.stderr + r.stdout, /4\.\d\d|5\.\d\d/);
    const h = await http(tb, 'GET', '/api/devices/lc/telemetry?keys=temperature');
    assert.equal(h.json.temperature[0].value, 25);
  });

  it('NON POST (-N) is stored too', async () => {
    await coapClient(['-N', '-m', 'post', '-t', 'json', '-e', '{"humidity":40.5}', `${base}/api/v1/${TOKEN}/telemetry`]);
    assert.equal(tb.store.latestTelemetry(tb.store.findDevice('lc')!.id).humidity.value, 40.5);
  });

  it('GET attributes?sharedKeys=x returns the shared section', async () => {
    await http(tb, 'POST', '/api/devices/lc/attributes/shared', { x: 'on', y: 2 });
    const r = await coapClient(['-m', 'get', `${base}/api/v1/${TOKEN}/attributes?sharedKeys=x`]);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { shared: { x: 'on' } });
  });

  it('a bad token prints 4.01', async () => {
    const r = await coapClient(['-m', 'post', '-t', 'json', '-e', '{"temperature":25}', `${base}/api/v1/WRONG/telemetry`]);
    assert.match(r.stderr + r.stdout, /4\.01/);
  });

  it('PUT prints 4.05, an unknown path 4.04', async () => {
    assert.match(Object.values(await coapClient(['-m', 'put', '-e', '{}', `${base}/api/v1/${TOKEN}/telemetry`])).join(''), /4\.05/);
    assert.match(Object.values(await coapClient(['-m', 'get', `${base}/unknown`])).join(''), /4\.04/);
  });

  it('client-side RPC answers with JSON', async () => {
    const r = await coapClient(['-m', 'post', '-t', 'json', '-e', '{"method":"getTime","params":{}}', `${base}/api/v1/${TOKEN}/rpc`]);
    assert.ok(typeof (JSON.parse(r.stdout.trim()) as { time: number }).time === 'number');
  });

  it('observe (-s) receives the snapshot and a later change', async () => {
    const run = coapClient(['-m', 'get', '-s', '2', `${base}/api/v1/${TOKEN}/attributes`], 10000);
    await sleep(600);
    await http(tb, 'POST', '/api/devices/lc/attributes/shared', { y: 3 });
    const r = await run;
    // coap-client prints notification payloads back to back, without separators
    const lines = r.stdout.trim().replace(/\}\s*\{/g, '}\n{').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(lines[0], { x: 'on', y: 2 });
    assert.deepEqual(lines[1], { y: 3 });
  });

  it('server RPC round trip: observe /rpc with coap-client, reply with coap-client', async () => {
    const run = coapClient(['-m', 'get', '-s', '2', `${base}/api/v1/${TOKEN}/rpc`], 10000);
    await sleep(500);
    const call = http(tb, 'POST', '/api/devices/lc/rpc', { method: 'blink', params: { times: 2 }, timeoutMs: 5000 });
    const r = await run;
    const rpc = JSON.parse(r.stdout.trim().replace(/\}\s*\{/g, '}\n{').split('\n').filter(Boolean)[0]) as { id: number; method: string };
    assert.equal(rpc.method, 'blink');
    await coapClient(['-m', 'post', '-t', 'json', '-e', '{"blinked":2}', `${base}/api/v1/${TOKEN}/rpc/${rpc.id}`]);
    assert.deepEqual((await call).json, { id: rpc.id, response: { blinked: 2 } });
  });

  it('OTA chunk with size/chunk (TB timing: empty ACK, then separate CON response)', async () => {
    const image = Buffer.from(Buffer.alloc(5000).map((_, i) => (i * 7) % 256));
    await http(tb, 'POST', '/api/devices/lc/ota', { title: 'app', version: '1.1', data: image.toString('base64') });
    const out = path.join(tb.dataDir, 'chunk.bin');
    await coapClient(['-m', 'get', '-o', out, `${base}/fw/${TOKEN}?title=app&version=1.1&size=256&chunk=3`]);
    assert.deepEqual(fs.readFileSync(out), image.subarray(768, 1024));
  });

  it('whole OTA image through Block2 (piggyback mode; see docs: libcoap 4.3.1 drops Block2 in a separate response)', async () => {
    const pb = await startTemp({ conResponses: 'piggyback' });
    try {
      const d = pb.store.createDevice('lc2', { token: 'LC2_TOKEN' });
      const image = Buffer.from(Buffer.alloc(5000).map((_, i) => (i * 13) % 256));
      pb.store.setOta(d.id, { type: 'fw', title: 'app', version: '2', data: image.toString('base64'), checksumAlgorithm: 'SHA256', checksum: '' });
      const out = path.join(pb.dataDir, 'fw.bin');
      await coapClient(['-m', 'get', '-o', out, `coap://127.0.0.1:${pb.coapPort}/fw/LC2_TOKEN?title=app&version=2`], 10000);
      assert.deepEqual(fs.readFileSync(out), image);
    } finally {
      await pb.close();
    }
  });

  it('a large telemetry POST arrives through Block1 (-b 256)', async () => {
    const big = 'x'.repeat(3000);
    await coapClient(['-b', '256', '-m', 'post', '-t', 'json', '-e', JSON.stringify({ big }), `${base}/api/v1/${TOKEN}/telemetry`]);
    assert.equal(tb.store.latestTelemetry(tb.store.findDevice('lc')!.id).big.value, big);
  });

  it('provision', async () => {
    await http(tb, 'POST', '/api/provision-profiles', { key: 'lk', secret: 'ls', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const r = await coapClient(['-m', 'post', '-t', 'json', '-e', '{"deviceName":"lc-prov","provisionDeviceKey":"lk","provisionDeviceSecret":"ls"}', `${base}/api/v1/provision`]);
    const body = JSON.parse(r.stdout.trim()) as { status: string; credentialsValue: string };
    assert.equal(body.status, 'SUCCESS');
    assert.equal(tb.store.findDevice('lc-prov')!.token, body.credentialsValue);
  });
});
