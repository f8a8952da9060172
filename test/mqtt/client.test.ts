// MQTT client (src/mqtt/client.ts) in virtual time over an in-memory stream; the test plays the
// server with mqtt-packet. Covers: CONNECT with clean session, resubscribe after every CONNACK,
// QoS 1 DUP retransmission across reconnects, packet-id wrap skipping 0, keep-alive, reconnect
// back-off with jitter, CONNACK codes as typed errors, malformed/oversized packets, bounds.
import { strict as assert } from 'node:assert';
import * as mqttPacket from 'mqtt-packet';
import { MqttClient } from '../../src/mqtt/client';
import type { MqttClientOptions, MqttReadableInfo } from '../../src/mqtt/client';
import { MqttOp } from '../../src/mqtt/codec';
import { MqttError } from '../../src/mqtt/errors';
import type { Random } from '../../src/platform/types';
import { ManualClock } from '../../tools/sim/clock';
import { FakeNet } from './fake-stream';
import { memoryLog } from '../helpers/wait';

const te = new TextEncoder();

function setup(extra: Partial<MqttClientOptions> = {}) {
  const clock = new ManualClock();
  const net = new FakeNet();
  const errors: MqttError[] = [];
  const messages: { info: MqttReadableInfo; text: string }[] = [];
  const controls: { op: number; msg: unknown }[] = [];
  const log = memoryLog();
  const random: Random = { fill: () => undefined, next: () => 0.5 };
  const client: MqttClient = new MqttClient({
    socket: net,
    host: 'tb.example',
    user: 'SECRET_TOKEN',
    keepAlive: 60000,
    clock,
    random,
    log,
    onError: (e) => errors.push(e),
    onReadable: (_n, info) => messages.push({ info, text: Buffer.from(client.read()!).toString() }),
    onControl: (op, msg) => controls.push({ op, msg }),
    ...extra,
  });
  /** Accepts the current connection and answers its CONNECT with CONNACK `code`. */
  const connack = (code = 0, sessionPresent = false) => {
    net.last.accept();
    net.last.reply({ cmd: 'connack', returnCode: code, sessionPresent });
  };
  return { clock, net, client, errors, messages, controls, connack, log };
}

