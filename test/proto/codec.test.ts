/*
 * The Protobuf payload codec (src/thingsboard/proto-codec.ts) with ThingsBoard's default schemas
 * (reference §2) and the firmware's profile, checked against the local endpoint's protobufjs side
 * (tools/tb-server/proto-profile.ts), which is independent of the generated device code; and the
 * generator's build-time checks.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { protoCodec } from '../../src/thingsboard/proto-codec';
import { PayloadError } from '../../src/thingsboard/payload';
import { profile as tbDefault } from '../../src/proto/gen/thingsboard-default';
import { profile as deviceProfile } from '../../src/proto/gen/device';
import { profile as flatProfile } from '../../src/proto/gen/flat';
import { DEFAULT_PROTO_SCHEMAS, ProtoConvertError, ProtoProfile, fixedMessages } from '../../tools/tb-server/proto-profile';
import type { ProtoSchemas } from '../../tools/tb-server/proto-profile';
import { SchemaError, appTelemetryKeys, generateAll, loadProfile } from '../../tools/proto/generate';
import { describeProtobuf } from '../../tools/sim/proto-trace';

const PROFILES = join(__dirname, '../../tools/proto/profiles');
const schemasOf = (dir: string): ProtoSchemas => ({
  telemetry: readFileSync(join(PROFILES, dir, 'telemetry.proto'), 'utf8'),
  attributes: readFileSync(join(PROFILES, dir, 'attributes.proto'), 'utf8'),
  rpcRequest: readFileSync(join(PROFILES, dir, 'rpc-request.proto'), 'utf8'),
  rpcResponse: readFileSync(join(PROFILES, dir, 'rpc-response.proto'), 'utf8'),
});

describe('proto codec: ThingsBoard default schemas (reference §2)', () => {
  const codec = protoCodec(tbDefault);
  const server = new ProtoProfile(DEFAULT_PROTO_SCHEMAS);

  it('the profile files are the reference defaults (same root messages and fields)', () => {
    const mine = new ProtoProfile(schemasOf('thingsboard-default'));
    for (const k of ['telemetry', 'attributes', 'rpcRequest', 'rpcResponse'] as const) {
      assert.equal(mine[k].type.fullName, server[k].type.fullName);
      assert.deepEqual(mine[k].type.fieldsArray.map((f) => [f.name, f.id, f.type, !!f.hasPresence]), server[k].type.fieldsArray.map((f) => [f.name, f.id, f.type, !!f.hasPresence]));
    }
    assert.equal(server.telemetry.type.name, 'SensorDataReading', 'last top-level message is the root');
  });

  it('telemetry with the nested InnerObject, as the server prints it (includingDefaultValueFields, unset optionals absent)', () => {
    const bytes = codec.encodeTelemetry({ temperature: 42.5, innerObject: { key1: 'v', key2: true, key4: -3 } });
    assert.equal(codec.contentFormat, 42);
    assert.deepEqual(server.telemetry.toJson(bytes), { temperature: 42.5, innerObject: { key1: 'v', key2: true, key4: -3 } });
    assert.throws(() => codec.encodeTelemetry({ pressure: 1013 }), (e: Error) => e instanceof PayloadError && /pressure: no such field/.test(e.message), 'a key without a field is an error, not dropped');
    assert.throws(() => codec.encodeTelemetry({ temperature: 'hot' }), (e: Error) => e instanceof PayloadError && /temperature: expected a number/.test(e.message));
    assert.throws(() => codec.encodeTelemetry({ innerObject: { key4: 1.5 } }), /key4: expected an integer for int32/);
  });

  it('a flat schema drops the record ts (ThingsBoard stamps server time); one record per message', () => {
    const bytes = codec.encodeTelemetry({ ts: 1700000000000, values: { humidity: 40 } });
    assert.deepEqual(server.telemetry.toJson(bytes), { humidity: 40 });
    assert.equal(codec.maxTelemetryRecords, 1);
    assert.throws(() => codec.encodeTelemetry([{ humidity: 1 }, { humidity: 2 }]), /one record, not 2/);
    assert.deepEqual(server.telemetry.toJson(codec.encodeTelemetry([{ humidity: 1 }])), { humidity: 1 });
  });

  it('attributes', () => {
    const bytes = codec.encodeAttributes({ firmwareVersion: '1.0.2', serialNumber: 'SN-1' });
    assert.deepEqual(server.attributes.toJson(bytes), { firmwareVersion: '1.0.2', serialNumber: 'SN-1' });
    assert.throws(() => codec.encodeAttributes({ reportingInterval: 5 }), PayloadError);
  });

  it('server RPC: string params become JSON when they parse; the reply goes in payload as JSON text', () => {
    const req = server.rpcRequest.fromJson({ method: 'setInterval', requestId: 7, params: 30 });
    assert.deepEqual(codec.decodeRpcRequest(req), { id: 7, method: 'setInterval', params: 30 });
    const req2 = server.rpcRequest.fromJson({ method: 'echo', requestId: 8, params: 'hello' });
    assert.deepEqual(codec.decodeRpcRequest(req2), { id: 8, method: 'echo', params: 'hello' });
    const reply = codec.encodeRpcReply({ interval: 30 });
    assert.deepEqual(server.rpcResponse.toJson(reply), { payload: '{"interval":30}' });
    assert.deepEqual(server.rpcResponse.toJson(codec.encodeRpcReply('done')), { payload: 'done' });
    assert.deepEqual(server.rpcResponse.toJson(codec.encodeRpcReply({ payload: 'raw' })), { payload: 'raw' }, 'a result that fits the schema is sent as is');
  });

  it('the params pitfall: object params cannot go in the default string params field', () => {
    assert.throws(() => server.rpcRequest.fromJson({ method: 'setInterval', requestId: 1, params: { interval: 30 } }), ProtoConvertError);
  });

  it('an RPC request without requestId, or malformed, is a PayloadError', () => {
    assert.throws(() => codec.decodeRpcRequest(server.rpcRequest.fromJson({ method: 'x' })), /no requestId/);
    assert.throws(() => codec.decodeRpcRequest(new Uint8Array([0x12, 0x05, 0x61])), (e: Error) => e instanceof PayloadError && /RPC request: .*truncated|runs past/.test(e.message));
  });
});

describe('tb-server: DynamicProtoUtils / JsonFormat behaviour', () => {
  const schema = (telemetry: string): ProtoProfile => new ProtoProfile({ ...DEFAULT_PROTO_SCHEMAS, telemetry });

  it('the last top-level message is the root', () => {
    const p = schema('syntax = "proto3"; package t; message A { int32 x = 1; } message B { optional double y = 1; }');
    assert.equal(p.telemetry.type.name, 'B');
    assert.deepEqual(p.telemetry.toJson(Uint8Array.of(0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f)), { y: 1.5 });
  });

  it('includingDefaultValueFields: non-optional scalars with their zero values, repeated as [], unset optionals and messages absent', () => {
    const p = schema(`syntax = "proto3";
      enum E { ZERO = 0; ONE = 1; }
      message M { int32 a = 1; }
      message T { double a = 1; optional double b = 2; string s = 3; repeated int32 r = 4; int64 l = 5; E e = 6; bytes by = 7; M m = 8; bool f = 9; uint64 u = 10; float battery_voltage = 11; }`);
    assert.deepEqual(p.telemetry.toJson(new Uint8Array(0)), { a: 0, s: '', r: [], l: '0', e: 'ZERO', by: '', f: false, u: '0', batteryVoltage: 0 });
    const bytes = Uint8Array.of(0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x30, 0x01, 0x5d, 0xa4, 0x70, 0xab, 0x41);
    assert.deepEqual(p.telemetry.toJson(bytes), { a: 0, s: '', r: [], l: '-1', e: 'ONE', by: '', f: false, u: '0', batteryVoltage: 21.43 }, 'int64 as a string, enum by name, float as Float.toString');
  });

  it('bytes that are not a message of the schema are refused (4.00 at the endpoint)', () => {
    const p = schema(DEFAULT_PROTO_SCHEMAS.telemetry);
    assert.throws(() => p.telemetry.toJson(Buffer.from('{"temperature":21.5}')));
  });
});

describe('proto codec: ThingsBoard fixed messages', () => {
  const codec = protoCodec(deviceProfile);

  it('AttributeUpdateNotificationMsg: every KeyValueType, deletions', () => {
    const bytes = fixedMessages.attributeUpdate({ b: true, l: 42, d: 2.5, s: 'x', j: { a: [1] } }, ['gone'], 1700000000000);
    assert.deepEqual(codec.decodeAttributeUpdate(bytes), { shared: { b: true, l: 42, d: 2.5, s: 'x', j: { a: [1] } }, deleted: ['gone'] });
    assert.deepEqual(codec.decodeAttributeUpdate(fixedMessages.attributeUpdate({}, [], 0)), { shared: {}, deleted: [] });
    // keys that are Object.prototype properties become own properties (defined, never assigned through the prototype)
    const odd = codec.decodeAttributeUpdate(fixedMessages.attributeUpdate(JSON.parse('{"constructor":1,"__proto__":2,"toString":"x"}'), [], 0));
    assert.deepEqual(Object.keys(odd.shared).sort(), ['__proto__', 'constructor', 'toString']);
    assert.equal(Object.getPrototypeOf(odd.shared), Object.prototype);
    assert.equal(odd.shared.constructor, 1);
  });

  it('GetAttributeResponseMsg', () => {
    const bytes = fixedMessages.attributeResponse({ reportingInterval: 60 }, { reportingInterval: 5, name: 'x' }, 1);
    assert.deepEqual(codec.decodeAttributeSnapshot(bytes), { client: { reportingInterval: 60 }, shared: { reportingInterval: 5, name: 'x' } });
    assert.throws(() => codec.decodeAttributeSnapshot(new Uint8Array([0x12, 0x10])), PayloadError);
  });

  it('client RPC (RpcRequest / ToServerRpcResponseMsg), claim, provisioning', () => {
    assert.deepEqual(fixedMessages.clientRpcRequest(codec.encodeRpcCall('getTime', { tz: 'UTC' })), { method: 'getTime', params: '{"tz":"UTC"}' });
    assert.deepEqual(codec.decodeRpcResponse(fixedMessages.clientRpcResponse('{"time":5}')), { time: 5 });
    assert.deepEqual(fixedMessages.claim(codec.encodeClaim('s3cret', 60000)), { secretKey: 's3cret', durationMs: 60000 });
    const prov = fixedMessages.provisionRequest(codec.encodeProvisionRequest({ provisionDeviceKey: 'k', provisionDeviceSecret: 's', deviceName: 'd1', token: 'tok' }));
    assert.deepEqual(prov, { provisionDeviceKey: 'k', provisionDeviceSecret: 's', credentialsType: 'ACCESS_TOKEN', deviceName: 'd1', token: 'tok' });
    assert.deepEqual(codec.decodeProvisionResponse(fixedMessages.provisionResponse('SUCCESS', 'ACCESS_TOKEN', 'tok')), { status: 'SUCCESS', credentialsType: 'ACCESS_TOKEN', credentialsValue: 'tok' });
    assert.deepEqual(codec.decodeProvisionResponse(fixedMessages.provisionResponse('NOT_FOUND', 'ACCESS_TOKEN', '')).status, 'NOT_FOUND');
  });
});

describe('proto codec: the firmware profile', () => {
  const codec = protoCodec(deviceProfile);
  const server = new ProtoProfile(schemasOf('device'));

  it('timestamped telemetry with float readings; ThingsBoard keys are the JSON names (battery_voltage -> batteryVoltage)', () => {
    const bytes = codec.encodeTelemetry({ ts: 1700000000123, values: { temperature: 21.37, humidity: 45.2, pressure: 1013.25, batteryVoltage: 3.912 } });
    assert.equal(bytes.length, 29);
    assert.deepEqual(server.telemetry.toJson(bytes), {
      ts: '1700000000123', // JsonFormat prints int64 as a string; ThingsBoard's converter reads it as a long
      values: { temperature: 21.37, humidity: 45.2, pressure: 1013.25, batteryVoltage: 3.912 }, // Float.toString: shortest float text
    });
    assert.throws(() => codec.encodeTelemetry({ temperature: 1 }), /timestamped/);
  });

  it('the announce attributes and setInterval params as a message (no pitfall)', () => {
    const attrs = { reportingInterval: 60, current_fw_title: 'tb-coap', current_fw_version: '0.1.0' };
    assert.deepEqual(server.attributes.toJson(codec.encodeAttributes(attrs)), { reportingInterval: 60, currentFwTitle: 'tb-coap', currentFwVersion: '0.1.0' });
    const req = server.rpcRequest.fromJson({ method: 'setInterval', requestId: 3, params: { interval: 30 } });
    assert.deepEqual(codec.decodeRpcRequest(req), { id: 3, method: 'setInterval', params: { interval: 30 } });
    const get = server.rpcRequest.fromJson({ method: 'getState', requestId: 4, params: {} });
    assert.deepEqual(codec.decodeRpcRequest(get), { id: 4, method: 'getState', params: {} });
  });

  it('flat profile: 10 bytes for two float readings', () => {
    const flat = protoCodec(flatProfile);
    const bytes = flat.encodeTelemetry({ temperature: 21.5, humidity: 40.2 });
    assert.equal(bytes.length, 10);
    assert.deepEqual(new ProtoProfile(schemasOf('flat')).telemetry.toJson(bytes), { temperature: 21.5, humidity: 40.2 });
  });
});

describe('proto generator: build-time checks', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'proto-gen-'));
    for (const f of ['attributes.proto', 'rpc-request.proto', 'rpc-response.proto']) writeFileSync(join(dir, f), readFileSync(join(PROFILES, 'device', f)));
    writeFileSync(join(dir, 'profile.json'), '{}');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const telemetry = (body: string): void => writeFileSync(join(dir, 'telemetry.proto'), `syntax = "proto3";\n${body}\n`);

  it('reads the app telemetry keys from src/device/sources.ts', () => {
    assert.deepEqual(appTelemetryKeys().sort(), ['batteryVoltage', 'humidity', 'pressure', 'temperature']);
  });

  it('a key with no field is a build error naming it', () => {
    telemetry('message T { optional double temperature = 1; optional double humidity = 2; optional double pressure = 3; }');
    assert.throws(() => loadProfile(dir), (e: Error) => e instanceof SchemaError && /telemetry key batteryVoltage: no field/.test(e.message));
  });

  it('a field whose type does not hold a fractional reading is a build error', () => {
    for (const t of ['int32', 'sint64', 'string', 'bool', 'bytes', 'repeated double']) {
      telemetry(`message T { optional double temperature = 1; ${t} humidity = 2; optional double pressure = 3; optional float batteryVoltage = 4; }`);
      assert.throws(() => loadProfile(dir), (e: Error) => e instanceof SchemaError && /telemetry key humidity: field humidity is/.test(e.message), t);
    }
  });

  it('renames through profile.json keys, and a rename of an unknown key is an error', () => {
    telemetry('message T { optional double temperature = 1; optional double humidity = 2; optional double pressure = 3; optional float battery_v = 4; }');
    writeFileSync(join(dir, 'profile.json'), JSON.stringify({ keys: { batteryVoltage: 'battery_v' } }));
    const p = loadProfile(dir);
    assert.equal(p.alias.batteryVoltage, 'batteryV');
    assert.ok(p.notes.some((n) => /stores it as "batteryV"/.test(n)));
    writeFileSync(join(dir, 'profile.json'), JSON.stringify({ keys: { voltage: 'battery_v' } }));
    assert.throws(() => loadProfile(dir), /no telemetry key voltage/);
  });

  it('the last top-level message is the root; ts + values is the timestamped form', () => {
    telemetry('message V { optional float temperature = 1; optional float humidity = 2; optional float pressure = 3; optional float batteryVoltage = 4; }\nmessage Other { int32 x = 1; }\nmessage R { int64 ts = 1; V values = 2; }');
    const p = loadProfile(dir);
    assert.equal(p.telemetry.root.fullName, '.R');
    assert.equal(p.timestamped, true);
    telemetry('message V { optional float temperature = 1; optional float humidity = 2; optional float pressure = 3; optional float batteryVoltage = 4; }\nmessage R { string ts = 1; V values = 2; }');
    assert.throws(() => loadProfile(dir), /'ts' must be a 64-bit integer/);
  });

  it('a field whose JSON name is an Object.prototype property is refused (it would be assigned through the frozen prototype on XS)', () => {
    for (const name of ['constructor', 'to_string', 'value_of', 'has_own_property']) {
      telemetry(`message T { optional double temperature = 1; optional double humidity = 2; optional double pressure = 3; optional double batteryVoltage = 4; int32 ${name} = 5; }`);
      assert.throws(() => loadProfile(dir), /Object\.prototype property/, name);
    }
  });

  it('proto2, map fields and recursive messages are refused', () => {
    writeFileSync(join(dir, 'telemetry.proto'), 'syntax = "proto2";\nmessage T { optional double temperature = 1; }');
    assert.throws(() => loadProfile(dir), /proto3/);
    telemetry('message T { map<string, double> m = 1; }');
    assert.throws(() => loadProfile(dir), /map fields are not supported/);
    telemetry('message T { optional double temperature = 1; optional double humidity = 2; optional double pressure = 3; optional double batteryVoltage = 4; T next = 5; }');
    assert.throws(() => loadProfile(dir), /recursive message/);
  });

  it('the committed generated code is what the schemas give (npm run proto -- --check)', () => {
    const files = generateAll();
    for (const [name, text] of files) {
      const file = join(__dirname, '../../src/proto/gen', name);
      assert.equal(readFileSync(file, 'utf8'), text, `${name} is stale: npm run proto`);
    }
  });
});

describe('sim trace: Protobuf payloads decoded (npm start -- --protobuf)', () => {
  it('shows requests by path and notifications by shape, floats as Float.toString prints them', () => {
    const describe = describeProtobuf(deviceProfile);
    const codec = protoCodec(deviceProfile);
    const server = new ProtoProfile(schemasOf('device'));
    const tel = codec.encodeTelemetry({ ts: 1700000000123, values: { temperature: 21.37, humidity: 45.2 } });
    assert.equal(describe(tel, ['api', 'v1', 'TOKEN', 'telemetry'], 'request'), 'pb{"ts":1700000000123,"values":{"temperature":21.37,"humidity":45.2}}');
    assert.equal(describe(codec.encodeAttributes({ reportingInterval: 5 }), ['api', 'v1', 'attributes'], 'request'), 'pb{"reportingInterval":5}');
    assert.equal(describe(fixedMessages.attributeUpdate({ reportingInterval: 5 }, ['x'], 1), [], 'response'), 'pb{"shared":{"reportingInterval":5},"deleted":["x"]}');
    assert.equal(describe(server.rpcRequest.fromJson({ method: 'getState', requestId: 9, params: {} }), [], 'response'), 'pb{"method":"getState","requestId":9,"params":{}}');
    assert.equal(describe(codec.encodeClaim('s3cret', 1000), ['api', 'v1', 'T', 'claim'], 'request'), 'pb{"secretKey":"***","durationMs":"1000"}');
    assert.match(describe(Uint8Array.of(0x0f), ['api', 'v1', 'T', 'telemetry'], 'request')!, /^pb\(1 B, not decoded: wire type 7/);
  });
});
