// MQTT 3.1.1 codec (src/mqtt/codec.ts): round trips, byte-for-byte agreement with the independent
// mqtt-packet package in both directions, stream framing, and every malformed case it refuses.
import { strict as assert } from 'node:assert';
import * as mqttPacket from 'mqtt-packet';
import {
  MqttReader,
  decodePacket,
  encodeAck,
  encodeConnack,
  encodeConnect,
  encodeDisconnect,
  encodePingreq,
  encodePingresp,
  encodePublish,
  encodeSuback,
  encodeSubscribe,
  encodeUnsubscribe,
} from '../../src/mqtt/codec';
import type { MqttPacket } from '../../src/mqtt/codec';
import { MqttError } from '../../src/mqtt/errors';

const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function theirs(bytes: Uint8Array): mqttPacket.Packet {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const out: mqttPacket.Packet[] = [];
  parser.on('packet', (p: mqttPacket.Packet) => out.push(p));
  parser.on('error', (e: Error) => { throw e; });
  parser.parse(Buffer.from(bytes));
  assert.equal(out.length, 1);
  return out[0]!;
}

function malformed(bytes: number[] | Uint8Array, match: RegExp): void {
  assert.throws(() => decodePacket(Uint8Array.from(bytes)), (e: unknown) => e instanceof MqttError && e.code === 'malformed' && match.test(e.message));
}

