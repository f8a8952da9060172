/*
 * Protobuf payloads (issue 12), in one run:
 *   1. bytes per telemetry report on the wire in an established DTLS session, Protobuf beside JSON,
 *      for a token device and an X.509 device (counted at the socket both ways by the UDP proxy in
 *      bench/lib/counting-proxy.ts, as in dtls-bytes.ts). Targets, readings as float fields, NON
 *      uplink: <= 125 B token, <= 105 B X.509.
 *   2. encode time of the device's generated code (src/proto/gen) against protobufjs on the same
 *      messages. Target: >= 2x.
 *
 * `npx tsx bench/proto.ts` alone, or through `npm run bench`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { CoapClient } from '../src/coap/client';
import { TOKEN_LENGTH } from '../src/thingsboard/connect';
import { DtlsDatagram } from '../src/dtls/datagram';
import { ThingsBoardClient } from '../src/thingsboard/client';
import type { Credentials, UplinkMode } from '../src/thingsboard/client';
import type { PayloadCodec } from '../src/thingsboard/payload';
import { jsonCodec } from '../src/thingsboard/payload';
import { protoCodec } from '../src/thingsboard/proto-codec';
import { FloatScratch } from '../src/proto/wire';
import * as flat from '../src/proto/gen/flat';
import * as device from '../src/proto/gen/device';
import { loadDtlsEngine } from '../hardware/dtls/index';
import { makeTestPki } from '../tools/provision/certs';
import { startTbServer } from '../tools/tb-server/server';
import type { ProtoSchemas } from '../tools/tb-server/proto-profile';
import { certSha3FromPem } from '../tools/tb-server/store';
import { ScaledClock } from '../tools/sim/clock';
import { cryptoRandom } from '../tools/sim/random';
import { UdpDatagram } from '../tools/sim/udp';
import { CountingProxy, sleep } from './lib/counting-proxy';

/** The report dtls-bytes.ts measures (36 B of JSON). */
const REPORT = { temperature: 21.5, humidity: 40.2 };
const PROFILES = join(__dirname, '../tools/proto/profiles');

function schemas(dir: string): ProtoSchemas {
  const read = (f: string): string => readFileSync(join(PROFILES, dir, f), 'utf8');
  return { telemetry: read('telemetry.proto'), attributes: read('attributes.proto'), rpcRequest: read('rpc-request.proto'), rpcResponse: read('rpc-response.proto') };
}

