/*
 * Bytes on the wire per KB of firmware over MQTT and MQTTS: the device's ThingsBoard client
 * (requestFirmwareChunk, as the OTA agent calls it: one request at a time, the agent's default
 * 1008-byte chunks) downloads a 64 KB package from the local endpoint's v2/fw topics on an
 * established connection. Counted: application bytes both directions at the socket (MQTT packets;
 * for MQTTS the TLS records), from the first chunk request (with the lazy SUBSCRIBE to the two
 * v2/fw filters) to the last chunk; TCP/IP headers and TCP's own segments come on top.
 * Per chunk: PUBLISH v2/fw/request/{id}/chunk/{n} QoS 1 with the size (~30 B), PUBACK (4 B), and
 * PUBLISH v2/fw/response/{id}/chunk/{n} at QoS 0 (~27 B + chunk); no PUBACK for the chunk.
 *
 * `npx tsx bench/mqtt-ota.ts` alone; bench/ota.ts prints it beside the CoAPs figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MqttThingsBoardClient } from '../src/thingsboard/mqtt-client';
import { TlsStreamFactory } from '../src/mqtt/tls-stream';
import { loadDtlsEngine } from '../hardware/dtls/index';
import { makeTestPki } from '../tools/provision/certs';
import { startTbServer } from '../tools/tb-server/server';
import { ScaledClock } from '../tools/sim/clock';
import { cryptoRandom } from '../tools/sim/random';
import { TcpStreamFactory } from '../tools/sim/tcp';

export interface MqttOtaBytes {
  scheme: 'mqtt' | 'mqtts';
  size: number;
  chunk: number;
  chunks: number;
  bytes: number;
  perKb: number;
}

export async function run(size = 64 * 1024, chunk = 1008): Promise<MqttOtaBytes[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mqtt-ota-'));
  const pki = makeTestPki();
  const server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, log: () => undefined, mqtt: { port: 0, tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } });
  const dev = server.store.createDevice('bench-mqtt-ota');
  const pkg = randomBytes(size);
  server.store.setOta(dev.id, { type: 'fw', title: 'bench-fw', version: '2.0.0', data: pkg.toString('base64'), checksumAlgorithm: 'SHA256', checksum: '' });
  const clock = new ScaledClock(1);
  const out: MqttOtaBytes[] = [];
  try {
    for (const scheme of ['mqtt', 'mqtts'] as const) {
      const tcp = new TcpStreamFactory();
      const stream = scheme === 'mqtt' ? tcp : new TlsStreamFactory(tcp, { clock, createEngine: loadDtlsEngine().create, engine: { ca: pki.read('ca.pem'), hostname: 'localhost' } });
      const c = new MqttThingsBoardClient({
        stream, host: '127.0.0.1', port: scheme === 'mqtt' ? server.mqtt!.port! : server.mqtt!.tlsPort!,
        credentials: { kind: 'token', token: dev.token }, clock, random: cryptoRandom,
      });
      await c.sendTelemetry({ warm: 1 }); // connected (and the TLS handshake done) before counting
      const b0 = tcp.stats.bytesSent + tcp.stats.bytesReceived;
      const chunks = Math.ceil(size / chunk);
      let got = 0;
      for (let n = 0; n < chunks; n++) {
        const b = await c.requestFirmwareChunk({ title: 'bench-fw', version: '2.0.0', chunk: n, size: chunk, timeoutMs: 5000 });
        if (!b) throw new Error(`chunk ${n}: no answer`);
        got += b.length;
      }
      const bytes = tcp.stats.bytesSent + tcp.stats.bytesReceived - b0;
      c.close();
      if (got !== size) throw new Error(`downloaded ${got} of ${size} bytes`);
      out.push({ scheme, size, chunk, chunks, bytes, perKb: (bytes / size) * 1024 });
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of out) {
    console.log(
      `${r.scheme.toUpperCase()} download of ${r.size / 1024} KB over v2/fw (established connection): ${r.chunks} chunks of ${r.chunk} B, ${r.bytes} B on the wire = ${r.perKb.toFixed(0)} B per KB of firmware (${(((r.bytes - r.size) / r.size) * 100).toFixed(1)} % over the payload)`,
    );
  }
  return out;
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
