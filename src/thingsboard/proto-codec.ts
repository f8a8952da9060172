/*
 * Protobuf payload codec for a ThingsBoard device profile with transportPayloadType PROTOBUF
 * (reference thingsboard-coap.md §2). Which message each direction uses:
 *
 *   telemetry POST           the profile's telemetry schema (flat, or ts + values)
 *   attributes POST          the profile's attributes schema
 *   attribute request (MQTT) TransportApiProtos.AttributesRequest (fixed; CoAP: URI query)
 *   attribute GET response   TransportProtos.GetAttributeResponseMsg (fixed)
 *   attribute notifications  TransportProtos.AttributeUpdateNotificationMsg (fixed, the first too)
 *   server RPC request       the profile's RPC request schema (method, requestId, params)
 *   server RPC reply         the profile's RPC response schema
 *   client RPC               TransportApiProtos.RpcRequest / TransportProtos.ToServerRpcResponseMsg
 *   claim                    TransportApiProtos.ClaimDevice
 *   provision                ProvisionDeviceRequestMsg / ProvisionDeviceResponseMsg
 *
 * The profile's encoders/decoders are generated at build time (npm run proto) from its .proto
 * files into src/proto/gen/<profile>.ts; that module's `profile` object is what protoCodec takes.
 * Every failure (a value that does not fit the schema, malformed bytes) is a PayloadError.
 */
import { ContentFormat } from '../coap/types';
import type { Int64 } from '../proto/wire';
import { FloatScratch, ProtoError } from '../proto/wire';
import {
  CredentialsType,
  KeyValueType,
  decodeAttributeUpdateNotificationMsg,
  decodeGetAttributeResponseMsg,
  decodeProvisionDeviceResponseMsg,
  decodeToServerRpcResponseMsg,
  encodeAttributesRequest,
  encodeClaimDevice,
  encodeProvisionDeviceRequestMsg,
  encodeRpcRequest,
} from '../proto/gen/thingsboard';
import type { AttributesRequest, ClaimDevice, KeyValueProto, ProvisionDeviceRequestMsg, TsKvProto } from '../proto/gen/thingsboard';
import type { PayloadCodec, ProvisionRequest, TbObject, TbValue, TelemetryRecord } from './payload';
import { PayloadError } from './payload';

/** What a generated profile module exports as `profile`. */
export interface ProtoProfile {
  readonly name: string;
  readonly timestamped: boolean;
  encodeTelemetry(values: TbObject, ts?: number, scratch?: FloatScratch): Uint8Array;
  encodeAttributes(values: TbObject, scratch?: FloatScratch): Uint8Array;
  decodeRpcRequest(bytes: Uint8Array): TbObject | ProtoError;
  encodeRpcResponse(values: TbObject, scratch?: FloatScratch): Uint8Array;
  readonly rpcResponsePayloadField: string | undefined;
}

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PayloadError) throw e;
    throw new PayloadError(`${what}: ${(e as Error).message}`);
  }
}

function decoded<T>(what: string, v: T | ProtoError): T {
  if (v instanceof ProtoError) throw new PayloadError(`${what}: ${v.message}`);
  return v;
}

