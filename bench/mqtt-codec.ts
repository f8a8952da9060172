/*
 * MQTT codec throughput and allocation: src/mqtt (Uint8Array, device code) vs the `mqtt-packet`
 * npm package (Buffer-based, under MQTT.js and aedes), on the same five packets, in the same run.
 * Decoding on their side is mqtt-packet's streaming parser (its only decoder), one instance reused.
 *
 * Run alone: npx tsx bench/mqtt-codec.ts   (or through bench/run.ts)
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import * as mqttPacket from 'mqtt-packet';
import { decodePacket, encodeAck, encodeConnect, encodePublish, encodeSubscribe } from '../src/mqtt/codec';
import { encodeUtf8 } from '../src/coap/utf8';

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

type RoundTrip = () => number;
let blackhole = 0;

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

function throughput(fn: RoundTrip, perCall: number, ms: number): number {
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < 256; i++) blackhole += fn();
    calls += 256;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (calls * perCall) / (elapsed / 1000);
}

function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

function bytesPerMessage(fn: RoundTrip, perCall: number, gc: () => void): number {
  const calls = 250;
  const samples: number[] = [];
  for (let round = 0; round < 7; round++) {
    gc();
    const m0 = process.memoryUsage();
    for (let i = 0; i < calls; i++) blackhole += fn();
    const m1 = process.memoryUsage();
    samples.push((m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers)) / (calls * perCall));
  }
  samples.sort((a, b) => a - b);
  return samples[3]!;
}

export async function run(options: { ms?: number } = {}): Promise<{ ratio: number }> {
  const ms = options.ms ?? 1000;
  const cs = cases();
  const same = cs.map((c) => Buffer.compare(Buffer.from(c.ours()), mqttPacket.generate(c.theirs)) === 0);
  const ours = oursRoundTrip(cs);
  const theirs = theirsRoundTrip(cs);
  const n = cs.length;
  throughput(ours, n, 200);
  throughput(theirs, n, 200);
  let oursRate = 0;
  let theirsRate = 0;
  for (let i = 0; i < 5; i++) {
    oursRate = Math.max(oursRate, throughput(ours, n, ms / 5));
    theirsRate = Math.max(theirsRate, throughput(theirs, n, ms / 5));
  }
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
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
  if (blackhole === 42) console.log('');
  return { ratio };
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
