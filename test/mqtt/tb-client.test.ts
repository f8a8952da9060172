// The device's ThingsBoard-over-MQTT client (src/thingsboard/mqtt-client.ts, over src/mqtt and the
// node:net Stream) against the local endpoint's MQTT transport (mqtt-packet): the two MQTT
// implementations check each other.
import { strict as assert } from 'node:assert';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import type { MqttThingsBoardOptions } from '../../src/thingsboard/mqtt-client';
import type { AttributeUpdate, RpcRequest } from '../../src/thingsboard/payload';
import { TbError } from '../../src/thingsboard/errors';
import { ScaledClock } from '../../tools/sim/clock';
import { TcpStreamFactory } from '../../tools/sim/tcp';
import { cryptoRandom } from '../../tools/sim/random';
import type { TbServer } from '../../tools/tb-server/server';
import { startMqttTb } from './helpers';
import { memoryLog, waitFor } from '../helpers/wait';

describe('ThingsBoard over MQTT: device client against the local endpoint', function () {
  let tb: TbServer & { lines: string[]; port: number };
  let token: string;
  let deviceId: string;
  const clients: MqttThingsBoardClient[] = [];
  const make = (extra: Partial<MqttThingsBoardOptions> = {}) => {
    const log = memoryLog();
    const net = new TcpStreamFactory();
    const c = new MqttThingsBoardClient({
      stream: net, host: '127.0.0.1', port: tb.port, credentials: { kind: 'token', token }, clock: new ScaledClock(1),
      random: cryptoRandom, log, responseTimeoutMs: 8000, reconnect: { initialMs: 50, maxMs: 200 }, ...extra,
    });
    clients.push(c);
    return { c, log, net };
  };

  beforeEach(async () => {
    tb = await startMqttTb();
    const d = tb.store.createDevice('tb-mqtt-dev');
    token = d.token;
    deviceId = d.id;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await tb.close();
  });

  it('telemetry (with device timestamps) and client attributes are stored; resolves at the PUBACK', async () => {
    const { c } = make();
    await c.sendTelemetry([{ ts: 1700000000000, values: { temperature: 21.5 } }, { ts: 1700000001000, values: { temperature: 21.7 } }]);
    await c.sendAttributes({ firmware: 'x1', reportingInterval: 10 });
    assert.deepEqual(tb.store.telemetry(deviceId, ['temperature']).temperature!.map((p) => p.value), [21.7, 21.5]);
    assert.deepEqual(tb.store.attributes(deviceId).client, { firmware: 'x1', reportingInterval: 10 });
  });

  it('shared attributes: a snapshot after the SUBACK, then each update and deletion', async () => {
    tb.store.setSharedAttributes(deviceId, { reportingInterval: 30 });
    const { c } = make();
    const updates: AttributeUpdate[] = [];
    const sub = c.subscribeAttributes((u) => updates.push(u));
    await sub.registered;
    await waitFor('snapshot', () => updates.length >= 1);
    assert.deepEqual(updates[0], { shared: { reportingInterval: 30 }, deleted: [] });
    const dev = tb.store.findDevice(deviceId)!;
    tb.store.setSharedAttributes(deviceId, { reportingInterval: 5 });
    tb.service.sharedAttributesChanged(dev, { reportingInterval: 5 }, []);
    tb.service.sharedAttributesChanged(dev, {}, ['old']);
    await waitFor('updates', () => updates.length >= 3);
    assert.deepEqual(updates.slice(1), [{ shared: { reportingInterval: 5 }, deleted: [] }, { shared: {}, deleted: ['old'] }]);
  });

  it('server RPC: the id from the topic, the handler\'s result published to rpc/response/{id}', async () => {
    const { c } = make();
    const seen: RpcRequest[] = [];
    const sub = c.subscribeRpc((r) => {
      seen.push(r);
      return { interval: 10 };
    });
    await sub.registered;
    const dev = tb.store.findDevice(deviceId)!;
    const res = await tb.service.sendRpc(dev, { method: 'getState', params: { a: 1 } });
    assert.deepEqual(res.response, { interval: 10 });
    assert.deepEqual(seen.map((r) => [r.method, r.params]), [['getState', { a: 1 }]]);
    assert.equal(seen[0]!.id, res.id);
  });

  it('attribute request with comma-separated keys; client RPC; claim', async () => {
    tb.store.setClientAttributes(deviceId, { a: 1, b: 2, c: 3 });
    tb.store.setSharedAttributes(deviceId, { s: 'x', t: 'y' });
    const { c } = make();
    assert.deepEqual(await c.requestAttributes({ clientKeys: ['a', 'b'], sharedKeys: ['t'] }), { client: { a: 1, b: 2 }, shared: { t: 'y' } });
    assert.deepEqual(await c.requestAttributes(), { client: { a: 1, b: 2, c: 3 }, shared: { s: 'x', t: 'y' } });
    const time = (await c.callRpc('getTime')) as { time: number };
    assert.equal(typeof time.time, 'number');
    await c.claim('secret', 60000);
    assert.equal(tb.store.findDevice(deviceId)!.claim!.secretKey, 'secret');
  });

  it('provisioning over its own "provision" connection', async () => {
    tb.store.addProfile({ key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const { c } = make({ credentials: { kind: 'token', token: 'not-yet' } });
    const res = await c.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'ps', deviceName: 'fresh', token: 'MY_OWN_TOKEN_123' });
    assert.deepEqual(res, { credentialsType: 'ACCESS_TOKEN', credentialsValue: 'MY_OWN_TOKEN_123' });
    await assert.rejects(c.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'wrong' }), (e: unknown) => e instanceof TbError && /NOT_FOUND/.test(e.message));
    c.resume({ kind: 'token', token: 'MY_OWN_TOKEN_123' });
    await c.sendTelemetry({ provisioned: true });
    assert.equal(tb.store.latestTelemetry(tb.store.findDevice('fresh')!.id).provisioned?.value, true);
  });

  it('bad token: CONNACK 5 stops the client like a CoAP 4.01 (no reconnect, token never logged)', async () => {
    const { c, log, net } = make({ credentials: { kind: 'token', token: 'WRONG_TOKEN_XYZ' } });
    await assert.rejects(c.sendTelemetry({ t: 1 }), (e: unknown) => e instanceof TbError && e.code === 'unauthorized');
    assert.equal(c.stopped?.code, 'unauthorized');
    await assert.rejects(c.sendTelemetry({ t: 2 }), (e: unknown) => e instanceof TbError && e.code === 'stopped');
    await new Promise((r) => setTimeout(r, 300)); // several back-off periods
    assert.equal(net.stats.connects, 1, 'no reconnect after CONNACK 5');
    assert.ok(!log.lines.join('\n').includes('WRONG_TOKEN_XYZ'));
  });

  it('after CONNACK 5, resume() with the right token reconnects, resubscribes and sends', async () => {
    const { c, net } = make({ credentials: { kind: 'token', token: 'WRONG_TOKEN_XYZ' } });
    const seen: string[] = [];
    const sub = c.subscribeRpc((r) => { seen.push(r.method); return {}; });
    await assert.rejects(sub.registered, (e: unknown) => e instanceof TbError && e.code === 'unauthorized');
    assert.equal(c.stopped?.code, 'unauthorized');
    c.resume({ kind: 'token', token });
    await c.sendTelemetry({ fixed: 1 });
    assert.equal(tb.store.latestTelemetry(deviceId).fixed?.value, 1);
    assert.equal(net.stats.connects, 2);
    const again = c.subscribeRpc((r) => { seen.push(r.method); return {}; });
    await again.registered;
    await tb.service.sendRpc(tb.store.findDevice(deviceId)!, { method: 'afterResume' });
    assert.deepEqual(seen, ['afterResume']);
  });

  it('reconnects and resubscribes when the server drops the session; RPC still arrives', async () => {
    const { c, net } = make();
    const seen: string[] = [];
    const sub = c.subscribeRpc((r) => {
      seen.push(r.method);
      return {};
    });
    await sub.registered;
    tb.mqtt!.sessionFor(deviceId)!.close('test: server restart');
    await waitFor('reconnected and resubscribed', () => net.stats.connects === 2 && tb.mqtt!.sessionFor(deviceId)?.subs.has('v1/devices/me/rpc/request/+'));
    const dev = tb.store.findDevice(deviceId)!;
    await tb.service.sendRpc(dev, { method: 'afterReconnect' });
    assert.deepEqual(seen, ['afterReconnect']);
  });

  it('a report in flight when the connection drops is sent again with DUP and stored once', async () => {
    const { c, net } = make();
    await c.sendTelemetry({ ts: 1700000000000, values: { warm: 1 } });
    // The server stores the next report, then the connection dies before its PUBACK goes out.
    const session = tb.mqtt!.sessionFor(deviceId)!;
    const send = session.send.bind(session);
    session.send = (p) => {
      if (p.cmd === 'puback') return session.close('test: connection lost before PUBACK');
      send(p);
    };
    await c.sendTelemetry({ ts: 1700000005000, values: { warm: 2 } });
    assert.ok(net.stats.connects >= 2);
    assert.ok(c.mqtt!.stats.retransmitted >= 1);
    const points = tb.store.telemetry(deviceId, ['warm']).warm!;
    assert.deepEqual(points.map((p) => [p.ts, p.value]), [[1700000005000, 2], [1700000000000, 1]]);
  });
});
