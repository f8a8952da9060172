// Protobuf device profiles over MQTT and MQTTS: the device's MQTT client with the generated `device`
// profile codec against the local endpoint's MQTT listener, which decodes with protobufjs as
// ThingsBoard's ProtoMqttAdaptor does. Telemetry, attributes and server RPC use the profile's
// schemas; the attribute request/response, shared updates and client RPC ThingsBoard's fixed
// messages.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import type { MqttThingsBoardOptions } from '../../src/thingsboard/mqtt-client';
import { TlsStreamFactory } from '../../src/mqtt/tls-stream';
import { protoCodec } from '../../src/thingsboard/proto-codec';
import { profile as deviceProfile } from '../../src/proto/gen/device';
import type { AttributeUpdate, RpcRequest, TbValue } from '../../src/thingsboard/payload';
import { loadDtlsEngine } from '../../hardware/dtls/index';
import { makeTestPki } from '../../tools/provision/certs';
import { ScaledClock } from '../../tools/sim/clock';
import { TcpStreamFactory } from '../../tools/sim/tcp';
import { cryptoRandom } from '../../tools/sim/random';
import type { TbServer } from '../../tools/tb-server/server';
import type { ProtoSchemas } from '../../tools/tb-server/proto-profile';
import { createSimMqttDevice } from '../../tools/sim/mqtt-device';
import { describeProtobuf } from '../../tools/sim/proto-trace';
import { RawClient, run, startMqttTb } from '../mqtt/helpers';
import { memoryLog, waitFor } from '../helpers/wait';

const DIR = path.join(__dirname, '../../tools/proto/profiles/device');
const read = (f: string): string => readFileSync(path.join(DIR, f), 'utf8');
const SCHEMAS: ProtoSchemas = { telemetry: read('telemetry.proto'), attributes: read('attributes.proto'), rpcRequest: read('rpc-request.proto'), rpcResponse: read('rpc-response.proto') };

