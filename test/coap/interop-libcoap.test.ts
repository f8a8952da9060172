/*
 * Interop with libcoap's example server (Debian libcoap3-bin) over real loopback UDP:
 * the device's CoAP client against an independent implementation.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { CoapClient } from '../../src/coap/client';
import { getOption } from '../../src/coap/codec';
import { Code, OptionNumber, type CoapResponse } from '../../src/coap/types';
import { decodeUtf8 } from '../../src/coap/utf8';
import { ScaledClock } from '../../tools/sim/clock';
import { cryptoRandom } from '../../tools/sim/random';
import { UdpDatagram } from '../../tools/sim/udp';

const SERVER = '/usr/bin/coap-server-notls';
const HOST = '127.0.0.1';

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('coap interop: libcoap coap-server-notls over loopback UDP', function () {
  this.timeout(20_000);
  let server: ChildProcess | undefined;
  let udp: UdpDatagram;
  let client: CoapClient;
  let serverLog = '';

  before(async () => {
    if (!existsSync(SERVER)) {
      throw new Error(`${SERVER} not found: install it with 'apt-get install libcoap3-bin' (the interop test needs libcoap's server)`);
    }
    const port = await freeUdpPort();
    server = spawn(SERVER, ['-A', HOST, '-p', String(port), '-d', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d: Buffer) => (serverLog += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()));
    udp = new UdpDatagram(HOST, port);
    client = new CoapClient(udp, { clock: new ScaledClock(1), random: cryptoRandom });
    // Wait until the server answers (it needs a moment to bind).
    for (let i = 0; ; i++) {
      try {
        await client.request({ method: 'GET', path: '/', transmission: { ackTimeout: 100, ackRandomFactor: 1, maxRetransmit: 1 } });
        break;
      } catch (e) {
        if (i >= 30 || server.exitCode !== null) throw new Error(`libcoap server did not start: ${(e as Error).message}\n${serverLog}`);
        await sleep(100);
      }
    }
  });

  after(() => {
    client?.close();
    udp?.close();
    server?.kill();
  });

  it('GET /time', async () => {
    const r = await client.request({ method: 'GET', path: '/time' });
    assert.equal(r.code, Code.CONTENT);
    assert.match(decodeUtf8(r.payload), /\d\d:\d\d:\d\d/);
  });

  it('GET /.well-known/core lists /time as observable', async () => {
    const r = await client.request({ method: 'GET', path: '/.well-known/core' });
    assert.equal(r.code, Code.CONTENT);
    assert.match(decodeUtf8(r.payload), /<\/time>[^,]*;obs/);
  });

  it('observes /time: at least 2 notifications with increasing Observe, then cancels', async () => {
    const notes: CoapResponse[] = [];
    let ended = 0;
    const obs = client.observe({ method: 'GET', path: '/time' }, (r) => notes.push(r), () => ended++);
    const reg = await obs.registered;
    assert.equal(reg.code, Code.CONTENT);
    assert.ok(reg.observe !== undefined, 'registration accepted');
    const deadline = Date.now() + 6000;
    while (notes.length < 3 && Date.now() < deadline) await sleep(100);
    assert.ok(notes.length >= 3, `notifications: ${notes.length}`); // registration snapshot + ≥2 notifications
    for (let i = 1; i < notes.length; i++) assert.ok(notes[i]!.observe! > notes[i - 1]!.observe!, 'Observe increases');
    await obs.cancel();
    assert.equal(obs.active, false);
    const count = notes.length;
    await sleep(1500);
    assert.equal(notes.length, count, 'no delivery after cancel');
    assert.equal(ended, 1);
  });

  it('PUT a 3000-byte body with Block1 (256-byte blocks), GET it back with Block2', async () => {
    const body = Uint8Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) & 0xff);
    const before = client.stats.requests;
    const put = await client.request({ method: 'PUT', path: '/interop/blob', payload: body, block1Szx: 4, contentFormat: 42 });
    assert.ok(put.code === Code.CREATED || put.code === Code.CHANGED, `PUT answered ${put.code.toString(16)}`);
    assert.equal(client.stats.requests - before, 12, '3000 bytes in 256-byte blocks = 12 requests');
    const got = await client.request({ method: 'GET', path: '/interop/blob', block2Szx: 4 });
    assert.equal(got.code, Code.CONTENT);
    assert.deepEqual(got.payload, body);
    const b2 = getOption(got, OptionNumber.BLOCK2);
    assert.ok(b2, 'the response came block-wise');
    assert.equal(client.stats.timeouts, 0);
    assert.equal(client.stats.malformed, 0);
  });

  it('PUT /example_data block-wise and read it back', async () => {
    const body = Uint8Array.from({ length: 2500 }, (_, i) => 65 + (i % 26));
    const put = await client.request({ method: 'PUT', path: '/example_data', payload: body, block1Szx: 4 });
    assert.ok(put.code === Code.CREATED || put.code === Code.CHANGED, `PUT answered ${put.code.toString(16)}`);
    const got = await client.request({ method: 'GET', path: '/example_data', block2Szx: 4 });
    assert.deepEqual(got.payload, body);
  });

  it('unknown resource answers 4.04 (resolved, not thrown)', async () => {
    const r = await client.request({ method: 'GET', path: '/does/not/exist' });
    assert.equal(r.code, Code.NOT_FOUND);
  });
});