describe('mqtt codec', () => {
  it('CONNECT round trip, and identical to mqtt-packet (token as user name, clean session)', () => {
    const ours = encodeConnect({ clientId: 'dev-1', clean: true, keepAlive: 60, username: 'A1_TEST_TOKEN' });
    const ref = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 60, username: 'A1_TEST_TOKEN' });
    assert.equal(hex(ours), ref.toString('hex'));
    const p = decodePacket(ours);
    assert.deepEqual(p, { type: 1, clientId: 'dev-1', clean: true, keepAlive: 60, username: 'A1_TEST_TOKEN' });
    const withAll = encodeConnect({ clientId: '', clean: true, keepAlive: 0, username: 'u', password: te.encode('pw'), will: { topic: 'w', payload: te.encode('bye'), qos: 1, retain: true } });
    const t = theirs(withAll) as mqttPacket.IConnectPacket;
    assert.equal(t.username, 'u');
    assert.equal(t.password!.toString(), 'pw');
    assert.equal(t.will!.topic, 'w');
    assert.equal(t.will!.qos, 1);
    assert.deepEqual(decodePacket(withAll), { type: 1, clientId: '', clean: true, keepAlive: 0, username: 'u', password: te.encode('pw'), will: { topic: 'w', payload: te.encode('bye'), qos: 1, retain: true } });
  });

  it('PUBLISH QoS 0/1 with DUP and retain, 2-byte and 3-byte Remaining Length, UTF-8 topics', () => {
    for (const size of [0, 10, 200, 20000]) {
      const payload = new Uint8Array(size).map((_, i) => i & 0xff);
      for (const qos of [0, 1] as const) {
        const ours = encodePublish({ topic: 'v1/devices/me/telemetry', payload, qos, ...(qos ? { id: 65535, dup: true } : {}), retain: size === 10 });
        const ref = mqttPacket.generate({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from(payload), qos, dup: qos === 1, retain: size === 10, ...(qos ? { messageId: 65535 } : {}) });
        assert.equal(hex(ours), ref.toString('hex'), `size ${size} qos ${qos}`);
        const p = decodePacket(ours) as Extract<MqttPacket, { type: 3 }>;
        assert.equal(p.qos, qos);
        assert.equal(p.dup, qos === 1);
        assert.equal(p.retain, size === 10);
        assert.deepEqual(p.payload, payload);
        if (qos) assert.equal(p.id, 65535);
      }
    }
    const p = decodePacket(encodePublish({ topic: 'température/é', payload: new Uint8Array(0) })) as Extract<MqttPacket, { type: 3 }>;
    assert.equal(p.topic, 'température/é');
  });

  it('decodes what mqtt-packet generates for every server-to-client packet', () => {
    const cases: [mqttPacket.Packet, MqttPacket][] = [
      [{ cmd: 'connack', returnCode: 5, sessionPresent: false }, { type: 2, returnCode: 5, sessionPresent: false }],
      [{ cmd: 'connack', returnCode: 0, sessionPresent: true }, { type: 2, returnCode: 0, sessionPresent: true }],
      [{ cmd: 'puback', messageId: 7 }, { type: 4, id: 7 }],
      [{ cmd: 'pubrel', messageId: 8 }, { type: 6, id: 8 }],
      [{ cmd: 'suback', messageId: 9, granted: [1, 0x80, 0] }, { type: 9, id: 9, codes: [1, 0x80, 0] }],
      [{ cmd: 'unsuback', messageId: 10, granted: [] }, { type: 11, id: 10 }],
      [{ cmd: 'pingresp' }, { type: 13 }],
      [{ cmd: 'publish', topic: 'v1/devices/me/rpc/request/70000', payload: Buffer.from('{"method":"getState"}'), qos: 1, dup: false, retain: false, messageId: 1 },
        { type: 3, topic: 'v1/devices/me/rpc/request/70000', payload: te.encode('{"method":"getState"}'), qos: 1, dup: false, retain: false, id: 1 }],
    ];
    for (const [t, o] of cases) assert.deepEqual(decodePacket(mqttPacket.generate(t)), o, t.cmd);
  });

  it('client-to-server packets match mqtt-packet byte for byte', () => {
    assert.equal(hex(encodeSubscribe(3, [{ topic: 'v1/devices/me/attributes', qos: 1 }, { topic: 'v1/devices/me/rpc/request/+', qos: 1 }])),
      mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'v1/devices/me/attributes', qos: 1 }, { topic: 'v1/devices/me/rpc/request/+', qos: 1 }] }).toString('hex'));
    assert.equal(hex(encodeUnsubscribe(4, ['a', 'b'])), mqttPacket.generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a', 'b'] }).toString('hex'));
    assert.equal(hex(encodeAck(4, 5)), mqttPacket.generate({ cmd: 'puback', messageId: 5 }).toString('hex'));
    assert.equal(hex(encodeAck(6, 5)), mqttPacket.generate({ cmd: 'pubrel', messageId: 5 }).toString('hex'));
    assert.equal(hex(encodePingreq()), mqttPacket.generate({ cmd: 'pingreq' }).toString('hex'));
    assert.equal(hex(encodeDisconnect()), mqttPacket.generate({ cmd: 'disconnect' }).toString('hex'));
    assert.equal(hex(encodePingresp()), 'd000');
    assert.deepEqual(decodePacket(encodeConnack(false, 3)), { type: 2, sessionPresent: false, returnCode: 3 });
    assert.deepEqual(decodePacket(encodeSuback(2, [0, 1])), { type: 9, id: 2, codes: [0, 1] });
    assert.deepEqual(decodePacket(encodeSubscribe(2, [{ topic: 'a/+', qos: 1 }])), { type: 8, id: 2, items: [{ topic: 'a/+', qos: 1 }] });
    assert.deepEqual(decodePacket(encodeUnsubscribe(2, ['a/+'])), { type: 10, id: 2, topics: ['a/+'] });
  });

  it('refuses to encode packet id 0 or above 65535', () => {
    assert.throws(() => encodePublish({ topic: 't', payload: new Uint8Array(0), qos: 1, id: 0 }), /packet id 0/);
    assert.throws(() => encodeAck(4, 65536), /out of range/);
    assert.throws(() => encodeSubscribe(0, [{ topic: 't', qos: 0 }]), /packet id 0/);
  });

  it('refuses each malformed packet with a clear MqttError', () => {
    malformed([0x20, 2, 0, 6], /reserved CONNACK return code 6/);
    malformed([0x20, 2, 2, 0], /reserved CONNACK flags/);
    malformed([0x20, 3, 0, 0, 0], /unexpected bytes/);
    malformed([0x21, 2, 0, 0], /reserved flags/);
    malformed([0x40, 2, 0, 0], /packet id 0/);
    malformed([0x40, 1, 0], /past the end/);
    malformed([0x36, 5, 0, 1, 0x74, 0, 1], /QoS 3/);
    malformed([0x38, 3, 0, 1, 0x74], /DUP set on a QoS 0/);
    malformed([0x32, 5, 0, 1, 0x74, 0, 0], /packet id 0/);
    malformed([0x30, 3, 0, 1, 0x2b], /wildcard/);
    malformed([0x30, 2, 0, 0], /empty PUBLISH topic/);
    malformed([0x30, 5, 0, 9, 0x74, 0x74, 0x74], /topic past the end/);
    malformed([0x30, 4, 0, 2, 0x74, 0x00], /U\+0000/);
    malformed([0x90, 3, 0, 1, 3], /reserved SUBACK code 3/);
    malformed([0x90, 2, 0, 1], /without return codes/);
    malformed([0x00, 0], /reserved packet type 0/);
    malformed([0xf0, 0], /reserved packet type 15/);
    malformed([0xd0, 1, 0], /unexpected bytes/);
    malformed([0x82, 2, 0, 1], /without topic filters/);
    malformed([0x80, 6, 0, 1, 0, 1, 0x74, 0], /reserved flags/);
    malformed([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 2, 0, 60, 0, 0], /only MQTT 3.1.1/);
    malformed([0x30, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than four bytes/);
    malformed([0x30, 10, 0, 1, 0x74], /does not match/);
  });

  it('MqttReader frames packets split at every byte and several per chunk', () => {
    const packets = [
      encodeConnack(false, 0),
      encodePublish({ topic: 'v1/devices/me/attributes', payload: te.encode('{"reportingInterval":5}'), qos: 1, id: 300 }),
      encodeSuback(1, [1, 1]),
      encodePublish({ topic: 'x', payload: new Uint8Array(1000).fill(7) }),
      encodePingresp(),
    ];
    const all = Buffer.concat(packets);
    for (const step of [1, 2, 3, 7, 64, all.length]) {
      const reader = new MqttReader(2048);
      const got: MqttPacket[] = [];
      for (let i = 0; i < all.length; i += step) reader.push(all.subarray(i, i + step), (p) => got.push(p));
      assert.deepEqual(got.map((p) => p.type), [2, 3, 9, 3, 13], `step ${step}`);
      assert.equal(reader.buffered, 0);
      assert.deepEqual((got[1] as Extract<MqttPacket, { type: 3 }>).payload, te.encode('{"reportingInterval":5}'));
    }
  });

  it('MqttReader refuses an oversized packet from its header, before buffering it', () => {
    const reader = new MqttReader(100);
    const big = encodePublish({ topic: 't', payload: new Uint8Array(200) });
    assert.throws(() => reader.push(big.subarray(0, 3), () => undefined), (e: unknown) => e instanceof MqttError && e.code === 'too-large');
    reader.reset();
    const got: number[] = [];
    reader.push(encodePingresp(), (p) => got.push(p.type));
    assert.deepEqual(got, [13]);
  });

  it('a reset inside the callback ends the push (no stale bytes parsed)', () => {
    const reader = new MqttReader(100);
    const got: number[] = [];
    reader.push(Buffer.concat([encodePingresp(), encodePingresp(), encodePingresp()]), (p) => { got.push(p.type); reader.reset(); });
    assert.deepEqual(got, [13]);
    assert.equal(reader.buffered, 0);
  });
});