for (const secure of [false, true]) {
  describe(`Protobuf device profile over ${secure ? 'MQTTS' : 'MQTT'}: device client against the local endpoint`, function () {
    this.timeout(30000);
    const pki = secure ? makeTestPki() : undefined;
    let tb: TbServer & { lines: string[]; port: number };
    let token: string;
    let deviceId: string;
    const clients: MqttThingsBoardClient[] = [];
    const make = (extra: Partial<MqttThingsBoardOptions> = {}) => {
      const clock = new ScaledClock(1);
      const tcp = new TcpStreamFactory();
      const stream = pki ? new TlsStreamFactory(tcp, { clock, createEngine: loadDtlsEngine().create, engine: { ca: pki.read('ca.pem'), hostname: 'localhost' }, handshakeTimeoutMs: 10000 }) : tcp;
      const c = new MqttThingsBoardClient({
        stream, host: '127.0.0.1', port: pki ? tb.mqtt!.tlsPort! : tb.port, credentials: { kind: 'token', token }, clock,
        random: cryptoRandom, log: memoryLog(), responseTimeoutMs: 8000, reconnect: { initialMs: 50, maxMs: 200 },
        codec: protoCodec(deviceProfile), ...extra,
      });
      clients.push(c);
      return c;
    };

    beforeEach(async () => {
      tb = await startMqttTb(pki ? { port: 0, tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } : {});
      const d = tb.store.createDevice('pb-mqtt-dev');
      tb.store.updateDevice(d, { protobuf: SCHEMAS });
      token = d.token;
      deviceId = d.id;
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await tb.close();
    });

    it('telemetry (ts + values, the profile schema) and client attributes are stored', async () => {
      const c = make();
      await c.sendTelemetry({ ts: 1700000000000, values: { temperature: 21.5, humidity: 40.25 } });
      await c.sendAttributes({ reportingInterval: 30, current_fw_title: 'fw' });
      const t = tb.store.telemetry(deviceId, ['temperature', 'humidity']);
      assert.deepEqual(t.temperature!.map((p) => [p.ts, p.value]), [[1700000000000, 21.5]]);
      assert.deepEqual(t.humidity!.map((p) => p.value), [40.25]);
      // JSON names (lowerCamelCase), as JsonFormat prints them
      assert.deepEqual(tb.store.attributes(deviceId).client, { reportingInterval: 30, currentFwTitle: 'fw' });
      assert.ok(!tb.lines.some((l) => /disconnected/.test(l)), tb.lines.join('\n'));
    });

    it('attribute request: TransportApiProtos.AttributesRequest, answered with GetAttributeResponseMsg', async () => {
      tb.store.setClientAttributes(deviceId, { reportingInterval: 30 });
      tb.store.setSharedAttributes(deviceId, { reportingInterval: 5, mode: 'eco' });
      const c = make();
      assert.deepEqual(await c.requestAttributes({ clientKeys: ['reportingInterval'], sharedKeys: ['mode', 'missing'] }), { client: { reportingInterval: 30 }, shared: { mode: 'eco' } });
      assert.deepEqual(await c.requestAttributes(), { client: { reportingInterval: 30 }, shared: { reportingInterval: 5, mode: 'eco' } });
    });

    it('shared attributes: the snapshot after the SUBACK, then AttributeUpdateNotificationMsg updates and deletions', async () => {
      tb.store.setSharedAttributes(deviceId, { reportingInterval: 30 });
      const c = make();
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

    it('server RPC: the profile request schema down, the response schema up (JSON form as the result)', async () => {
      const c = make();
      const seen: RpcRequest[] = [];
      const sub = c.subscribeRpc((r): TbValue => {
        seen.push(r);
        return r.method === 'setInterval' ? { payload: 'ok' } : { interval: 10 };
      });
      await sub.registered;
      const dev = tb.store.findDevice(deviceId)!;
      const set = await tb.service.sendRpc(dev, { method: 'setInterval', params: { interval: 15 } });
      assert.deepEqual(set.response, { payload: 'ok' });
      // a result that does not fit the response schema goes as JSON text in its payload field
      const state = await tb.service.sendRpc(dev, { method: 'getState', params: {} });
      assert.deepEqual(state.response, { payload: '{"interval":10}' });
      assert.deepEqual(seen.map((r) => [r.id, r.method, r.params]), [[set.id, 'setInterval', { interval: 15 }], [state.id, 'getState', {}]]);
    });

    it('client RPC (RpcRequest / ToServerRpcResponseMsg) and claim (ClaimDevice)', async () => {
      tb.service.opts.clientRpc = ({ method, params }) => ({ echo: method, params });
      const c = make();
      assert.deepEqual(await c.callRpc('getTime', { tz: 'UTC' }), { echo: 'getTime', params: { tz: 'UTC' } });
      await c.claim('s3cret', 60000);
      const claim = tb.store.findDevice(deviceId)!.claim!;
      assert.equal(claim.secretKey, 's3cret');
      assert.ok(claim.expiresAt > Date.now());
    });

    it('provisioning: ProvisionDeviceRequestMsg (not JSON) is answered with ProvisionDeviceResponseMsg', async () => {
      tb.store.addProfile({ key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
      const c = make({ credentials: { kind: 'token', token: 'not-yet' } });
      assert.deepEqual(await c.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'ps', deviceName: 'pb-fresh', token: 'PB_TOKEN_1' }), { credentialsType: 'ACCESS_TOKEN', credentialsValue: 'PB_TOKEN_1' });
      await assert.rejects(c.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'wrong' }), /NOT_FOUND: Provision data was not found!/);
      assert.equal(tb.store.findDevice('pb-fresh')!.token, 'PB_TOKEN_1');
    });
  });
}