function isObject(v: TbValue | undefined): v is TbObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON text if it parses, else the string itself (ThingsBoard's params/payload strings). */
function jsonOrString(s: string): TbValue {
  try {
    return JSON.parse(s) as TbValue;
  } catch {
    return s;
  }
}

function int64Value(v: Int64 | undefined): TbValue {
  return typeof v === 'bigint' ? v.toString() : (v ?? 0);
}

/** One KeyValueProto as the value ThingsBoard's JSON API would give. */
function kvValue(kv: KeyValueProto): TbValue {
  switch (kv.type) {
    case KeyValueType.BOOLEAN_V:
      return kv.boolV ?? false;
    case KeyValueType.LONG_V:
      return int64Value(kv.longV);
    case KeyValueType.DOUBLE_V:
      return kv.doubleV ?? 0;
    case KeyValueType.JSON_V:
      return jsonOrString(kv.jsonV ?? '');
    default:
      return kv.stringV ?? '';
  }
}

function kvList(list: TsKvProto[] | undefined): TbObject {
  const out: TbObject = {};
  // Defined, not assigned: a key such as "constructor" would otherwise be assigned through
  // Object.prototype, which is frozen on XS (as JSON.parse defines the JSON codec's keys).
  if (list) for (const e of list) if (e.kv?.key !== undefined) Object.defineProperty(out, e.kv.key, { value: kvValue(e.kv), enumerable: true, writable: true, configurable: true });
  return out;
}

const STATUS: readonly string[] = Object.freeze(['UNKNOWN', 'SUCCESS', 'NOT_FOUND', 'FAILURE']);
const CREDENTIALS: readonly string[] = Object.freeze(['ACCESS_TOKEN', 'X509_CERTIFICATE', 'MQTT_BASIC', 'LWM2M_CREDENTIALS']);

/**
 * The codec for a generated profile. Call it at run time (not while preloading): it owns the float
 * scratch every encode writes through.
 */
export function protoCodec(profile: ProtoProfile): PayloadCodec {
  const scratch = new FloatScratch();
  const one = (r: TelemetryRecord): Uint8Array => {
    if ('ts' in r && 'values' in r && isObject(r.values as TbValue)) {
      const { ts, values } = r as { ts: number; values: TbObject };
      // A flat schema has no place for ts: ThingsBoard stamps the server's time.
      return profile.encodeTelemetry(values, profile.timestamped ? ts : undefined, scratch);
    }
    if (profile.timestamped) throw new PayloadError(`telemetry: profile ${profile.name} is timestamped (ts + values); the record has no ts`);
    return profile.encodeTelemetry(r as TbObject, undefined, scratch);
  };
  return Object.freeze<PayloadCodec>({
    name: `protobuf:${profile.name}`,
    contentFormat: ContentFormat.OCTET_STREAM,
    maxTelemetryRecords: 1,
    encodeTelemetry(records) {
      return guard('telemetry', () => {
        if (Array.isArray(records)) {
          if (records.length !== 1) throw new PayloadError(`telemetry: a Protobuf message carries one record, not ${records.length}`);
          return one(records[0]!);
        }
        return one(records);
      });
    },
    encodeAttributes(attributes) {
      return guard('attributes', () => profile.encodeAttributes(attributes, scratch));
    },
    encodeRpcReply(result) {
      return guard('RPC reply', () => {
        if (isObject(result)) {
          try {
            return profile.encodeRpcResponse(result, scratch);
          } catch (e) {
            if (!(e instanceof ProtoError) || profile.rpcResponsePayloadField === undefined) throw e;
          }
        }
        const field = profile.rpcResponsePayloadField;
        if (field === undefined) throw new PayloadError(`RPC reply: the result does not fit profile ${profile.name}'s response schema, which has no string payload field`);
        return profile.encodeRpcResponse({ [field]: typeof result === 'string' ? result : JSON.stringify(result) }, scratch);
      });
    },
    encodeRpcCall(method, params) {
      return guard('client RPC', () => encodeRpcRequest({ method, params: typeof params === 'string' ? params : JSON.stringify(params) }));
    },
    encodeClaim(secretKey, durationMs) {
      return guard('claim', () => {
        const m: ClaimDevice = {};
        if (secretKey !== undefined) m.secretKey = secretKey;
        if (durationMs !== undefined) {
          if (!Number.isSafeInteger(durationMs)) throw new PayloadError('claim: durationMs must be an integer');
          m.durationMs = durationMs;
        }
        return encodeClaimDevice(m);
      });
    },
    encodeProvisionRequest(request: ProvisionRequest) {
      return guard('provision', () => {
        const m: ProvisionDeviceRequestMsg = {
          provisionDeviceCredentialsMsg: { provisionDeviceKey: request.provisionDeviceKey, provisionDeviceSecret: request.provisionDeviceSecret },
        };
        if (request.deviceName !== undefined) m.deviceName = request.deviceName;
        if (request.credentialsType === 'X509_CERTIFICATE') m.credentialsType = CredentialsType.X509_CERTIFICATE;
        if (request.token !== undefined) m.credentialsDataProto = { validateDeviceTokenRequestMsg: { token: request.token } };
        if (request.hash !== undefined) m.credentialsDataProto = { ...m.credentialsDataProto, validateDeviceX509CertRequestMsg: { hash: request.hash } };
        return encodeProvisionDeviceRequestMsg(m);
      });
    },
    decodeProvisionResponse(payload) {
      const m = decoded('provision response', decodeProvisionDeviceResponseMsg(payload));
      const status = STATUS[m.status ?? 0] ?? String(m.status);
      const out: TbObject = {
        status,
        credentialsType: CREDENTIALS[m.credentialsType ?? 0] ?? String(m.credentialsType),
        credentialsValue: m.credentialsValue ?? '',
      };
      // ProvisionDeviceResponseMsg has no errorMsg: give the one ThingsBoard's JSON reply carries
      if (status === 'NOT_FOUND') out.errorMsg = 'Provision data was not found!';
      else if (status !== 'SUCCESS') out.errorMsg = 'Failed to provision device!';
      return out;
    },
    decodeRpcResponse(payload) {
      const m = decoded('RPC response', decodeToServerRpcResponseMsg(payload));
      if (m.error) return { error: m.error };
      return jsonOrString(m.payload ?? '');
    },
    encodeAttributeRequest(clientKeys, sharedKeys) {
      return guard('attribute request', () => {
        const m: AttributesRequest = {};
        if (clientKeys) m.clientKeys = clientKeys;
        if (sharedKeys) m.sharedKeys = sharedKeys;
        return encodeAttributesRequest(m);
      });
    },
    encodeObject() {
      throw new PayloadError(`profile ${profile.name}: Protobuf has no schema for a free-form object`);
    },
    decodeAttributeUpdate(payload) {
      const m = decoded('attribute update', decodeAttributeUpdateNotificationMsg(payload));
      return { shared: kvList(m.sharedUpdated), deleted: m.sharedDeleted ?? [] };
    },
    decodeAttributeSnapshot(payload) {
      const m = decoded('attributes response', decodeGetAttributeResponseMsg(payload));
      if (m.error) throw new PayloadError(`attributes response: ${m.error}`);
      return { client: kvList(m.clientAttributeList), shared: kvList(m.sharedAttributeList) };
    },
    decodeRpcRequest(payload) {
      const o = decoded('RPC request', profile.decodeRpcRequest(payload));
      const id = o.requestId;
      if (typeof id !== 'number') throw new PayloadError(`RPC request: no requestId in profile ${profile.name}'s message`);
      const method = typeof o.method === 'string' ? o.method : '';
      const p = o.params;
      return { id, method, params: typeof p === 'string' ? jsonOrString(p) : (p ?? null) };
    },
    decodeValue(payload) {
      return this.decodeRpcResponse(payload);
    },
  });
}
