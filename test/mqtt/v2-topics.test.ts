// The v2 short topics of ThingsBoard's MQTT API (reference thingsboard-mqtt.md §1.1) on the local
// endpoint, sharing devices, attributes and RPC with v1: v2/t, v2/a, v2/a/req -> v2/a/res,
// v2/r/req/+ (server RPC) and v2/r/res, client RPC on v2/r/req, the /j and /p forms.
import { strict as assert } from 'node:assert';
import type { TbServer } from '../../tools/tb-server/server';
import { RawClient, startMqttTb } from './helpers';
import { waitFor } from '../helpers/wait';

describe('MQTT v2 short topics on the endpoint', function () {
  this.timeout(20000);
  let tb: TbServer & { lines: string[]; port: number };
  let token: string;
  let deviceId: string;
  const peers: RawClient[] = [];
  const peer = async (): Promise<RawClient> => {
    const c = new RawClient(tb.port);
    peers.push(c);
    assert.equal((await c.connect(token)).returnCode, 0);
    return c;
  };
  const pub = (c: RawClient, topic: string, body: string, messageId: number) => c.send({ cmd: 'publish', topic, payload: Buffer.from(body), qos: 1, messageId, dup: false, retain: false });

  beforeEach(async () => {
    tb = await startMqttTb({}, { clientRpc: async ({ method }) => ({ echo: method }) });
    const d = tb.store.createDevice('v2-dev');
    token = d.token;
    deviceId = d.id;
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) p.end();
    await tb.close();
  });

  it('v2/t, v2/t/j and v2/a store telemetry and client attributes like the v1 topics', async () => {
    const c = await peer();
    pub(c, 'v2/t', '{"ts":1700000000000,"values":{"t2":1}}', 1);
    pub(c, 'v2/t/j', '{"t2j":2}', 2);
    pub(c, 'v2/a', '{"fw":"x"}', 3);
    await c.next('puback', 3);
    const t = tb.store.latestTelemetry(deviceId);
    assert.equal(t.t2!.value, 1);
    assert.equal(t.t2!.ts, 1700000000000);
    assert.equal(t.t2j!.value, 2);
    assert.deepEqual(tb.store.attributes(deviceId).client, { fw: 'x' });
  });

  it('attribute request on v2/a/req/{id} is answered on v2/a/res/{id} (and v2/a/req/j/{id} on v2/a/res/j/{id})', async () => {
    tb.store.setSharedAttributes(deviceId, { interval: 5 });
    const c = await peer();
    pub(c, 'v2/a/req/11', '{"sharedKeys":"interval"}', 1);
    const r = await c.next('publish');
    assert.equal(r.topic, 'v2/a/res/11');
    assert.deepEqual(JSON.parse(String(r.payload)), { shared: { interval: 5 } });
    pub(c, 'v2/a/req/j/12', '{}', 2);
    assert.equal((await c.next('publish', 2)).topic, 'v2/a/res/j/12');
  });

  it('subscribed to v2/a and v2/r/req/+: shared updates and server RPC arrive on the v2 topics; the reply on v2/r/res/{id} completes the RPC', async () => {
    const c = await peer();
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'v2/a', qos: 1 }, { topic: 'v2/r/req/+', qos: 0 }, { topic: 'v2/r/req/#', qos: 0 }] });
    assert.deepEqual((await c.next('suback')).granted, [1, 0, 0x80], 'exact filters only');
    const dev = tb.store.findDevice('v2-dev')!;
    tb.store.setSharedAttributes(deviceId, { interval: 7 });
    tb.service.sharedAttributesChanged(dev, { interval: 7 }, []);
    const u = await c.next('publish');
    assert.equal(u.topic, 'v2/a');
    assert.deepEqual(JSON.parse(String(u.payload)), { interval: 7 });
    const rpc = tb.service.sendRpc(dev, { method: 'getState', params: {}, timeoutMs: 5000 });
    const req = await c.next('publish', 2);
    const m = /^v2\/r\/req\/(\d+)$/.exec(req.topic);
    assert.ok(m, req.topic);
    assert.equal(req.qos, 0, 'at the subscription QoS');
    assert.deepEqual(JSON.parse(String(req.payload)), { method: 'getState', params: {} });
    pub(c, `v2/r/res/${m[1]}`, '{"ok":true}', 2);
    assert.deepEqual((await rpc).response, { ok: true });
  });

  it('client RPC on v2/r/req/{id} is answered on v2/r/res/{id}; v1 and v2 share the device', async () => {
    const c = await peer();
    pub(c, 'v2/r/req/5', '{"method":"getTime","params":{}}', 1);
    const r = await c.next('publish');
    assert.equal(r.topic, 'v2/r/res/5');
    assert.deepEqual(JSON.parse(String(r.payload)), { echo: 'getTime' });
    pub(c, 'v1/devices/me/rpc/request/6', '{"method":"v1","params":{}}', 2);
    assert.equal((await c.next('publish', 2)).topic, 'v1/devices/me/rpc/response/6');
  });

  it('v2/t/p on a JSON device closes the connection (no Protobuf schema to read it with)', async () => {
    const c = await peer();
    pub(c, 'v2/t/p', '\x0a\x01x', 1);
    await c.waitClosed();
    assert.equal(c.of('puback').length, 0);
    await waitFor('logged', () => tb.lines.some((l) => /without a Protobuf profile/.test(l)));
  });
});