describe('Protobuf device profile over MQTT: the endpoint side (protobufjs peer, no device code)', function () {
  this.timeout(20000);
  let tb: TbServer & { lines: string[]; port: number };
  afterEach(async () => tb.close());

  it('decodes the telemetry schema, answers an AttributesRequest in GetAttributeResponseMsg, and closes on bytes that do not decode', async () => {
    tb = await startMqttTb();
    const d = tb.store.createDevice('pb-raw');
    tb.store.updateDevice(d, { protobuf: SCHEMAS });
    tb.store.setSharedAttributes(d.id, { mode: 'eco' });
    const root = protobuf.parse(read('telemetry.proto')).root;
    const telemetry = root.lookupType('telemetry.TelemetryRecord');
    const fixed = protobuf.parse(
      'syntax = "proto3"; message AttributesRequest { string clientKeys = 1; string sharedKeys = 2; } ' +
        'message KeyValueProto { string key = 1; int32 type = 2; bool bool_v = 3; int64 long_v = 4; double double_v = 5; string string_v = 6; string json_v = 7; } ' +
        'message TsKvProto { int64 ts = 1; KeyValueProto kv = 2; } ' +
        'message GetAttributeResponseMsg { int32 requestId = 1; repeated TsKvProto clientAttributeList = 2; repeated TsKvProto sharedAttributeList = 3; }',
    ).root;
    const raw = new RawClient(tb.port);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'x', keepalive: 60, username: d.token });
    await waitFor('connack', () => raw.packets.find((p) => p.cmd === 'connack'));
    raw.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', qos: 1, messageId: 1, dup: false, retain: false, payload: Buffer.from(telemetry.encode(telemetry.fromObject({ ts: 1700000000000, values: { temperature: 20.5 } })).finish()) });
    await waitFor('puback', () => raw.packets.find((p) => p.cmd === 'puback'));
    assert.deepEqual(tb.store.telemetry(d.id, ['temperature']).temperature!.map((p) => [p.ts, p.value]), [[1700000000000, 20.5]]);
    const req = fixed.lookupType('AttributesRequest');
    raw.send({ cmd: 'publish', topic: 'v1/devices/me/attributes/request/7', qos: 1, messageId: 2, dup: false, retain: false, payload: Buffer.from(req.encode(req.fromObject({ sharedKeys: 'mode' })).finish()) });
    const resp = (await waitFor('response', () => raw.packets.find((p) => p.cmd === 'publish' && p.topic === 'v1/devices/me/attributes/response/7'))) as { payload: Buffer };
    const m = fixed.lookupType('GetAttributeResponseMsg').toObject(fixed.lookupType('GetAttributeResponseMsg').decode(resp.payload), { longs: Number }) as { requestId: number; sharedAttributeList: { kv: { key: string; stringV: string } }[] };
    assert.equal(m.requestId, 7);
    assert.deepEqual(m.sharedAttributeList.map((e) => [e.kv.key, e.kv.stringV]), [['mode', 'eco']]);
    // a JSON body is not a Protobuf message: ThingsBoard's adaptor fails and the session closes
    raw.send({ cmd: 'publish', topic: 'v1/devices/me/telemetry', qos: 1, messageId: 3, dup: false, retain: false, payload: Buffer.from('{"temperature": 1}') });
    await waitFor('closed', () => raw.closed);
    assert.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 2);
  });
});

describe('Protobuf device profile over MQTT: the firmware app (simulated device) and npm start', function () {
  this.timeout(60000);
  let tb: (TbServer & { lines: string[]; port: number }) | undefined;
  afterEach(async () => tb?.close());

  it('DeviceApp reports in Protobuf, follows the shared reportingInterval and answers setInterval; the trace shows the bodies decoded', async () => {
    tb = await startMqttTb();
    const dev = tb.store.createDevice('pb-sim');
    tb.store.updateDevice(dev, { protobuf: SCHEMAS });
    const lines: string[] = [];
    const sim = createSimMqttDevice({
      host: '127.0.0.1', port: tb.port, credentials: { kind: 'token', token: dev.token }, reportingIntervalMs: 60000, clock: new ScaledClock(50), log: memoryLog(),
      trace: (l) => lines.push(l), codec: protoCodec(deviceProfile), describePayload: describeProtobuf(deviceProfile),
    });
    try {
      await sim.start();
      await waitFor('first report', () => tb!.store.latestTelemetry(dev.id).temperature);
      assert.deepEqual(tb.store.attributes(dev.id).client, { reportingInterval: 60, currentFwTitle: 'tb-coap-firmware', currentFwVersion: '0.1.0' });
      tb.store.setSharedAttributes(dev.id, { reportingInterval: 5 });
      tb.service.sharedAttributesChanged(dev, { reportingInterval: 5 }, []);
      await waitFor('the new interval', () => sim.app.intervalMs === 5000);
      const set = await tb.service.sendRpc(dev, { method: 'setInterval', params: { interval: 30 } });
      assert.deepEqual(set.response, { payload: '{"interval":30}' });
      await waitFor('reported back as a client attribute', () => tb!.store.attributes(dev.id).client.reportingInterval === 30);
      assert.ok(lines.some((l) => /^-> PUBLISH v1\/devices\/me\/telemetry q1 .* pb\{"ts":\d+,"values":\{"temperature"/.test(l)), lines.join('\n'));
      assert.ok(!lines.join('\n').includes(dev.token));
    } finally {
      sim.stop();
    }
  });

  it('npm start -- --mqtt --protobuf runs the device in Protobuf (was refused)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pb-mqtt-start-'));
    try {
      const r = await run(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, '../../tools/sim/start.ts'), '--mqtt', '--protobuf', '--duration', '2s', '--coap-port', '0', '--http-port', '0', '--mqtt-port', '0', '--data', dir], 45000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /device profile: Protobuf payloads/);
      assert.match(r.stdout, /-> PUBLISH v1\/devices\/me\/telemetry q1 .* pb\{"ts":/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
