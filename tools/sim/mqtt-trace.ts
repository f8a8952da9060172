/*
 * One live-trace line per MQTT packet (the simulator's -> / <- view); the access token (the
 * CONNECT's user name) never appears.
 */
import type { MqttPacket } from '../../src/mqtt/codec';

const te = new TextDecoder();
const NAMES = Object.freeze(['', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT']);

/** One trace line per MQTT packet; the access token (CONNECT user name) never appears. */
export function describeMqtt(p: MqttPacket, bytes: number): string {
  const name = NAMES[p.type] ?? `type ${p.type}`;
  switch (p.type) {
    case 1:
      return `${name} clean=${p.clean ? 1 : 0} keepAlive=${p.keepAlive}s user=${p.username === undefined ? '-' : p.username === 'provision' ? 'provision' : '***'} (${bytes} B)`;
    case 2:
      return `${name} code=${p.returnCode} sessionPresent=${p.sessionPresent ? 1 : 0} (${bytes} B)`;
    case 3: {
      const body = te.decode(p.payload);
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
