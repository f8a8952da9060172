// Protobuf device profiles for the local endpoint, as ThingsBoard handles them (reference
// thingsboard-coap.md §2; DynamicProtoUtils, ProtoCoapAdaptor). Decoding and encoding use
// protobufjs reflection: independent of the device's generated code, so the two check each other.
//
// - Each user schema is parsed as proto3; the LAST top-level message is the root type.
// - Incoming bytes become JSON as JsonFormat.printer().includingDefaultValueFields() prints them:
//   lowerCamelCase JSON names, non-optional scalars present with their zero values, repeated fields
//   as arrays (empty too), unset optional/message fields absent, 64-bit integers as strings, enums
//   by name, bytes as base64, floats as Float.toString prints them. That JSON then goes through the
//   same converter as a JSON device's payload.
// - Outgoing server RPC: {"method","requestId","params":<params JSON>} merged into the RPC request
//   root with JsonFormat.parser().ignoringUnknownFields(). A value the field cannot take (the RPC
//   params pitfall: object params into the default `string params`) throws ProtoConvertError.
// - Fixed messages (attribute responses/notifications, client RPC, claim, provisioning): below,
//   transcribed from ThingsBoard's queue.proto / transport.proto.

import protobuf from 'protobufjs';
import type { JsonObject, JsonValue } from './store';

export interface ProtoSchemas {
  telemetry: string;
  attributes: string;
  rpcRequest: string;
  rpcResponse: string;
}

/** ThingsBoard's UI defaults for a new Protobuf profile (ui-ngx device.models.ts). */
export const DEFAULT_PROTO_SCHEMAS: Readonly<ProtoSchemas> = Object.freeze({
  telemetry: `syntax ="proto3";
package telemetry;

message SensorDataReading {

  optional double temperature = 1;
  optional double humidity = 2;
  InnerObject innerObject = 3;

  message InnerObject {
    optional string key1 = 1;
    optional bool key2 = 2;
    optional double key3 = 3;
    optional int32 key4 = 4;
    optional string key5 = 5;
  }
}`,
  attributes: `syntax ="proto3";
package attributes;

message SensorConfiguration {
  optional string firmwareVersion = 1;
  optional string serialNumber = 2;
}`,
  rpcRequest: `syntax ="proto3";
package rpc;

message RpcRequestMsg {
  optional string method = 1;
  optional int32 requestId = 2;
  optional string params = 3;
}`,
  rpcResponse: `syntax ="proto3";
package rpc;

message RpcResponseMsg {
  optional string payload = 1;
}`,
});

export class ProtoSchemaError extends Error {}
/** A JSON value the schema cannot take (JsonFormat parser failure). */
export class ProtoConvertError extends Error {}
/** Bytes that are not a message of the schema (InvalidProtocolBufferException). */
export class ProtoDecodeError extends Error {}

/** protobuf-java's JSON name: '_' dropped, the next character upper-cased. */
function toJsonName(name: string): string {
  return name.replace(/_+(.?)/g, (_m, c: string) => c.toUpperCase());
}

const INT64_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

