/*
 * One live-trace line per MQTT packet (the simulator's -> / <- view); the access token (the
 * CONNECT's user name) never appears.
 */
import type { MqttPacket } from '../../src/mqtt/codec';
import type { PayloadDescriber } from './trace';

/**
 * A PUBLISH topic as the CoAP-style path a PayloadDescriber reads (…/telemetry, …/attributes,
 * rpc/{id} for a server-RPC reply, rpc for a client RPC); an attribute request or a response
 * topic gives a path the describer does not know, so the body is shown by its length only.
 */
function pathOf(topic: string, out: boolean): string[] {
  const parts = topic.split('/');
  const n = parts.length;
  if (out && parts[n - 3] === 'rpc' && parts[n - 2] === 'response') return ['rpc', parts[n - 1]!];
  if (out && parts[n - 3] === 'rpc' && parts[n - 2] === 'request') return ['rpc'];
  if (parts[n - 2] === 'request' || parts[n - 2] === 'response') return [parts[n - 3]!, parts[n - 2]!];
  return parts;
}

const te = new TextDecoder();
const NAMES = Object.freeze(['', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT']);

/** One trace line per MQTT packet; the access token (CONNECT user name) never appears. */
export function describeMqtt(p: MqttPacket, bytes: number, describePayload?: PayloadDescriber, dir: 'out' | 'in' = 'out'): string {
  const name = NAMES[p.type] ?? `type ${p.type}`;
  switch (p.type) {
    case 1:
      return `${name} clean=${p.clean ? 1 : 0} keepAlive=${p.keepAlive}s user=${p.username === undefined ? '-' : p.username === 'provision' ? 'provision' : '***'} (${bytes} B)`;
    case 2:
      return `${name} code=${p.returnCode} sessionPresent=${p.sessionPresent ? 1 : 0} (${bytes} B)`;
    case 3: {
      let body: string;
      if (describePayload) {
        // Protobuf profiles: binary bodies decoded, else only their length
        const path = pathOf(p.topic, dir === 'out');
        const t = p.topic;
        const known = dir === 'out' ? !t.includes('/attributes/request/') : t.endsWith('/attributes') || t.includes('/rpc/request/');
        body = (known ? describePayload(p.payload, path, dir === 'out' ? 'request' : 'response') : undefined) ?? `pb(${p.payload.length} B)`;
      } else body = te.decode(p.payload);
      return `${name} ${p.topic} q${p.qos}${p.id ? ` id=${p.id}` : ''}${p.dup ? ' DUP' : ''} (${bytes} B) ${body.length > 120 ? `${body.slice(0, 117)}...` : body}`;
    }
    case 8:
      return `${name} id=${p.id} ${p.items.map((i) => `${i.topic}@q${i.qos}`).join(' ')} (${bytes} B)`;
    case 9:
      return `${name} id=${p.id} [${p.codes.join(',')}] (${bytes} B)`;
    case 4:
    case 11:
      return `${name} id=${p.id} (${bytes} B)`;
    default:
      return `${name} (${bytes} B)`;
  }
}
