/*
 * CoAP codec throughput and allocation: src/coap (Uint8Array, device code) vs the `coap-packet`
 * npm package (Buffer-based, what node-coap uses), on the same four messages, in the same run.
 *
 * Run alone: npx tsx bench/coap-codec.ts   (or through bench/run.ts)
 */
import { buildUriOptions, decode, encode, encodeBlock, encodeUint } from '../src/coap/codec';
import { Code, CoapType, ContentFormat, OptionNumber, type CoapMessage } from '../src/coap/types';
import { encodeUtf8 } from '../src/coap/utf8';
import { blackholeValue, bytesPerMessage, compareThroughput, fmtRate as fmt, getGc, type RoundTrip } from './lib/codec-loop';

const coapPacket = require('coap-packet') as typeof import('coap-packet');

interface Case {
  name: string;
  ours: CoapMessage;
  theirs: import('coap-packet').Packet;
}

function cases(): Case[] {
  const token = Uint8Array.of(0x1a, 0x2b, 0x3c, 0x4d);
  const tokenBuf = Buffer.from(token);
  const telemetry = encodeUtf8(JSON.stringify({ temperature: 21.5, humidity: 48.2, battery: 3.71, rssi: -87, uptime: 123456 }));
  const attrs = encodeUtf8(JSON.stringify({ interval: 60, fw_title: 'sensor', fw_version: '1.2.3' }));
  const block = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7) & 0xff);
  const path = ['api', 'v1', 'A1_TEST_TOKEN_0123456789', 'telemetry', 'x'];
  return [
    {
      name: 'TB telemetry POST (token, 5 Uri-Path, JSON)',
      ours: {
        type: CoapType.CON,
        code: Code.POST,
        messageId: 0x1234,
        token,
        options: [...buildUriOptions(path.join('/')), { number: OptionNumber.CONTENT_FORMAT, value: encodeUint(ContentFormat.JSON) }],
        payload: telemetry,
      },
      theirs: {
        confirmable: true,
        code: 'POST',
        messageId: 0x1234,
        token: tokenBuf,
        options: [...path.map((p) => ({ name: 'Uri-Path' as const, value: Buffer.from(p) })), { name: 'Content-Format' as const, value: Buffer.of(50) }],
        payload: Buffer.from(telemetry),
      },
    },
    {
      name: 'Observe notification (CON 2.05, Observe, JSON)',
      ours: {
        type: CoapType.CON,
        code: Code.CONTENT,
        messageId: 0x8001,
        token,
        options: [
          { number: OptionNumber.OBSERVE, value: encodeUint(0x012345) },
          { number: OptionNumber.CONTENT_FORMAT, value: encodeUint(ContentFormat.JSON) },
        ],
        payload: attrs,
      },
      theirs: {
        confirmable: true,
        code: '2.05',
        messageId: 0x8001,
        token: tokenBuf,
        options: [
          { name: 'Observe', value: Buffer.of(0x01, 0x23, 0x45) },
          { name: 'Content-Format', value: Buffer.of(50) },
        ],
        payload: Buffer.from(attrs),
      },
    },
    {
      name: 'empty ACK',
      ours: { type: CoapType.ACK, code: Code.EMPTY, messageId: 0x8001, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) },
      theirs: { ack: true, code: '0.00', messageId: 0x8001, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) },
    },
    {
      name: 'Block2 response (ACK 2.05, Block2, Size2, 1024 B)',
      ours: {
        type: CoapType.ACK,
        code: Code.CONTENT,
        messageId: 0x4321,
        token,
        options: [
          { number: OptionNumber.CONTENT_FORMAT, value: encodeUint(ContentFormat.OCTET_STREAM) },
          { number: OptionNumber.BLOCK2, value: encodeBlock({ num: 3, more: true, szx: 6 }) },
          { number: OptionNumber.SIZE2, value: encodeUint(8192) },
        ],
        payload: block,
      },
      theirs: {
        ack: true,
        code: '2.05',
        messageId: 0x4321,
        token: tokenBuf,
        options: [
          { name: 'Content-Format', value: Buffer.of(42) },
          { name: 'Block2', value: Buffer.of(0x3e) },
          { name: 'Size2', value: Buffer.of(0x20, 0x00) },
        ],
        payload: Buffer.from(block),
      },
    },
  ];
}


function oursRoundTrip(cs: Case[]): RoundTrip {
  const msgs = cs.map((c) => c.ours);
  return () => {
    let sink = 0;
    for (let i = 0; i < msgs.length; i++) {
      const wire = encode(msgs[i]!);
      const m = decode(wire);
      sink += m.options.length + m.payload.length;
    }
    return sink;
  };
}

function theirsRoundTrip(cs: Case[]): RoundTrip {
  const packets = cs.map((c) => c.theirs);
  return () => {
    let sink = 0;
    for (let i = 0; i < packets.length; i++) {
      const wire = coapPacket.generate(packets[i]!);
      const m = coapPacket.parse(wire);
      sink += m.options.length + m.payload.length;
    }
    return sink;
  };
}

export async function run(options: { ms?: number } = {}): Promise<void> {
  const ms = options.ms ?? 1000;
  const cs = cases();
  // Same bytes on the wire from both encoders?
  const same = cs.map((c) => Buffer.compare(Buffer.from(encode(c.ours)), coapPacket.generate(c.theirs)) === 0);
  const ours = oursRoundTrip(cs);
  const theirs = theirsRoundTrip(cs);
  const n = cs.length;
  // Warm-up (JIT) for both, then 5 interleaved slices each, keeping each side's best slice.
  const { ours: oursRate, theirs: theirsRate } = compareThroughput(ours, theirs, n, ms);
  const gc = getGc();

  console.log('coap-codec: encode+decode round trips, same 4 messages for both:');
  cs.forEach((c, i) => console.log(`  - ${c.name}: ${encode(c.ours).length} B on the wire, identical bytes from both encoders: ${same[i] ? 'yes' : 'NO'}`));
  console.log(`  src/coap     ${fmt(oursRate).padStart(12)} msg/s`);
  console.log(`  coap-packet  ${fmt(theirsRate).padStart(12)} msg/s`);
  console.log(`  ratio        ${(oursRate / theirsRate).toFixed(2)}x (target >= 2x)`);
  if (gc) {
    const oursBytes = bytesPerMessage(ours, n, gc);
    const theirsBytes = bytesPerMessage(theirs, n, gc);
    console.log(`  allocated per message (encode+decode): src/coap ${oursBytes.toFixed(0)} B, coap-packet ${theirsBytes.toFixed(0)} B`);
    console.log('  (method: forced GC, 250 round trips, growth of heapUsed + arrayBuffers, median of 7 rounds;');
    console.log('   includes the 1024 B payload copy in the Block2 case for both)');
  } else {
    console.log('  allocated per message: not measured (no gc available; run with node --expose-gc)');
  }
  if (blackholeValue() === 42) console.log('');
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