/** Float.toString-like: the shortest decimal that reads back as the same float32. */
function floatValue(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

function parseSchema(text: string, what: string): protobuf.Type {
  let parsed: protobuf.IParserResult;
  try {
    parsed = protobuf.parse(text, { keepCase: true, alternateCommentMode: true });
    parsed.root.resolveAll();
  } catch (e) {
    throw new ProtoSchemaError(`${what} schema: ${(e as Error).message}`);
  }
  const ns = parsed.package ? (parsed.root.lookup(parsed.package) as protobuf.Namespace) : parsed.root;
  const top = ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
  if (!top.length) throw new ProtoSchemaError(`${what} schema: no message`);
  return top[top.length - 1]!;
}

/** One message type, converted like DynamicProtoUtils + JsonFormat. */
export class DynamicProto {
  readonly type: protobuf.Type;
  constructor(text: string, readonly what: string) {
    this.type = parseSchema(text, what);
  }

  /** Bytes -> JSON (printer().includingDefaultValueFields()). */
  toJson(bytes: Uint8Array): JsonObject {
    let msg: protobuf.Message;
    try {
      msg = this.type.decode(bytes);
    } catch (e) {
      throw new ProtoDecodeError(`${this.what}: ${(e as Error).message}`);
    }
    return printMessage(this.type, msg as unknown as Record<string, unknown>);
  }

  /** JSON -> bytes (parser().ignoringUnknownFields()). */
  fromJson(json: JsonObject): Buffer {
    const obj = parseMessage(this.type, json, this.what);
    return Buffer.from(this.type.encode(this.type.fromObject(obj)).finish());
  }
}

function printValue(f: protobuf.Field, v: unknown): JsonValue {
  if (f.resolvedType instanceof protobuf.Type) return printMessage(f.resolvedType, v as Record<string, unknown>);
  if (f.resolvedType instanceof protobuf.Enum) {
    const name = f.resolvedType.valuesById[v as number];
    return name ?? (v as number);
  }
  if (INT64_TYPES.has(f.type)) return String(v); // Long or number: JsonFormat prints 64-bit integers as strings
  if (f.type === 'bytes') return Buffer.from(v as Uint8Array).toString('base64');
  if (f.type === 'float' || f.type === 'double') {
    const n = v as number;
    if (Number.isNaN(n)) return 'NaN';
    if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
    return f.type === 'float' ? floatValue(n) : n;
  }
  return v as JsonValue;
}

function defaultOf(f: protobuf.Field): JsonValue {
  if (f.resolvedType instanceof protobuf.Enum) return f.resolvedType.valuesById[0] ?? 0;
  if (INT64_TYPES.has(f.type)) return '0';
  if (f.type === 'string' || f.type === 'bytes') return '';
  if (f.type === 'bool') return false;
  return 0;
}

function printMessage(type: protobuf.Type, msg: Record<string, unknown>): JsonObject {
  const out: JsonObject = {};
  for (const f of type.fieldsArray) {
    const has = Object.prototype.hasOwnProperty.call(msg, f.name) && msg[f.name] !== undefined && msg[f.name] !== null;
    const key = toJsonName(f.name);
    if (f.repeated || f.map) {
      if (f.map) {
        const m: JsonObject = {};
        for (const [k, v] of Object.entries((msg[f.name] as Record<string, unknown>) ?? {})) m[k] = printValue(f, v);
        out[key] = m;
      } else out[key] = ((has ? msg[f.name] : []) as unknown[]).map((v) => printValue(f, v));
      continue;
    }
    // presence: proto3 `optional`, oneof members, and message fields (protobufjs's hasPresence misses the last)
    if (f.partOf || f.resolvedType instanceof protobuf.Type) {
      if (has) out[key] = printValue(f, msg[f.name]);
      continue;
    }
    out[key] = has ? printValue(f, msg[f.name]) : defaultOf(f);
  }
  return out;
}

function convertFail(what: string, field: string, v: JsonValue, want: string): never {
  throw new ProtoConvertError(`${what}: field ${field} cannot take ${JSON.stringify(v)} (expected ${want})`);
}

function parseScalar(f: protobuf.Field, v: JsonValue, what: string): unknown {
  if (f.resolvedType instanceof protobuf.Type) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) convertFail(what, f.name, v, 'an object');
    return parseMessage(f.resolvedType, v, what);
  }
  if (f.resolvedType instanceof protobuf.Enum) {
    if (typeof v === 'string' && v in f.resolvedType.values) return f.resolvedType.values[v];
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    return convertFail(what, f.name, v, 'an enum name or number');
  }
  if (f.type === 'string') {
    // JsonElement.getAsString(): primitives convert, objects and arrays do not
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return convertFail(what, f.name, v, 'a string');
  }
  if (f.type === 'bool') {
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    return convertFail(what, f.name, v, 'a boolean');
  }
  if (f.type === 'bytes') {
    if (typeof v === 'string') return Buffer.from(v, 'base64');
    return convertFail(what, f.name, v, 'base64 text');
  }
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (f.type === 'float' || f.type === 'double') {
    if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
    if (Number.isNaN(n)) return convertFail(what, f.name, v, 'a number');
    return n;
  }
  if (!Number.isInteger(n)) return convertFail(what, f.name, v, `an integer for ${f.type}`);
  if (INT32_TYPES.has(f.type)) {
    const unsigned = f.type === 'uint32' || f.type === 'fixed32';
    if (n < (unsigned ? 0 : -2147483648) || n > (unsigned ? 4294967295 : 2147483647)) return convertFail(what, f.name, v, `a ${f.type}`);
    return n;
  }
  return typeof v === 'string' ? v : n; // 64-bit: protobufjs fromObject takes strings and numbers
}

