// Firmware (and software) chunks over MQTT, reference thingsboard-mqtt.md §1.9: the local
// endpoint's v2/fw + v2/sw topics seen by a raw mqtt-packet peer, by mosquitto_pub and a python3
// paho client (the guide's tools), and the device client's requestFirmwareChunk against it.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import type { MqttThingsBoardOptions } from '../../src/thingsboard/mqtt-client';
import { TbError } from '../../src/thingsboard/errors';
import { ScaledClock } from '../../tools/sim/clock';
import { TcpStreamFactory } from '../../tools/sim/tcp';
import { cryptoRandom } from '../../tools/sim/random';
import type { TbServer } from '../../tools/tb-server/server';
import { RawClient, run, startMqttTb } from './helpers';
import { memoryLog, waitFor } from '../helpers/wait';

const FW = 'v2/fw/response/+/chunk/+';

function setPackage(tb: TbServer, deviceId: string, data: Buffer, type: 'fw' | 'sw' = 'fw', version = '2.0.0'): void {
  tb.store.setOta(deviceId, { type, title: 'app', version, data: data.toString('base64'), checksumAlgorithm: 'SHA256', checksum: createHash('sha256').update(data).digest('hex') });
}

describe('MQTT OTA: the endpoint serves v2/fw and v2/sw as ThingsBoard does', function () {
  this.timeout(20000);
  let tb: TbServer & { lines: string[]; port: number };
  let token: string;
  let deviceId: string;
  const pkg = randomBytes(5000);
  const peers: RawClient[] = [];
  const peer = async (): Promise<RawClient> => {
    const c = new RawClient(tb.port);
    peers.push(c);
    assert.equal((await c.connect(token)).returnCode, 0);
    return c;
  };

  beforeEach(async () => {
    tb = await startMqttTb();
    const d = tb.store.createDevice('ota-mqtt');
    token = d.token;
    deviceId = d.id;
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) p.end();
    await tb.close();
  });

  it('chunks at the subscribed QoS 0: PUBACK, then the bytes; the size remembered per reqId; zero-length past the end', async () => {
    setPackage(tb, deviceId, pkg);
    const c = await peer();
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: FW, qos: 0 }, { topic: 'v2/fw/error', qos: 0 }] });
    assert.deepEqual((await c.next('suback')).granted, [0, 0], 'the exact filters are accepted');
    c.send({ cmd: 'publish', topic: 'v2/fw/request/7/chunk/0', payload: Buffer.from('1024'), qos: 1, messageId: 2, dup: false, retain: false });
    assert.equal((await c.next('puback')).messageId, 2);
    const first = await c.next('publish');
    assert.equal(first.topic, 'v2/fw/response/7/chunk/0');
    assert.equal(first.qos, 0, 'QoS of the matching subscription');
    assert.deepEqual(first.payload, pkg.subarray(0, 1024));
    // empty payload: the size this reqId set
    c.send({ cmd: 'publish', topic: 'v2/fw/request/7/chunk/4', payload: Buffer.alloc(0), qos: 1, messageId: 3, dup: false, retain: false });
    const last = await c.next('publish', 2);
    assert.equal(last.topic, 'v2/fw/response/7/chunk/4');
    assert.deepEqual(last.payload, pkg.subarray(4096, 5000));
    c.send({ cmd: 'publish', topic: 'v2/fw/request/7/chunk/5', payload: Buffer.from('1024'), qos: 1, messageId: 4, dup: false, retain: false });
    const end = await c.next('publish', 3);
    assert.equal(end.topic, 'v2/fw/response/7/chunk/5');
    assert.equal((end.payload as Buffer).length, 0, 'past the end: zero-length payload');
    assert.equal(c.closed, false);
  });

  it('without a subscription the chunk comes at QoS 1; an empty size on a new reqId sends the whole package', async () => {
    setPackage(tb, deviceId, pkg);
    const c = await peer();
    c.send({ cmd: 'publish', topic: 'v2/fw/request/1/chunk/0', payload: Buffer.alloc(0), qos: 1, messageId: 9, dup: false, retain: false });
    const all = await c.next('publish');
    assert.equal(all.topic, 'v2/fw/response/1/chunk/0');
    assert.equal(all.qos, 1);
    assert.deepEqual(all.payload, pkg);
  });

  it('software: v2/sw/request -> v2/sw/response; its errors go to v2/fw/error', async () => {
    setPackage(tb, deviceId, pkg.subarray(0, 300), 'sw');
    const c = await peer();
    c.send({ cmd: 'publish', topic: 'v2/sw/request/3/chunk/1', payload: Buffer.from('256'), qos: 1, messageId: 1, dup: false, retain: false });
    const p = await c.next('publish');
    assert.equal(p.topic, 'v2/sw/response/3/chunk/1');
    assert.deepEqual(p.payload, pkg.subarray(256, 300));
    c.send({ cmd: 'publish', topic: 'v2/fw/request/4/chunk/0', payload: Buffer.from('256'), qos: 1, messageId: 2, dup: false, retain: false });
    const e = await c.next('publish', 2);
    assert.equal(e.topic, 'v2/fw/error');
    assert.equal(String(e.payload), 'NOT_FOUND', 'no firmware assigned (only software)');
    await c.waitClosed();
    assert.equal(c.of('puback').length, 1, 'the refused request gets no PUBACK');
  });

  it('a chunk size over 65536: PAYLOAD_TOO_LARGE on v2/fw/error, then the connection closes', async () => {
    setPackage(tb, deviceId, pkg);
    const c = await peer();
    c.send({ cmd: 'publish', topic: 'v2/fw/request/1/chunk/0', payload: Buffer.from('65537'), qos: 1, messageId: 1, dup: false, retain: false });
    const e = await c.next('publish');
    assert.equal(e.topic, 'v2/fw/error');
    assert.equal(String(e.payload), 'PAYLOAD_TOO_LARGE');
    await c.waitClosed();
  });

  it('a non-numeric size or chunk index closes the connection without PUBACK (NumberFormatException)', async () => {
    setPackage(tb, deviceId, pkg);
    for (const [topic, body] of [['v2/fw/request/1/chunk/0', '1k'], ['v2/fw/request/1/chunk/0', ' 1024'], ['v2/fw/request/1/chunk/99999999999', '1024']] as const) {
      const c = await peer();
      c.send({ cmd: 'publish', topic, payload: Buffer.from(body), qos: 1, messageId: 1, dup: false, retain: false });
      await c.waitClosed();
      assert.equal(c.of('puback').length + c.of('publish').length, 0, `${topic} ${body}`);
    }
  });

  it('the package is kept per reqId for the session: a new assignment needs a new reqId', async () => {
    setPackage(tb, deviceId, pkg);
    const c = await peer();
    c.send({ cmd: 'publish', topic: 'v2/fw/request/1/chunk/0', payload: Buffer.from('16'), qos: 1, messageId: 1, dup: false, retain: false });
    assert.deepEqual((await c.next('publish')).payload, pkg.subarray(0, 16));
    const other = randomBytes(64);
    setPackage(tb, deviceId, other, 'fw', '3.0.0');
    c.send({ cmd: 'publish', topic: 'v2/fw/request/1/chunk/1', payload: Buffer.from('16'), qos: 1, messageId: 2, dup: false, retain: false });
    assert.deepEqual((await c.next('publish', 2)).payload, pkg.subarray(16, 32), 'reqId 1 still serves the old package');
    c.send({ cmd: 'publish', topic: 'v2/fw/request/2/chunk/1', payload: Buffer.from('16'), qos: 1, messageId: 3, dup: false, retain: false });
    assert.deepEqual((await c.next('publish', 3)).payload, other.subarray(16, 32));
  });

  it('mosquitto_pub -t v2/fw/request/1/chunk/0 -m 1024: PUBACK, and the endpoint sends 1024 bytes on v2/fw/response/1/chunk/0', async () => {
    setPackage(tb, deviceId, pkg);
    const sent: { reqId: string; chunk: number; bytes: number }[] = [];
    tb.mqtt!.events.on('ota-chunk', (e: { reqId: string; chunk: number; bytes: number }) => sent.push(e));
    const r = await run('mosquitto_pub', ['-d', '-q', '1', '-h', '127.0.0.1', '-p', String(tb.port), '-u', token, '-t', 'v2/fw/request/1/chunk/0', '-m', '1024']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /received PUBACK/);
    await waitFor('chunk sent', () => sent.length === 1);
    assert.deepEqual(sent[0], { device: 'ota-mqtt', type: 'fw', reqId: '1', chunk: 0, size: 1024, bytes: 1024 });
  });

  it('python3 paho downloads the whole package in 512-byte chunks over v2/fw and gets the same SHA-256', async () => {
    setPackage(tb, deviceId, pkg);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paho-fw-'));
    const script = path.join(dir, 'fw.py');
    fs.writeFileSync(
      script,
      `import hashlib, sys, threading
import paho.mqtt.client as mqtt
port, token = int(sys.argv[1]), sys.argv[2]
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
except AttributeError:
    c = mqtt.Client()
c.username_pw_set(token)
data, got, n = bytearray(), threading.Event(), [0]
def on_connect(client, userdata, flags, rc, props=None):
    client.subscribe([("v2/fw/response/+/chunk/+", 1), ("v2/fw/error", 1)])
def on_subscribe(client, userdata, mid, *a):
    client.publish("v2/fw/request/5/chunk/0", "512", qos=1)
def on_message(client, userdata, msg):
    if msg.topic == "v2/fw/error":
        print("error", msg.payload); got.set(); return
    assert msg.topic == "v2/fw/response/5/chunk/%d" % n[0], msg.topic
    if not msg.payload:
        got.set(); return
    data.extend(msg.payload); n[0] += 1
    client.publish("v2/fw/request/5/chunk/%d" % n[0], "", qos=1)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port)
c.loop_start()
ok = got.wait(10)
c.loop_stop()
print(len(data), n[0], hashlib.sha256(bytes(data)).hexdigest(), ok)
`,
    );
    const r = await run('/usr/bin/python3', [script, String(tb.port), token], 20000);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${pkg.length} ${Math.ceil(pkg.length / 512)} ${createHash('sha256').update(pkg).digest('hex')} True`);
  });
});

describe('MQTT OTA: the device client (requestFirmwareChunk) against the endpoint', function () {
  this.timeout(20000);
  let tb: TbServer & { lines: string[]; port: number };
  let token: string;
  let deviceId: string;
  const clients: MqttThingsBoardClient[] = [];
  const make = (extra: Partial<MqttThingsBoardOptions> = {}) => {
    const log = memoryLog();
    const c = new MqttThingsBoardClient({
      stream: new TcpStreamFactory(), host: '127.0.0.1', port: tb.port, credentials: { kind: 'token', token }, clock: new ScaledClock(1),
      random: cryptoRandom, log, responseTimeoutMs: 8000, reconnect: { initialMs: 50, maxMs: 200 }, ...extra,
    });
    clients.push(c);
    return { c, log };
  };
  const req = (chunk: number, size = 1024) => ({ title: 'app', version: '2.0.0', chunk, size, timeoutMs: 3000 });

  beforeEach(async () => {
    tb = await startMqttTb();
    const d = tb.store.createDevice('ota-client');
    token = d.token;
    deviceId = d.id;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await tb.close();
  });

  it('downloads a package chunk by chunk (QoS 0 filters, one reqId), then an empty chunk past the end', async () => {
    const pkg = randomBytes(10_000);
    setPackage(tb, deviceId, pkg);
    const { c } = make();
    assert.equal(c.firmwareUnavailable, undefined);
    const parts: Buffer[] = [];
    for (let i = 0; i < 10; i++) parts.push(Buffer.from((await c.requestFirmwareChunk(req(i)))!));
    assert.deepEqual(Buffer.concat(parts), pkg);
    assert.equal((await c.requestFirmwareChunk(req(10)))!.length, 0);
    const s = tb.mqtt!.sessionFor(deviceId)!;
    assert.equal(s.subs.get(FW), 0);
    assert.equal(s.subs.get('v2/fw/error'), 0);
    assert.deepEqual([...s.otaSizes.keys()], ['1'], 'one reqId for the download');
    // another package (version) gets a new reqId
    await c.requestFirmwareChunk({ ...req(0), version: '2.0.1' });
    assert.deepEqual([...s.otaSizes.keys()], ['1', '2']);
  });

  it('subscribes again after a reconnect, and the download goes on', async () => {
    const pkg = randomBytes(3000);
    setPackage(tb, deviceId, pkg);
    const { c } = make();
    assert.deepEqual(Buffer.from((await c.requestFirmwareChunk(req(0)))!), pkg.subarray(0, 1024));
    tb.mqtt!.sessionFor(deviceId)!.close('test: connection dropped');
    await waitFor('reconnected', () => tb.mqtt!.sessionFor(deviceId)?.subs.has(FW));
    assert.deepEqual(Buffer.from((await c.requestFirmwareChunk(req(1)))!), pkg.subarray(1024, 2048));
    assert.equal(tb.mqtt!.sessionFor(deviceId)!.subs.get('v2/fw/error'), 0);
  });

  it('NOT_FOUND on v2/fw/error rejects with TbError not-found (the server then disconnects; the client reconnects)', async () => {
    const { c, log } = make();
    await assert.rejects(c.requestFirmwareChunk(req(0)), (e: TbError) => e instanceof TbError && e.code === 'not-found' && /NOT_FOUND/.test(e.message));
    await c.sendTelemetry({ x: 1 });
    assert.equal(tb.lines.filter((l) => l.includes('refused: NOT_FOUND')).length, 1, 'the refused request is not sent again after the reconnect');
    assert.ok(log.lines.some((l) => /reconnecting/.test(l)));
    assert.ok(c.mqtt!.stats.connacks >= 2, 'connected again after the server closed');
  });

  it('a chunk size over maxFirmwareChunk (from maxPacketSize) is refused before anything is sent', async () => {
    const { c } = make({ maxPacketSize: 2048 });
    assert.equal(c.maxFirmwareChunk, 2048 - 64);
    await assert.rejects(c.requestFirmwareChunk(req(0, 4096)), (e: TbError) => e.code === 'bad-request');
    assert.equal(c.mqtt, undefined, 'no connection opened');
  });
});
