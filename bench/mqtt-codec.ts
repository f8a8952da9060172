/*
 * MQTT codec throughput and allocation: src/mqtt (Uint8Array, device code) vs the `mqtt-packet`
 * npm package (Buffer-based, under MQTT.js and aedes), on the same five packets, in the same run.
 * Decoding on their side is mqtt-packet's streaming parser (its only decoder), one instance reused.
 *
 * Run alone: npx tsx bench/mqtt-codec.ts   (or through bench/run.ts)
 */
import * as mqttPacket from 'mqtt-packet';
import { decodePacket, encodeAck, encodeConnect, encodePublish, encodeSubscribe } from '../src/mqtt/codec';
import { encodeUtf8 } from '../src/coap/utf8';
import { blackholeValue, bytesPerMessage, compareThroughput, fmtRate as fmt, getGc, type RoundTrip } from './lib/codec-loop';

interface Case {
  name: string;
  ours: () => Uint8Array;
  theirs: mqttPacket.Packet;
}

function cases(): Case[] {
  const telemetry = encodeUtf8(JSON.stringify({ temperature: 21.5, humidity: 48.2, battery: 3.71, rssi: -87, uptime: 123456 }));
  const chunk = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7) & 0xff);
  const token = 'A1_TEST_TOKEN_0123456789';
  return [
    {
      name: 'telemetry PUBLISH QoS 1 (JSON)',
      ours: () => encodePublish({ topic: 'v1/devices/me/telemetry', payload: telemetry, qos: 1, id: 0x1234 }),
      theirs: { cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.from(telemetry), qos: 1, messageId: 0x1234, dup: false, retain: false },
    },
    {
      name: 'PUBACK',
      ours: () => encodeAck(4, 0x1234),
      theirs: { cmd: 'puback', messageId: 0x1234 },
    },
    {
      name: 'CONNECT (token as user name, clean, keep-alive 60)',
      ours: () => encodeConnect({ clientId: '', clean: true, keepAlive: 60, username: token }),
      theirs: { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 60, username: token },
    },
    {
      name: 'SUBSCRIBE attributes + rpc/request/+',
      ours: () => encodeSubscribe(2, [{ topic: 'v1/devices/me/attributes', qos: 1 }, { topic: 'v1/devices/me/rpc/request/+', qos: 1 }]),
      theirs: { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'v1/devices/me/attributes', qos: 1 }, { topic: 'v1/devices/me/rpc/request/+', qos: 1 }] },
    },
    {
      name: 'firmware chunk PUBLISH QoS 1 (1024 B)',
      ours: () => encodePublish({ topic: 'v2/fw/response/1/chunk/3', payload: chunk, qos: 1, id: 7 }),
      theirs: { cmd: 'publish', topic: 'v2/fw/response/1/chunk/3', payload: Buffer.from(chunk), qos: 1, messageId: 7, dup: false, retain: false },
    },
  ];
}

function oursRoundTrip(cs: Case[]): RoundTrip {
  const enc = cs.map((c) => c.ours);
  return () => {
    let sink = 0;
    for (let i = 0; i < enc.length; i++) sink += decodePacket(enc[i]!()).type;
    return sink;
  };
}

function theirsRoundTrip(cs: Case[]): RoundTrip {
  const packets = cs.map((c) => c.theirs);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let sink = 0;
  parser.on('packet', (p: mqttPacket.Packet) => (sink += p.cmd.length));
  return () => {
    for (let i = 0; i < packets.length; i++) parser.parse(mqttPacket.generate(packets[i]!));
    return sink;
  };
}

export async function run(options: { ms?: number } = {}): Promise<{ ratio: number }> {
  const ms = options.ms ?? 1000;
  const cs = cases();
  const same = cs.map((c) => Buffer.compare(Buffer.from(c.ours()), mqttPacket.generate(c.theirs)) === 0);
  const ours = oursRoundTrip(cs);
  const theirs = theirsRoundTrip(cs);
  const n = cs.length;
  const { ours: oursRate, theirs: theirsRate } = compareThroughput(ours, theirs, n, ms);
  console.log('mqtt-codec: encode+decode round trips, same 5 packets for both:');
  cs.forEach((c, i) => console.log(`  - ${c.name}: ${c.ours().length} B, identical bytes from both encoders: ${same[i] ? 'yes' : 'NO'}`));
  console.log(`  src/mqtt     ${fmt(oursRate).padStart(12)} msg/s`);
  console.log(`  mqtt-packet  ${fmt(theirsRate).padStart(12)} msg/s`);
  const ratio = oursRate / theirsRate;
  console.log(`  ratio        ${ratio.toFixed(2)}x (target >= 2x)`);
  const gc = getGc();
  if (gc) {
    console.log(`  allocated per message (encode+decode): src/mqtt ${bytesPerMessage(ours, n, gc).toFixed(0)} B, mqtt-packet ${bytesPerMessage(theirs, n, gc).toFixed(0)} B`);
    console.log('  (forced GC, 250 round trips, growth of heapUsed + arrayBuffers, median of 7 rounds; both copy the payloads)');
  }
  if (blackholeValue() === 42) console.log('');
  return { ratio };
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