function parseMessage(type: protobuf.Type, json: JsonObject, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const f = type.fieldsArray.find((x) => toJsonName(x.name) === k || x.name === k);
    if (!f) continue; // ignoringUnknownFields
    if (v === null) continue;
    if (f.repeated) {
      if (!Array.isArray(v)) convertFail(what, f.name, v, 'an array');
      out[f.name] = v.map((x) => parseScalar(f, x, what));
    } else out[f.name] = parseScalar(f, v, what);
  }
  return out;
}

// ------------------------------------------------------------------ ThingsBoard's fixed messages

const FIXED = protobuf.parse(`
syntax = "proto3";
package transport;
enum KeyValueType { BOOLEAN_V = 0; LONG_V = 1; DOUBLE_V = 2; STRING_V = 3; JSON_V = 4; }
message KeyValueProto { string key = 1; KeyValueType type = 2; bool bool_v = 3; int64 long_v = 4; double double_v = 5; string string_v = 6; string json_v = 7; }
message TsKvProto { int64 ts = 1; KeyValueProto kv = 2; optional int64 version = 3; }
message AttributeUpdateNotificationMsg { repeated TsKvProto sharedUpdated = 1; repeated string sharedDeleted = 2; }
message GetAttributeResponseMsg { int32 requestId = 1; repeated TsKvProto clientAttributeList = 2; repeated TsKvProto sharedAttributeList = 3; bool isMultipleAttributesRequest = 4; string error = 5; bool sharedStateMsg = 6; }
message ToServerRpcResponseMsg { int32 requestId = 1; string payload = 2; string error = 3; }
message RpcRequest { string method = 1; string params = 2; }
message ClaimDevice { string secretKey = 1; int64 durationMs = 2; }
message AttributesRequest { string clientKeys = 1; string sharedKeys = 2; }
enum CredentialsType { ACCESS_TOKEN = 0; X509_CERTIFICATE = 1; MQTT_BASIC = 2; LWM2M_CREDENTIALS = 3; }
enum ResponseStatus { UNKNOWN = 0; SUCCESS = 1; NOT_FOUND = 2; FAILURE = 3; }
message ValidateDeviceTokenRequestMsg { string token = 1; }
message ValidateDeviceX509CertRequestMsg { string hash = 1; }
message ValidateBasicMqttCredRequestMsg { string clientId = 1; string userName = 2; string password = 3; }
message ProvisionDeviceCredentialsMsg { string provisionDeviceKey = 1; string provisionDeviceSecret = 2; }
message CredentialsDataProto { ValidateDeviceTokenRequestMsg validateDeviceTokenRequestMsg = 1; ValidateDeviceX509CertRequestMsg validateDeviceX509CertRequestMsg = 2; ValidateBasicMqttCredRequestMsg validateBasicMqttCredRequestMsg = 3; }
message ProvisionDeviceRequestMsg { string deviceName = 1; CredentialsType credentialsType = 2; ProvisionDeviceCredentialsMsg provisionDeviceCredentialsMsg = 3; CredentialsDataProto credentialsDataProto = 4; bool gateway = 5; }
message ProvisionDeviceResponseMsg { ResponseStatus status = 1; CredentialsType credentialsType = 2; string credentialsValue = 3; }
`, { keepCase: true }).root;
FIXED.resolveAll();
const fixed = (name: string): protobuf.Type => FIXED.lookupType(`transport.${name}`);

function kv(key: string, value: JsonValue): Record<string, unknown> {
  if (typeof value === 'boolean') return { key, type: 0, bool_v: value };
  if (typeof value === 'number') return Number.isInteger(value) ? { key, type: 1, long_v: value } : { key, type: 2, double_v: value };
  if (typeof value === 'string') return { key, type: 3, string_v: value };
  return { key, type: 4, json_v: JSON.stringify(value) };
}