async function wireBytes(): Promise<void> {
  const pki = makeTestPki();
  const dir = mkdtempSync(join(tmpdir(), 'bench-proto-'));
  const server = await startTbServer({
    coapPort: 0,
    httpPort: 0,
    dataDir: dir,
    dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') },
  });
  const proxy = new CountingProxy(server.coapsPort!);
  const port = await proxy.listen();
  const engine = loadDtlsEngine();
  const clock = new ScaledClock(1);
  const flatCodec = protoCodec(flat.profile);
  const tokenDev = server.store.createDevice('bench-token');
  const x509Dev = server.store.createDevice('bench-x509', { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
  const rows: string[] = [];
  const results: Record<string, number> = {};
  try {
    for (const [label, dev, credentials, x509] of [
      ['token', tokenDev, { kind: 'token', token: tokenDev.token }, false],
      ['X.509', x509Dev, { kind: 'x509' }, true],
    ] as const) {
      const udp = new UdpDatagram('127.0.0.1', port);
      const dtls = new DtlsDatagram({
        transport: udp,
        clock,
        createEngine: engine.create,
        engine: { ca: pki.read('ca.pem'), hostname: 'localhost', ...(x509 ? { cert: pki.read('device.pem'), key: pki.read('device.key') } : {}) },
      });
      const coap = new CoapClient(dtls, { clock, random: cryptoRandom, tokenLength: TOKEN_LENGTH.dtls });
      const client = (codec: PayloadCodec, uplink: UplinkMode): ThingsBoardClient => new ThingsBoardClient(coap, { credentials: credentials as Credentials, clock, codec, uplink });
      try {
        await client(jsonCodec, 'con').sendTelemetry(REPORT); // handshake + first report
        await sleep(150);
        const measure = async (codec: PayloadCodec, uplink: UplinkMode, record: Parameters<ThingsBoardClient['sendTelemetry']>[0] = REPORT): Promise<number> => {
          proxy.bytes = 0;
          await client(codec, uplink).sendTelemetry(record);
          await sleep(150); // let the last datagram cross the proxy
          return proxy.bytes;
        };
        server.store.updateDevice(dev, { protobuf: undefined });
        const jsonNon = await measure(jsonCodec, 'non');
        const jsonCon = await measure(jsonCodec, 'con');
        server.store.updateDevice(dev, { protobuf: schemas('flat') });
        const pbNon = await measure(flatCodec, 'non');
        const pbCon = await measure(flatCodec, 'con');
        server.store.updateDevice(dev, { protobuf: schemas('device') });
        const full = { ts: Date.now(), values: { temperature: 21.5, humidity: 40.2, pressure: 1013.25, batteryVoltage: 3.912 } };
        const pbTsNon = await measure(protoCodec(device.profile), 'non', full);
        server.store.updateDevice(dev, { protobuf: undefined });
        const jsonTsNon = await measure(jsonCodec, 'non', full);
        const stored = server.store.telemetry(dev.id, ['temperature']).temperature ?? [];
        if (stored.length < 6) throw new Error(`${label}: only ${stored.length} of 6 points stored`); // 7 reports, the last two with the same ts
        const target = x509 ? 105 : 125;
        results[label] = pbNon;
        rows.push(
          `  ${label} device, established session:`,
          `    JSON     NON ${String(jsonNon).padStart(4)} B   CON ${String(jsonCon).padStart(4)} B   payload ${jsonCodec.encodeTelemetry(REPORT).length} B`,
          `    Protobuf NON ${String(pbNon).padStart(4)} B   CON ${String(pbCon).padStart(4)} B   payload ${flatCodec.encodeTelemetry(REPORT).length} B   (target NON <= ${target} B: ${pbNon <= target ? 'met' : 'NOT met'}; ${jsonNon - pbNon} B less than JSON)`,
          `    all four readings with the device's ts (firmware profile): Protobuf NON ${pbTsNon} B, JSON NON ${jsonTsNon} B`,
        );
      } finally {
        coap.close();
        dtls.close();
      }
    }
  } finally {
    proxy.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`bytes per telemetry report ${JSON.stringify(REPORT)} over CoAPs, both directions, counted at the socket`);
  console.log('(flat profile tools/proto/profiles/flat: optional float fields; NON = request + ThingsBoard\'s NON 2.01; CON = request + separate CON 2.01 + our ACK)');
  for (const r of rows) console.log(r);
}

function encodeSpeed(): void {
  const parse = (dir: string, name: string): protobuf.Type => {
    const root = protobuf.parse(readFileSync(join(PROFILES, dir, 'telemetry.proto'), 'utf8')).root;
    return root.lookupType(name);
  };
  const FlatT = parse('flat', 'telemetry.SensorDataReading');
  const RecT = parse('device', 'telemetry.TelemetryRecord');
  const flatMsg = { temperature: 21.5, humidity: 40.2, pressure: 1013.25, batteryVoltage: 3.912 };
  const recMsg = { ts: 1700000000123, values: flatMsg };
  // The device path: the payload codec owns one FloatScratch (made at run time) and passes it in.
  const scratch = new FloatScratch();
  const cases: [string, () => Uint8Array, () => Uint8Array][] = [
    ['flat, 4 floats', () => flat.encodeTelemetry_SensorDataReading(flatMsg, scratch), () => FlatT.encode(flatMsg).finish()],
    ['ts (int64) + values', () => device.encodeTelemetry_TelemetryRecord(recMsg, scratch), () => RecT.encode(recMsg).finish()],
  ];
  // Through the payload codec: app keys checked and mapped to fields (fromTb), then encoded; against
  // protobufjs fromObject (conversion and checks) + encode.
  const codec = protoCodec(flat.profile);
  cases.push(['codec: check + encode', () => codec.encodeTelemetry(flatMsg), () => FlatT.encode(FlatT.fromObject(flatMsg)).finish()]);
  // Same bytes first: the comparison is of equal work.
  for (const [name, mine, theirs] of cases) {
    if (Buffer.compare(Buffer.from(mine()), Buffer.from(theirs())) !== 0) throw new Error(`${name}: encodings differ`);
  }
  const N = 200_000;
  const time = (f: () => Uint8Array): number => {
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += f().length;
    const ns = Number(process.hrtime.bigint() - t0);
    if (sink === 0) throw new Error('nothing encoded');
    return ns / N;
  };
  console.log(`encode time per message, device generated code vs protobufjs ${require('protobufjs/package.json').version} (static-shape encode of a plain object), best of 5 interleaved rounds of ${N}`);
  let worst = Infinity;
  for (const [name, mine, theirs] of cases) {
    let a = Infinity;
    let b = Infinity;
    for (let round = 0; round < 5; round++) {
      a = Math.min(a, time(mine));
      b = Math.min(b, time(theirs));
    }
    const ratio = b / a;
    worst = Math.min(worst, ratio);
    console.log(`  ${name.padEnd(22)} device ${a.toFixed(0).padStart(5)} ns   protobufjs ${b.toFixed(0).padStart(5)} ns   ratio ${ratio.toFixed(2)}x`);
  }
  console.log(`  lowest ratio ${worst.toFixed(2)}x (target >= 2x: ${worst >= 2 ? 'met' : 'NOT met'})`);
}

export async function run(): Promise<void> {
  if (!process.argv.includes('--speed-only')) await wireBytes();
  encodeSpeed();
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
