/*
 * The ThingsBoard device API (src/thingsboard) over src/coap and real loopback UDP, against the
 * local endpoint (tools/tb-server) and, for codes it does not produce on demand, a node-coap server.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as coap from 'coap';
import { CoapClient } from '../../src/coap/client';
import { ThingsBoardClient } from '../../src/thingsboard/client';
import { TbError } from '../../src/thingsboard/errors';
import type { TbServer } from '../../tools/tb-server/server';
import { startTbServer } from '../../tools/tb-server/server';
import { ManualClock, ScaledClock } from '../../tools/sim/clock';
import { SeededRandom } from '../../tools/sim/random';
import { UdpDatagram } from '../../tools/sim/udp';

describe('ThingsBoard device API over CoAP (local endpoint, real UDP)', () => {
  let dir: string;
  let server: TbServer;
  const open: UdpDatagram[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-api-'));
    server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, responseDelayMs: 700 });
  });
  after(async () => {
    for (const u of open) u.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function client(credentials: ConstructorParameters<typeof ThingsBoardClient>[1]['credentials']): { tb: ThingsBoardClient; udp: UdpDatagram } {
    const udp = new UdpDatagram('127.0.0.1', server.coapPort);
    open.push(udp);
    const clock = new ScaledClock(1);
    const c = new CoapClient(udp, { clock, random: new SeededRandom(7) });
    return { tb: new ThingsBoardClient(c, { credentials, clock }), udp };
  }

  it('builds token and X.509 paths (no token in the X.509 form)', () => {
    const t = client({ kind: 'token', token: 'abc' }).tb;
    assert.equal(t.path('telemetry'), '/api/v1/abc/telemetry');
    assert.equal(t.path('rpc', '12'), '/api/v1/abc/rpc/12');
    const x = client({ kind: 'x509' }).tb;
    assert.equal(x.path('attributes'), '/api/v1/attributes');
  });

  it('sends telemetry in all three shapes and client attributes', async () => {
    const dev = server.store.createDevice('api-1');
    const { tb } = client({ kind: 'token', token: dev.token });
    await tb.sendTelemetry({ a: 1 });
    await tb.sendTelemetry({ ts: 1_700_000_000_000, values: { b: 'x' } });
    await tb.sendTelemetry([{ ts: 1_700_000_001_000, values: { c: true } }, { d: 2.5 }]);
    await tb.sendAttributes({ fw: 'v1.0' });
    const latest = server.store.latestTelemetry(dev.id);
    assert.equal(latest.a!.value, 1);
    assert.deepEqual([latest.b!.value, latest.b!.ts], ['x', 1_700_000_000_000]);
    assert.equal(latest.c!.value, true);
    assert.equal(latest.d!.value, 2.5);
    assert.equal(server.store.attributes(dev.id).client.fw, 'v1.0');
  });

  it('requests attributes by key through a separate (slow) response; nothing found is empty, not an error', async () => {
    const dev = server.store.createDevice('api-2');
    server.store.setSharedAttributes(dev.id, { s1: 5, s2: 'y' });
    server.store.setClientAttributes(dev.id, { c1: 1 });
    const { tb } = client({ kind: 'token', token: dev.token });
    const snap = await tb.requestAttributes({ clientKeys: ['c1'], sharedKeys: ['s2'] });
    assert.deepEqual(snap, { client: { c1: 1 }, shared: { s2: 'y' } });
    assert.deepEqual(await tb.requestAttributes({ sharedKeys: ['nope'] }), { client: {}, shared: {} });
  });

  it('client-side RPC gets the rule chain reply', async () => {
    const dev = server.store.createDevice('api-3');
    const { tb } = client({ kind: 'token', token: dev.token });
    const reply = (await tb.callRpc('getTime', {})) as { time: number };
    assert.ok(Math.abs(reply.time - Date.now()) < 5000);
  });

  it('claims a device', async () => {
    const dev = server.store.createDevice('api-4');
    const { tb } = client({ kind: 'token', token: dev.token });
    await tb.claim('s3cret', 60000);
    assert.ok(server.store.findDevice('api-4')!.claim, 'claim recorded');
  });

  it('provisions a new device and uses the returned token; a bad secret rejects with NOT_FOUND', async () => {
    server.store.addProfile({ key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const { tb } = client({ kind: 'token', token: 'unset' });
    const res = await tb.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'ps', deviceName: 'prov-1' });
    assert.equal(res.credentialsType, 'ACCESS_TOKEN');
    assert.ok(res.credentialsValue.length >= 8);
    tb.resume({ kind: 'token', token: res.credentialsValue });
    await tb.sendTelemetry({ provisioned: 1 });
    const dev = server.store.findDevice('prov-1')!;
    assert.equal(server.store.latestTelemetry(dev.id).provisioned!.value, 1);
    await assert.rejects(
      tb.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'wrong' }),
      (e: TbError) => e.code === 'bad-request' && /NOT_FOUND/.test(e.message) && !e.message.includes('wrong'),
    );
  });

  it('4.01 stops the client: later calls reject without sending; resume() with new credentials lifts it', async () => {
    const { tb, udp } = client({ kind: 'token', token: 'bogus-token-xyz' });
    await assert.rejects(tb.sendTelemetry({ a: 1 }), (e: TbError) => e.code === 'unauthorized' && !e.message.includes('bogus-token-xyz'));
    const sent = udp.stats.datagramsSent;
    await assert.rejects(tb.sendAttributes({ a: 1 }), (e: TbError) => e.code === 'stopped');
    assert.equal(udp.stats.datagramsSent, sent, 'nothing sent after the stop');
    const dev = server.store.createDevice('api-5');
    tb.resume({ kind: 'token', token: dev.token });
    await tb.sendTelemetry({ a: 2 });
    assert.equal(server.store.latestTelemetry(dev.id).a!.value, 2);
  });

  it('4.00 for a bad payload is a bad-request error', async () => {
    const dev = server.store.createDevice('api-6');
    const { tb } = client({ kind: 'token', token: dev.token });
    await assert.rejects(tb.sendTelemetry([1, 2] as never), (e: TbError) => e.code === 'bad-request' && e.coapCode === '4.00');
  });

  it('NON uplink with No-Response: one datagram each way at most, the 2.01 suppressed, value stored', async () => {
    const dev = server.store.createDevice('api-7');
    const udp = new UdpDatagram('127.0.0.1', server.coapPort);
    open.push(udp);
    const clock = new ScaledClock(1);
    const tb = new ThingsBoardClient(new CoapClient(udp, { clock, random: new SeededRandom(3) }), {
      credentials: { kind: 'token', token: dev.token },
      clock,
      uplink: 'non-no-response',
    });
    await tb.sendTelemetry({ non: 7 });
    const deadline = Date.now() + 3000;
    while (!server.store.latestTelemetry(dev.id).non && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.store.latestTelemetry(dev.id).non!.value, 7);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(udp.stats.datagramsSent, 1);
    assert.equal(udp.stats.datagramsReceived, 0, 'No-Response=2 suppressed the 2.01 (RFC 7967)');
  });
});

describe('ThingsBoard uplink modes', () => {
  let dir: string;
  let server: TbServer;
  const open: UdpDatagram[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-uplink-'));
    server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir });
  });
  after(async () => {
    for (const u of open) u.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  function client(token: string, uplink: 'non' | 'non-no-response', responseTimeout = 2000) {
    const udp = new UdpDatagram('127.0.0.1', server.coapPort);
    open.push(udp);
    const clock = new ScaledClock(1);
    const coap = new CoapClient(udp, { clock, random: new SeededRandom(9), transmission: { responseTimeout } });
    return { udp, tb: new ThingsBoardClient(coap, { credentials: { kind: 'token', token }, clock, uplink }) };
  }

  it("'non': NON request, ThingsBoard's NON 2.01 awaited: one datagram each way, confirmed", async () => {
    const dev = server.store.createDevice('up-non');
    const { udp, tb } = client(dev.token, 'non');
    await tb.sendTelemetry({ ts: 1_700_000_000_000, values: { n: 1 } });
    assert.equal(server.store.latestTelemetry(dev.id).n!.value, 1);
    assert.deepEqual([udp.stats.datagramsSent, udp.stats.datagramsReceived], [1, 1]);
  });

  it("'non': a lost request is a timeout (the caller replays), not a silent success", async () => {
    const dev = server.store.createDevice('up-non-loss');
    const { udp, tb } = client(dev.token, 'non', 300);
    udp.faults = { dropOutIndexes: [1] };
    await assert.rejects(tb.sendTelemetry({ ts: 1_700_000_000_000, values: { n: 2 } }), (e: TbError) => e.code === 'timeout');
    await tb.sendTelemetry({ ts: 1_700_000_000_000, values: { n: 2 } });
    assert.equal(server.store.telemetry(dev.id, ['n']).n!.length, 1);
  });

  it("'non-no-response': a 4.01 still comes back and stops the client", async () => {
    const { tb } = client('no-such-token-abc', 'non-no-response');
    await tb.sendTelemetry({ a: 1 }); // resolves at once: unconfirmed
    const deadline = Date.now() + 2000;
    while (!tb.stopped && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(tb.stopped?.code, 'unauthorized');
    await assert.rejects(tb.sendTelemetry({ a: 2 }), (e: TbError) => e.code === 'stopped');
  });
});

describe('ThingsBoard 5.00 back-off (node-coap server answering 5.00)', () => {
  it('5.00 becomes server-error with a doubling back-off that a success clears', async () => {
    let fail = 2;
    const srv = coap.createServer((req: any, res: any) => {
      res.code = fail-- > 0 ? '5.00' : '2.01';
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv as any)._sock.address().port as number;
    const udp = new UdpDatagram('127.0.0.1', port);
    const clock = new ManualClock(0);
    const real = new ScaledClock(1);
    const tb = new ThingsBoardClient(new CoapClient(udp, { clock: real, random: new SeededRandom(1) }), {
      credentials: { kind: 'token', token: 't' },
      clock,
      backoffInitialMs: 5000,
    });
    try {
      await assert.rejects(tb.sendTelemetry({ a: 1 }), (e: TbError) => e.code === 'server-error' && e.coapCode === '5.00');
      assert.equal(tb.retryAfter, 5000);
      await assert.rejects(tb.sendTelemetry({ a: 1 }), (e: TbError) => e.code === 'server-error');
      assert.equal(tb.retryAfter, 10000, 'doubled');
      clock.advance(10001);
      assert.equal(tb.retryAfter, 0, 'expired');
      await tb.sendTelemetry({ a: 1 });
      assert.equal(tb.retryAfter, 0);
    } finally {
      udp.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