function encodeFixed(name: string, obj: Record<string, unknown>): Buffer {
  const t = fixed(name);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

function decodeFixed(name: string, bytes: Uint8Array): Record<string, unknown> {
  const t = fixed(name);
  try {
    return t.toObject(t.decode(bytes), { longs: Number, enums: String, defaults: true });
  } catch (e) {
    throw new ProtoDecodeError(`${name}: ${(e as Error).message}`);
  }
}

export const fixedMessages = {
  attributeUpdate(updated: JsonObject, deleted: string[], ts: number): Buffer {
    return encodeFixed('AttributeUpdateNotificationMsg', {
      sharedUpdated: Object.entries(updated).map(([k, v]) => ({ ts, kv: kv(k, v) })),
      sharedDeleted: deleted,
    });
  },
  attributeResponse(client: JsonObject, shared: JsonObject, ts: number, requestId?: number): Buffer {
    return encodeFixed('GetAttributeResponseMsg', {
      ...(requestId !== undefined ? { requestId } : {}),
      clientAttributeList: Object.entries(client).map(([k, v]) => ({ ts, kv: kv(k, v) })),
      sharedAttributeList: Object.entries(shared).map(([k, v]) => ({ ts, kv: kv(k, v) })),
    });
  },
  /** MQTT attribute request (TransportApiProtos.AttributesRequest): comma-separated key lists. */
  attributeRequest(bytes: Uint8Array): { clientKeys: string; sharedKeys: string } {
    const m = decodeFixed('AttributesRequest', bytes);
    return { clientKeys: String(m.clientKeys ?? ''), sharedKeys: String(m.sharedKeys ?? '') };
  },
  clientRpcRequest(bytes: Uint8Array): { method: string; params: string } {
    const m = decodeFixed('RpcRequest', bytes);
    return { method: String(m.method ?? ''), params: String(m.params ?? '') };
  },
  clientRpcResponse(payload: string): Buffer {
    return encodeFixed('ToServerRpcResponseMsg', { payload });
  },
  claim(bytes: Uint8Array): { secretKey: string; durationMs: number } {
    const m = decodeFixed('ClaimDevice', bytes);
    return { secretKey: String(m.secretKey ?? ''), durationMs: Number(m.durationMs ?? 0) };
  },
  /** ProvisionDeviceRequestMsg as the JSON request's fields. */
  provisionRequest(bytes: Uint8Array): JsonObject {
    const m = decodeFixed('ProvisionDeviceRequestMsg', bytes) as {
      deviceName?: string; credentialsType?: string;
      provisionDeviceCredentialsMsg?: { provisionDeviceKey?: string; provisionDeviceSecret?: string };
      credentialsDataProto?: { validateDeviceTokenRequestMsg?: { token?: string }; validateDeviceX509CertRequestMsg?: { hash?: string } };
    };
    const out: JsonObject = {
      provisionDeviceKey: m.provisionDeviceCredentialsMsg?.provisionDeviceKey ?? '',
      provisionDeviceSecret: m.provisionDeviceCredentialsMsg?.provisionDeviceSecret ?? '',
      credentialsType: m.credentialsType ?? 'ACCESS_TOKEN',
    };
    if (m.deviceName) out.deviceName = m.deviceName;
    const token = m.credentialsDataProto?.validateDeviceTokenRequestMsg?.token;
    if (token) out.token = token;
    const hash = m.credentialsDataProto?.validateDeviceX509CertRequestMsg?.hash;
    if (hash) out.hash = hash;
    return out;
  },
  provisionResponse(status: string, credentialsType: string, credentialsValue: string): Buffer {
    return encodeFixed('ProvisionDeviceResponseMsg', { status, credentialsType, credentialsValue });
  },
};

/** A device's four schemas, compiled. Throws ProtoSchemaError for a schema protobufjs cannot parse. */
export class ProtoProfile {
  readonly telemetry: DynamicProto;
  readonly attributes: DynamicProto;
  readonly rpcRequest: DynamicProto;
  readonly rpcResponse: DynamicProto;
  constructor(readonly schemas: ProtoSchemas) {
    this.telemetry = new DynamicProto(schemas.telemetry, 'telemetry');
    this.attributes = new DynamicProto(schemas.attributes, 'attributes');
    this.rpcRequest = new DynamicProto(schemas.rpcRequest, 'RPC request');
    this.rpcResponse = new DynamicProto(schemas.rpcResponse, 'RPC response');
  }
}

/** Compiled profiles, keyed by schema text (devices sharing schemas share one). */
const cache = new Map<string, ProtoProfile>();
export function compileProfile(schemas: ProtoSchemas): ProtoProfile {
  const key = JSON.stringify([schemas.telemetry, schemas.attributes, schemas.rpcRequest, schemas.rpcResponse]);
  let p = cache.get(key);
  if (!p) {
    p = new ProtoProfile(schemas);
    if (cache.size >= 64) cache.delete(cache.keys().next().value as string);
    cache.set(key, p);
  }
  return p;
}
