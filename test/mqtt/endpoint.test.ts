// The local endpoint's MQTT transport (tools/tb-server/mqtt-server.ts) against the guides' own
// clients (mosquitto_pub/mosquitto_sub, python3 paho from apt) and a raw mqtt-packet peer, and
// the ThingsBoard rules from the reference (thingsboard-mqtt.md). Fails, never skips, when a peer
// is missing: `apt-get install mosquitto-clients python3-paho-mqtt` (tools/setup.sh does).
import { strict as assert } from 'node:assert';
import type { TbServer } from '../../tools/tb-server/server';
import { RawClient, run, startMqttTb, startPeer } from './helpers';
import { waitFor } from '../helpers/wait';

describe('tb-server MQTT transport', function () {
  let tb: TbServer & { lines: string[]; port: number };
  let token: string;
  let deviceId: string;
  const raws: RawClient[] = [];
  const raw = () => {
    const r = new RawClient(tb.port);
    raws.push(r);
    return r;
  };

  beforeEach(async () => {
    tb = await startMqttTb();
    const d = tb.store.createDevice('mqtt-dev');
    token = d.token;
    deviceId = d.id;
  });
  afterEach(async () => {
    for (const r of raws.splice(0)) r.end();
    await tb.close();
  });

  it("the guide's mosquitto_pub -d -q 1 stores the value", async () => {
    const r = await run('mosquitto_pub', ['-d', '-q', '1', '-h', '127.0.0.1', '-p', String(tb.port), '-t', 'v1/devices/me/telemetry', '-u', token, '-m', '{"temperature":25}']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /received CONNACK \(0\)/);
    assert.match(r.stdout, /received PUBACK/);
    assert.equal(tb.store.latestTelemetry(deviceId).temperature?.value, 25);
  });

  it('mosquitto_pub with an unknown token gets CONNACK 5 and nothing is stored', async () => {
    const r = await run('mosquitto_pub', ['-d', '-q', '1', '-h', '127.0.0.1', '-p', String(tb.port), '-t', 'v1/devices/me/telemetry', '-u', 'NOT_A_TOKEN', '-m', '{"temperature":25}']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /CONNACK \(5\)/);
    assert.deepEqual(tb.store.latestTelemetry(deviceId), {});
    assert.ok(!tb.lines.join('\n').includes('NOT_A_TOKEN'), 'token not logged');
  });

  it('mosquitto_sub receives a shared-attribute update and a server RPC, mosquitto_pub answers it', async () => {
    const sub = startPeer('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(tb.port), '-u', token, '-q', '1', '-v', '-C', '2', '-t', 'v1/devices/me/attributes', '-t', 'v1/devices/me/rpc/request/+']);
    try {
      await waitFor('mosquitto_sub subscribed', () => tb.mqtt!.sessionFor(deviceId)?.subs.size === 2);
      const dev = tb.store.findDevice('mqtt-dev')!;
      tb.store.setSharedAttributes(deviceId, { reportingInterval: 5 });
      tb.service.sharedAttributesChanged(dev, { reportingInterval: 5 }, []);
      const rpc = tb.service.sendRpc(dev, { method: 'getState', params: {}, timeoutMs: 10000 });
      assert.equal(await sub.done, 0, sub.out());
      assert.match(sub.out(), /v1\/devices\/me\/attributes \{"reportingInterval":5\}/);
      const m = /v1\/devices\/me\/rpc\/request\/(\d+) \{"method":"getState","params":\{\}\}/.exec(sub.out());
      assert.ok(m, sub.out());
      const r = await run('mosquitto_pub', ['-q', '1', '-h', '127.0.0.1', '-p', String(tb.port), '-u', token, '-t', `v1/devices/me/rpc/response/${m[1]}`, '-m', '{"uptime":12}']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await rpc).response, { uptime: 12 });
    } finally {
      sub.proc.kill();
    }
  });

  it('a python3 paho-mqtt client publishes telemetry at QoS 1 and gets the attribute response', async () => {
    const script = `
import json, sys, threading
import paho.mqtt.client as mqtt
port, token = int(sys.argv[1]), sys.argv[2]
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
except AttributeError:
    c = mqtt.Client()
c.username_pw_set(token)
got = threading.Event()
def on_message(cl, ud, msg):
    print("MSG", msg.topic, msg.payload.decode()); got.set()
c.on_message = on_message
c.connect("127.0.0.1", port, 60)
c.loop_start()
c.subscribe("v1/devices/me/attributes/response/+", 1)
info = c.publish("v1/devices/me/telemetry", json.dumps({"humidity": 40.5}), qos=1)
info.wait_for_publish(10)
print("PUBLISHED", info.is_published())
c.publish("v1/devices/me/attributes", json.dumps({"fw": "v1.0"}), qos=1).wait_for_publish(10)
c.publish("v1/devices/me/attributes/request/1", json.dumps({"clientKeys": "fw"}), qos=1)
got.wait(10)
c.disconnect(); c.loop_stop()
`;
    // Debian's interpreter: apt's python3-paho-mqtt lives there (a pyenv python3 earlier on PATH lacks it).
    const r = await run('/usr/bin/python3', ['-c', script, String(tb.port), token], 30000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /PUBLISHED True/);
    assert.match(r.stdout, /MSG v1\/devices\/me\/attributes\/response\/1 \{"client":\{"fw":"v1.0"\}\}/);
    assert.equal(tb.store.latestTelemetry(deviceId).humidity?.value, 40.5);
  });

  it('CONNACK: sessionPresent = !clean (a lie), 2 for a client id without credentials, 5 for no credentials', async () => {
    const a = raw();
    assert.deepEqual([(await a.connect(token, { clean: false, clientId: 'c1' })).returnCode, (a.packets[0] as { sessionPresent: boolean }).sessionPresent], [0, true]);
    const b = raw();
    assert.equal((await b.connect(undefined, { clientId: 'someone' })).returnCode, 2);
    await b.waitClosed();
    const c = raw();
    assert.equal((await c.connect(undefined)).returnCode, 5);
    await c.waitClosed();
  });

  it('QoS 2 PUBLISH is answered with PUBACK (not PUBREC), and stored', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from('{"t":1}'), qos: 2, messageId: 7, dup: false, retain: false });
    assert.equal((await c.next('puback')).messageId, 7);
    assert.equal(c.of('pubrec').length, 0);
    assert.equal(tb.store.latestTelemetry(deviceId).t?.value, 1);
  });

  it('unknown topic: PUBACK, dropped, connection stays', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'something/else', payload: Buffer.from('x'), qos: 1, messageId: 3, dup: false, retain: false });
    assert.equal((await c.next('puback')).messageId, 3);
    c.send({ cmd: 'pingreq' });
    await c.next('pingresp');
    assert.equal(c.closed, false);
  });

  it('malformed JSON telemetry: disconnect without PUBACK', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from('{"t":'), qos: 1, messageId: 4, dup: false, retain: false });
    await c.waitClosed();
    assert.equal(c.of('puback').length, 0);
  });

  it('an empty telemetry array gets no PUBACK (ThingsBoard makes no message of it)', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from('[]'), qos: 1, messageId: 5, dup: false, retain: false });
    c.send({ cmd: 'pingreq' });
    await c.next('pingresp');
    assert.equal(c.of('puback').length, 0);
  });

  it('a packet over 64 KiB closes the connection; 64 KiB itself is accepted', async () => {
    const ok = raw();
    await ok.connect(token);
    const topic = 'v1/devices/me/telemetry';
    const fill = 65536 - (2 + topic.length) - 2 - '{"k":""}'.length;
    ok.send({ cmd: 'publish', topic, payload: Buffer.from(`{"k":"${'a'.repeat(fill)}"}`), qos: 1, messageId: 1, dup: false, retain: false });
    assert.equal((await ok.next('puback')).messageId, 1);
    ok.send({ cmd: 'publish', topic, payload: Buffer.from(`{"k":"${'a'.repeat(fill + 1)}"}`), qos: 1, messageId: 2, dup: false, retain: false });
    await ok.waitClosed();
    assert.equal(ok.of('puback').length, 1);
  });

  it('packet id 0 closes the connection', async () => {
    const c = raw();
    await c.connect(token);
    c.raw(Buffer.from([0x32, 7, 0, 1, 0x74, 0, 0, 0x7b, 0x7d]));
    await c.waitClosed();
  });

  it('one session per device: a second connection with the same token closes the first', async () => {
    const a = raw();
    await a.connect(token);
    const b = raw();
    await b.connect(token);
    await a.waitClosed();
    b.send({ cmd: 'pingreq' });
    await b.next('pingresp');
  });

  it('SUBSCRIBE: exact filters granted min(QoS,1), anything else 0x80, connection stays', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'subscribe', messageId: 9, subscriptions: [
      { topic: 'v1/devices/me/attributes', qos: 2 },
      { topic: 'v1/devices/me/#', qos: 1 },
      { topic: 'v1/devices/me/rpc/request/+', qos: 0 },
      { topic: '#', qos: 1 },
    ] });
    assert.deepEqual((await c.next('suback')).granted, [1, 0x80, 0, 0x80]);
    assert.equal(c.closed, false);
  });

  it('attribute request: comma-separated keys answered; a JSON array of two keys disconnects', async () => {
    tb.store.setClientAttributes(deviceId, { a: 1, b: 2 });
    tb.store.setSharedAttributes(deviceId, { s: 'x' });
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/attributes/request/5', payload: Buffer.from('{"clientKeys":"a,b","sharedKeys":"s"}'), qos: 1, messageId: 1, dup: false, retain: false });
    const res = await c.next('publish');
    assert.equal(res.topic, 'v1/devices/me/attributes/response/5');
    assert.equal(res.qos, 1, 'QoS 1 without a subscription');
    assert.deepEqual(JSON.parse(res.payload.toString()), { client: { a: 1, b: 2 }, shared: { s: 'x' } });
    c.send({ cmd: 'publish', topic: 'v1/devices/me/attributes/request/6', payload: Buffer.from('{"clientKeys":["a","b"]}'), qos: 1, messageId: 2, dup: false, retain: false });
    await c.waitClosed();
  });

  it('client RPC without a method disconnects; with one it is answered on rpc/response/{id}', async () => {
    const c = raw();
    await c.connect(token);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/rpc/request/42', payload: Buffer.from('{"method":"getTime","params":{}}'), qos: 1, messageId: 1, dup: false, retain: false });
    const res = await c.next('publish');
    assert.equal(res.topic, 'v1/devices/me/rpc/response/42');
    assert.equal(typeof JSON.parse(res.payload.toString()).time, 'number');
    c.send({ cmd: 'publish', topic: 'v1/devices/me/rpc/request/43', payload: Buffer.from('{"params":{}}'), qos: 1, messageId: 2, dup: false, retain: false });
    await c.waitClosed();
  });

  it('a session idle past the inactivity timeout is closed; PINGREQ counts as activity', async () => {
    await tb.close();
    tb = await startMqttTb({ inactivityMs: 1500 });
    const d = tb.store.createDevice('idle');
    const pinging = raw();
    await pinging.connect(d.token);
    const idle = new RawClient(tb.port);
    raws.push(idle);
    const d2 = tb.store.createDevice('idle2');
    await idle.connect(d2.token);
    // Bounded: the idle one must go within 100 rounds of 100 ms; the other pings every round.
    for (let i = 0; i < 100 && !idle.closed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      pinging.send({ cmd: 'pingreq' });
    }
    assert.equal(idle.closed, true, 'idle session closed');
    assert.equal(pinging.closed, false, 'pinging session kept');
  });

  it('provisioning session: /provision/request answered on /provision/response; other topics disconnect', async () => {
    tb.store.addProfile({ key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const c = raw();
    assert.equal((await c.connect('provision')).returnCode, 0);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/provision/response', qos: 1 }, { topic: 'v1/devices/me/attributes', qos: 1 }] });
    assert.deepEqual((await c.next('suback')).granted, [1, 0x80]);
    c.send({ cmd: 'publish', topic: '/provision/request', payload: Buffer.from('{"deviceName":"new-one","provisionDeviceKey":"pk","provisionDeviceSecret":"ps"}'), qos: 1, messageId: 2, dup: false, retain: false });
    const res = await c.next('publish');
    assert.equal(res.topic, '/provision/response');
    const body = JSON.parse(res.payload.toString());
    assert.equal(body.status, 'SUCCESS');
    assert.equal(tb.store.findDevice('new-one')!.token, body.credentialsValue);
    c.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from('{}'), qos: 1, messageId: 3, dup: false, retain: false });
    await c.waitClosed();
  });
});