describe('mqtt client', () => {
  it('sends CONNECT 3.1.1 with clean session, the token as user name, keep-alive in seconds', () => {
    const { net } = setup();
    assert.equal(net.connections.length, 1);
    assert.equal(net.last.host, 'tb.example');
    assert.equal(net.last.port, 1883);
    assert.equal(net.last.packets.length, 0, 'nothing before the stream is up');
    net.last.accept();
    const [c] = net.last.of('connect');
    assert.equal(c!.protocolVersion, 4);
    assert.equal(c!.clean, true);
    assert.equal(c!.username, 'SECRET_TOKEN');
    assert.equal(c!.password, undefined);
    assert.equal(c!.keepalive, 60);
    assert.equal(c!.clientId, '');
  });

  it('subscribes again after every CONNACK even when the server claims sessionPresent', () => {
    const { net, client, connack, controls } = setup();
    client.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: 'v1/devices/me/attributes', QoS: 1 }] });
    client.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: 'v1/devices/me/rpc/request/+', QoS: 1 }] });
    connack(0, true);
    const subs = net.last.of('subscribe');
    assert.equal(subs.length, 1);
    assert.deepEqual(subs[0]!.subscriptions.map((s) => [s.topic, s.qos]), [['v1/devices/me/attributes', 1], ['v1/devices/me/rpc/request/+', 1]]);
    net.last.reply({ cmd: 'suback', messageId: subs[0]!.messageId!, granted: [1, 1] });
    const suback = controls.find((c) => c.op === MqttOp.SUBACK)!.msg as { resubscribe: boolean; topics: string[]; payload: number[] };
    assert.equal(suback.resubscribe, true);
    assert.deepEqual(suback.topics, ['v1/devices/me/attributes', 'v1/devices/me/rpc/request/+']);
    // the server drops the connection; after the back-off the client connects and subscribes again
    net.last.drop();
    assert.equal(client.state, 'waiting');
  });

  it('resubscribes on the next connection after a drop (sessionPresent=1 is a lie on ThingsBoard)', () => {
    const { net, client, connack, clock } = setup();
    client.write(undefined, { operation: MqttOp.SUBSCRIBE, items: [{ topic: 'v1/devices/me/rpc/request/+', QoS: 1 }] });
    connack();
    net.last.drop();
    assert.equal(net.connections.length, 1);
    clock.advance(1000); // initialMs 1 s with jitter factor 0.75 -> 750 ms
    assert.equal(net.connections.length, 2);
    connack(0, true);
    const subs = net.last.of('subscribe');
    assert.equal(subs.length, 1);
    assert.equal(subs[0]!.subscriptions[0]!.topic, 'v1/devices/me/rpc/request/+');
    assert.equal(client.state, 'connected');
  });

  it('QoS 1: held until PUBACK, sent again with DUP after a reconnect, then released', () => {
    const { net, client, connack, clock } = setup();
    connack();
    const id = client.write(te.encode('{"temperature":21.5}'), { topic: 'v1/devices/me/telemetry', QoS: 1 });
    assert.ok(id >= 1);
    let pubs = net.last.of('publish');
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0]!.dup, false);
    assert.equal(pubs[0]!.messageId, id);
    assert.equal(client.inflight, 1);
    net.last.drop(); // PUBACK lost with the connection
    clock.advance(2000);
    connack();
    pubs = net.last.of('publish');
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0]!.dup, true, 'retransmission carries DUP');
    assert.equal(pubs[0]!.messageId, id);
    assert.equal(pubs[0]!.payload.toString(), '{"temperature":21.5}');
    net.last.reply({ cmd: 'puback', messageId: id });
    assert.equal(client.inflight, 0);
    assert.equal(client.stats.retransmitted, 1);
    // nothing more goes out on yet another connection
    net.last.drop();
    clock.advance(2000);
    connack();
    assert.equal(net.last.of('publish').length, 0);
  });

  it('a PUBACK that never comes closes the connection (ackTimeout) and the message goes out again', () => {
    const { net, client, connack, clock, errors } = setup({ ackTimeout: 5000, keepAlive: 0 });
    connack();
    const id = client.write(te.encode('{}'), { topic: 'v1/devices/me/telemetry', QoS: 1 });
    clock.advance(4999);
    assert.equal(errors.length, 0);
    clock.advance(1);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'timeout');
    assert.match(errors[0]!.message, new RegExp(`no PUBACK for packet id ${id}`));
    assert.equal(net.connections[0]!.closed, true);
    clock.advance(1000);
    connack();
    assert.equal(net.last.of('publish')[0]!.dup, true);
  });

  it('reconnect() on a live connection re-sends what is in flight with DUP on the new one', () => {
    const { net, client, connack } = setup();
    connack();
    const id = client.write(te.encode('x'), { topic: 't', QoS: 1 });
    client.reconnect();
    assert.equal(net.connections[0]!.closed, true);
    connack();
    const pubs = net.last.of('publish');
    assert.deepEqual(pubs.map((p) => [p.messageId, p.dup]), [[id, true]]);
  });

  it('QoS 1 written while disconnected goes out (without DUP) after CONNACK; QoS 0 then is refused', () => {
    const { net, client, connack } = setup();
    const id = client.write(te.encode('a'), { topic: 't', QoS: 1 });
    assert.throws(() => client.write(te.encode('b'), { topic: 't', QoS: 0 }), (e: unknown) => e instanceof MqttError && e.code === 'state');
    connack();
    const pubs = net.last.of('publish');
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0]!.messageId, id);
    assert.equal(pubs[0]!.dup, false);
  });

  it('packet ids wrap from 65535 to 1, never 0, and skip ids still in flight', () => {
    const { net, client, connack } = setup({ maxInflight: 4 });
    connack();
    const held = client.write(te.encode('x'), { topic: 't', QoS: 1 }); // id 1 stays in flight
    assert.equal(held, 1);
    const seen: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const id = client.write(te.encode('x'), { topic: 't', QoS: 1 });
      seen.push(id);
      net.last.reply({ cmd: 'puback', messageId: id });
    }
    assert.ok(!seen.includes(0), 'id 0 never used');
    assert.ok(!seen.includes(1), 'id 1 skipped while in flight');
    assert.equal(seen[0], 2);
    assert.equal(seen[65533], 65535);
    assert.equal(seen[65534], 2, 'after 65535 comes 1 (busy) -> 2');
    assert.ok(net.last.of('publish').every((p) => p.messageId! >= 1 && p.messageId! <= 65535));
  });

  it('bounded: more than maxInflight QoS 1 messages is an overflow error, not growth', () => {
    const { client, connack } = setup({ maxInflight: 3 });
    connack();
    for (let i = 0; i < 3; i++) client.write(te.encode('x'), { topic: 't', QoS: 1 });
    assert.throws(() => client.write(te.encode('x'), { topic: 't', QoS: 1 }), (e: unknown) => e instanceof MqttError && e.code === 'overflow');
    assert.equal(client.writable, 0);
  });

  it('keep-alive: PINGREQ after keepAlive of silence; no PINGRESP closes and reconnects', () => {
    const { net, client, connack, clock, errors } = setup({ keepAlive: 10000, pingTimeout: 5000 });
    connack();
    clock.advance(9999);
    assert.equal(net.last.of('pingreq').length, 0);
    clock.advance(1);
    assert.equal(net.last.of('pingreq').length, 1);
    net.last.reply({ cmd: 'pingresp' });
    clock.advance(10000);
    assert.equal(net.last.of('pingreq').length, 2);
    clock.advance(5000);
    assert.equal(errors.at(-1)!.code, 'timeout');
    assert.match(errors.at(-1)!.message, /PINGRESP/);
    assert.equal(client.state, 'waiting');
  });

  it('sending resets the keep-alive: no PINGREQ while publishing more often than keepAlive', () => {
    const { net, client, connack, clock } = setup({ keepAlive: 10000 });
    connack();
    for (let i = 0; i < 10; i++) {
      clock.advance(6000);
      client.write(te.encode('x'), { topic: 't', QoS: 0 });
    }
    assert.equal(net.last.of('pingreq').length, 0);
  });

  it('reconnect back-off doubles with jitter up to the maximum and restarts after a CONNACK', () => {
    let r = 0;
    const seq = [0, 1, 0.5, 0, 1, 0.5, 0.5, 0.5];
    const { net, clock, connack } = setup({ random: { fill: () => undefined, next: () => seq[r++ % seq.length]! }, reconnect: { initialMs: 1000, maxMs: 8000 } });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = net.connections.length;
      const t0 = clock.now();
      net.last.drop();
      clock.advanceTo(clock.nextDue()!);
      assert.equal(net.connections.length, before + 1);
      delays.push(clock.now() - t0);
    }
    // base 1,2,4,8,8,8 s times jitter 0.5 + next/2
    assert.deepEqual(delays, [500, 2000, 3000, 4000, 8000, 6000]);
    connack();
    net.last.drop();
    const t0 = clock.now();
    clock.advanceTo(clock.nextDue()!);
    assert.equal(clock.now() - t0, 750, 'a CONNACK resets the series');
  });

  for (const [code, fatal] of [[5, true], [4, true], [2, true], [1, true], [3, false]] as const) {
    it(`CONNACK ${code} is MqttError('refused', returnCode ${code})${fatal ? ' and stops: no reconnect' : ' and is retried'}`, () => {
      const { net, client, connack, clock, errors, log } = setup();
      client.write(te.encode('x'), { topic: 't', QoS: 1 });
      connack(code);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, 'refused');
      assert.equal(errors[0]!.returnCode, code);
      assert.equal(errors[0]!.fatal, fatal);
      assert.equal(net.last.of('publish').length, 0, 'nothing published before CONNACK 0');
      clock.advance(600000);
      if (fatal) assert.equal(net.connections.length, 1);
      else assert.ok(net.connections.length > 1);
      if (fatal) assert.equal(client.state, 'stopped');
      else assert.notEqual(client.state, 'stopped');
      if (fatal) assert.throws(() => client.write(te.encode('x'), { topic: 't', QoS: 1 }), /stopped/);
      assert.ok(!log.lines.some((l) => l.includes('SECRET_TOKEN')), 'token never logged');
    });
  }

  it('delivers PUBLISH whole and acknowledges QoS 1 after the callback', () => {
    const { net, connack, messages } = setup();
    connack();
    net.last.reply({ cmd: 'publish', topic: 'v1/devices/me/rpc/request/70000', payload: Buffer.from('{"method":"getState"}'), qos: 1, messageId: 9, dup: false, retain: false });
    net.last.reply({ cmd: 'publish', topic: 'v1/devices/me/attributes', payload: Buffer.from('{"reportingInterval":5}'), qos: 0, dup: false, retain: false });
    assert.deepEqual(messages.map((m) => [m.info.topic, m.info.QoS, m.text, m.info.more]), [
      ['v1/devices/me/rpc/request/70000', 1, '{"method":"getState"}', false],
      ['v1/devices/me/attributes', 0, '{"reportingInterval":5}', false],
    ]);
    assert.deepEqual(net.last.of('puback').map((p) => p.messageId), [9]);
  });

  it('a PUBLISH split over many stream reads is framed correctly', () => {
    const { net, connack, messages } = setup();
    connack();
    const bytes = mqttPacket.generate({ cmd: 'publish', topic: 'v1/devices/me/attributes', payload: Buffer.alloc(3000, 0x61), qos: 1, messageId: 3, dup: false, retain: false });
    for (let i = 0; i < bytes.length; i += 7) net.last.bytes(bytes.subarray(i, i + 7));
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.text.length, 3000);
  });

  const hostile: [string, number[], string][] = [
    ['reserved CONNACK code', [0x20, 2, 0, 9], 'malformed'],
    ['QoS 3 PUBLISH', [0x36, 5, 0, 1, 0x74, 0, 1], 'malformed'],
    ['packet id 0', [0x40, 2, 0, 0], 'malformed'],
    ['five-byte Remaining Length', [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], 'malformed'],
    ['reserved type 15', [0xf0, 0], 'malformed'],
    ['PUBLISH over maxPacketSize', [0x30, 0x80, 0x80, 0x04], 'too-large'],
    ['SUBSCRIBE from the server', [0x82, 6, 0, 1, 0, 1, 0x74, 0], 'protocol'],
  ];
  for (const [name, bytes, code] of hostile) {
    it(`hostile server: ${name} closes the connection with MqttError('${code}'), nothing thrown`, () => {
      const { net, client, connack, errors, clock } = setup({ maxPacketSize: 1024 });
      connack();
      assert.doesNotThrow(() => net.last.bytes(bytes));
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, code);
      assert.equal(net.connections[0]!.closed, true);
      assert.equal(client.state, 'waiting');
      clock.advance(2000);
      assert.equal(net.connections.length, 2, 'and reconnects');
    });
  }

  it('a packet before CONNACK is a protocol error', () => {
    const { net, errors } = setup();
    net.last.accept();
    net.last.reply({ cmd: 'pingresp' });
    assert.equal(errors[0]!.code, 'protocol');
    assert.match(errors[0]!.message, /expected CONNACK/);
  });

  it('no CONNACK within connectTimeout fails and retries', () => {
    const { net, errors, clock } = setup({ connectTimeout: 10000 });
    net.last.accept();
    clock.advance(10000);
    assert.equal(errors[0]!.code, 'timeout');
    assert.match(errors[0]!.message, /no CONNACK/);
  });

  it('an application callback that throws does not break the protocol', () => {
    const { net, connack, errors, log } = setup({ onReadable: () => { throw new Error('app bug'); } });
    connack();
    net.last.reply({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 1, messageId: 4, dup: false, retain: false });
    assert.equal(errors.length, 0);
    assert.deepEqual(net.last.of('puback').map((p) => p.messageId), [4]);
    assert.ok(log.lines.some((l) => l.includes('app bug')));
  });

  it('close() sends DISCONNECT, ends the stream and never reconnects', () => {
    const { net, client, connack, clock } = setup();
    connack();
    client.close();
    assert.equal(net.last.of('disconnect').length, 1);
    assert.equal(net.last.closed, true);
    clock.advance(600000);
    assert.equal(net.connections.length, 1);
    assert.throws(() => client.write(te.encode('x'), { topic: 't', QoS: 1 }), /closed/);
  });

  it('refuses QoS 2 and wildcard topics on PUBLISH', () => {
    const { client, connack } = setup();
    connack();
    assert.throws(() => client.write(te.encode('x'), { topic: 't', QoS: 2 }), /QoS 2/);
    assert.throws(() => client.write(te.encode('x'), { topic: 'a/+', QoS: 0 }), /wildcards/);
  });
});
