/*
 * Payload codecs. ThingsBoard picks the codec by device profile, never by Content-Format
 * (reference §1.4). JSON is built in; a Protobuf codec plugs in through the same interface.
 */
import { ContentFormat } from '../coap/types';
import { decodeUtf8 as utf8Decode, encodeUtf8 as utf8Encode } from '../coap/utf8';

export type TbValue = string | number | boolean | null | TbObject | TbValue[];
export interface TbObject {
  [key: string]: TbValue;
}

/** One telemetry record: flat values (server time) or with its own timestamp. */
export type TelemetryRecord = TbObject | { ts: number; values: TbObject };

export interface RpcRequest {
  id: number;
  method: string;
  params: TbValue;
}

export interface AttributeUpdate {
  /** Changed (or, for the first notification, all) shared attributes. */
  shared: TbObject;
  /** Deleted shared-attribute keys. */
  deleted: string[];
}

export interface AttributeSnapshot {
  client: TbObject;
  shared: TbObject;
}

export interface ProvisionResult {
  credentialsType: string;
  credentialsValue: string;
}

/** POST /api/v1/provision body (ThingsBoard's JSON names; Protobuf: ProvisionDeviceRequestMsg). */
export interface ProvisionRequest {
  provisionDeviceKey: string;
  provisionDeviceSecret: string;
  deviceName?: string;
  credentialsType?: 'ACCESS_TOKEN' | 'X509_CERTIFICATE';
  token?: string;
  hash?: string;
}

export interface PayloadCodec {
  readonly name: string;
  readonly contentFormat: number;
  encodeTelemetry(records: TelemetryRecord | TelemetryRecord[]): Uint8Array;
  encodeAttributes(attributes: TbObject): Uint8Array;
  encodeRpcReply(result: TbValue): Uint8Array;
  encodeRpcCall(method: string, params: TbValue): Uint8Array;
  encodeObject(value: TbObject): Uint8Array;
  /**
   * An MQTT attribute request body: the key lists as comma-separated strings (empty = none).
   * JSON: {"clientKeys","sharedKeys"}; Protobuf: TransportApiProtos.AttributesRequest.
   */
  encodeAttributeRequest(clientKeys: string, sharedKeys: string): Uint8Array;
  encodeClaim(secretKey?: string, durationMs?: number): Uint8Array;
  encodeProvisionRequest(request: ProvisionRequest): Uint8Array;
  /** The provision reply as ThingsBoard's JSON names: {status, credentialsType, credentialsValue, errorMsg?}. */
  decodeProvisionResponse(payload: Uint8Array): TbObject;
  /** A client-side RPC answer. */
  decodeRpcResponse(payload: Uint8Array): TbValue;
  /**
   * Most telemetry records one message can carry (undefined: no limit). A Protobuf profile's
   * schema describes one record, so its codec says 1 and replays go one record per POST.
   */
  readonly maxTelemetryRecords?: number;
  decodeAttributeUpdate(payload: Uint8Array): AttributeUpdate;
  decodeAttributeSnapshot(payload: Uint8Array): AttributeSnapshot;
  decodeRpcRequest(payload: Uint8Array): RpcRequest;
  decodeValue(payload: Uint8Array): TbValue;
}

export class PayloadError extends Error {
  // A class field (define semantics), not an assignment to name in the constructor: on Moddable the built-in Error.prototype
  // is frozen after preload, and assigning an inherited read-only property throws there.
  override readonly name: string = 'PayloadError';
  constructor(message: string) {
    super(message);
  }
}

function parse(payload: Uint8Array, what: string): TbValue {
  let text: string;
  try {
    text = utf8Decode(payload);
  } catch {
    throw new PayloadError(`${what}: payload is not UTF-8`);
  }
  try {
    return JSON.parse(text) as TbValue;
  } catch {
    throw new PayloadError(`${what}: payload is not JSON (${payload.length} bytes)`);
  }
}

function isObject(v: TbValue | undefined): v is TbObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const json = (value: unknown): Uint8Array => utf8Encode(JSON.stringify(value));

export const jsonCodec: PayloadCodec = Object.freeze<PayloadCodec>({
  name: 'json',
  contentFormat: ContentFormat.JSON,
  encodeTelemetry: json,
  encodeAttributes: json,
  encodeObject: json,
  encodeAttributeRequest(clientKeys, sharedKeys) {
    const body: TbObject = {};
    if (clientKeys) body.clientKeys = clientKeys;
    if (sharedKeys) body.sharedKeys = sharedKeys;
    return json(body);
  },
  encodeRpcReply(result) {
    // ThingsBoard forwards a JSON object as the RPC result; a primitive is not mapped to 4.00
    // but silently never answered (reference §1.3), so wrap primitives.
    return json(isObject(result) ? result : { result });
  },
  encodeRpcCall(method, params) {
    return json({ method, params });
  },
  encodeClaim(secretKey, durationMs) {
    const body: TbObject = {};
    if (secretKey !== undefined) body.secretKey = secretKey;
    if (durationMs !== undefined) body.durationMs = durationMs;
    return json(body);
  },
  encodeProvisionRequest(request) {
    return json(request);
  },
  decodeProvisionResponse(payload) {
    const v = parse(payload, 'provision response');
    if (!isObject(v)) throw new PayloadError('provision response: not a JSON object');
    return v;
  },
  decodeRpcResponse(payload) {
    return parse(payload, 'RPC response');
  },
  decodeAttributeUpdate(payload) {
    const v = parse(payload, 'attribute update');
    if (!isObject(v)) throw new PayloadError('attribute update: not a JSON object');
    const deleted = Array.isArray(v.deleted) ? v.deleted.filter((k): k is string => typeof k === 'string') : [];
    const shared: TbObject = {};
    for (const key of Object.keys(v)) if (key !== 'deleted') shared[key] = v[key]!;
    // The first notification of a subscription may be a snapshot {"shared":{...}} on some
    // versions; accept that form too.
    if (isObject(v.shared) && Object.keys(v).length === 1) return { shared: v.shared, deleted };
    return { shared, deleted };
  },
  decodeAttributeSnapshot(payload) {
    const v = parse(payload, 'attributes response');
    if (!isObject(v)) throw new PayloadError('attributes response: not a JSON object');
    return { client: isObject(v.client) ? v.client : {}, shared: isObject(v.shared) ? v.shared : {} };
  },
  decodeRpcRequest(payload) {
    const v = parse(payload, 'RPC request');
    if (!isObject(v) || typeof v.id !== 'number' || typeof v.method !== 'string')
      throw new PayloadError('RPC request: expected {"id":number,"method":string,...}');
    return { id: v.id, method: v.method, params: v.params ?? null };
  },
  decodeValue(payload) {
    return parse(payload, 'response');
  },
});
