/*
 * Protobuf payloads in the live view (npm start -- --protobuf): each binary payload decoded with the
 * device profile's generated code and ThingsBoard's fixed messages, shown as JSON with a "pb" tag.
 * Requests are told apart by their path; notifications and responses by their shape (an RPC
 * request has a requestId; an attribute notification has none).
 */
import type { TbObject, TbValue } from '../../src/thingsboard/payload';
import { ProtoError } from '../../src/proto/wire';
import * as tb from '../../src/proto/gen/thingsboard';
import type { ProtoProfile } from '../../src/thingsboard/proto-codec';
import { protoCodec } from '../../src/thingsboard/proto-codec';
import type { PayloadDescriber } from './trace';
import { redactPayload } from './trace';

export interface TraceableProfile extends ProtoProfile {
  decodeTelemetry(bytes: Uint8Array): TbObject | ProtoError;
  decodeAttributes(bytes: Uint8Array): TbObject | ProtoError;
  decodeRpcResponse(bytes: Uint8Array): TbObject | ProtoError;
}

const MAX = 160;

/** A float field's value as Float.toString prints it (21.37, not 21.3700008392334). */
function shortFloat(v: number): number {
  if (Number.isInteger(v) || !Number.isFinite(v) || Math.fround(v) !== v) return v;
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

function show(v: TbValue | ProtoError, bytes: number): string {
  if (v instanceof ProtoError) return `pb(${bytes} B, not decoded: ${v.message})`;
  let text = redactPayload(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' ? shortFloat(x) : x)));
  if (text.length > MAX) text = text.slice(0, MAX - 3) + '...';
  return `pb${text}`;
}

export function describeProtobuf(profile: TraceableProfile): PayloadDescriber {
  const codec = protoCodec(profile);
  return (payload, path, direction) => {
    const feature = path.includes('provision') ? 'provision' : path[path.length - 1] === 'telemetry' || path[path.length - 1] === 'attributes' || path[path.length - 1] === 'claim' ? path[path.length - 1] : path[path.length - 2] === 'rpc' ? 'rpc-reply' : path[path.length - 1];
    if (direction === 'request') {
      switch (feature) {
        case 'telemetry':
          return show(profile.decodeTelemetry(payload), payload.length);
        case 'attributes':
          return show(profile.decodeAttributes(payload), payload.length);
        case 'rpc-reply':
          return show(profile.decodeRpcResponse(payload), payload.length);
        case 'rpc': {
          const m = tb.decodeRpcRequest(payload);
          return show(m instanceof ProtoError ? m : { method: m.method ?? '', params: m.params ?? '' }, payload.length);
        }
        case 'claim': {
          const m = tb.decodeClaimDevice(payload);
          return show(m instanceof ProtoError ? m : { secretKey: '***', durationMs: String(m.durationMs ?? 0) }, payload.length);
        }
        default:
          return undefined;
      }
    }
    // Notifications and responses: an RPC request has a requestId, an attribute notification none.
    const rpc = profile.decodeRpcRequest(payload);
    if (!(rpc instanceof ProtoError) && typeof rpc.requestId === 'number') return show(rpc, payload.length);
    try {
      const u = codec.decodeAttributeUpdate(payload);
      return show({ shared: u.shared, ...(u.deleted.length ? { deleted: u.deleted } : {}) }, payload.length);
    } catch {
      return `pb(${payload.length} B)`;
    }
  };
}
