/*
 * Bytes per telemetry report, MQTT beside CoAP, in one run against the local endpoint (whose MQTT
 * side is mqtt-packet, whose CoAP side is node-coap): application bytes both directions, counted
 * at the socket (TCP payload for MQTT, UDP payload for CoAP; IP/TCP/UDP headers and TCP's own
 * segments — SYN/FIN/ACKs, ~40 B each on IPv4 — come on top and favour UDP further).
 *
 *   MQTT established: PUBLISH QoS 1 + PUBACK
 *   MQTT per wake-up: CONNECT, CONNACK, PUBLISH, PUBACK, DISCONNECT on a new connection
 *   CoAP established: CON POST + ThingsBoard's separate CON 2.01 + our ACK (the empty ACK first)
 *
 * `npx tsx bench/mqtt-bytes.ts` alone, or through `npm run bench`. MQTTS figures are not here yet
 * (the TLS stream is not built; see docs/mqtt.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/coap/client';
import { ThingsBoardClient } from '../src/thingsboard/client';
import { MqttThingsBoardClient } from '../src/thingsboard/mqtt-client';
import { startTbServer } from '../tools/tb-server/server';
import { ScaledClock } from '../tools/sim/clock';
import { cryptoRandom } from '../tools/sim/random';
import { UdpDatagram } from '../tools/sim/udp';
import { TcpStreamFactory } from '../tools/sim/tcp';

const REPORT = { temperature: 21.5, humidity: 40.2 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(): Promise<{ mqttEstablished: number; mqttWakeup: number; coapEstablished: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mqtt-'));
  const server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, mqtt: { port: 0 } });
  const dev = server.store.createDevice('bench');
  const clock = new ScaledClock(1);
  try {
    // CoAP, plain UDP, established (no handshake in CoAP)
    const udp = new UdpDatagram('127.0.0.1', server.coapPort);
    const coap = new CoapClient(udp, { clock, random: cryptoRandom });
    const tb = new ThingsBoardClient(coap, { credentials: { kind: 'token', token: dev.token }, clock });
    await tb.sendTelemetry(REPORT); // warm
    await sleep(150);
    const c0 = udp.stats.bytesSent + udp.stats.bytesReceived;
    await tb.sendTelemetry(REPORT);
    await sleep(150); // the ACK of the separate response
    const coapEstablished = udp.stats.bytesSent + udp.stats.bytesReceived - c0;
    coap.close();
    udp.close();

    // MQTT per wake-up: a new connection for one report, then DISCONNECT
    const wakeNet = new TcpStreamFactory();
    const wake = new MqttThingsBoardClient({ stream: wakeNet, host: '127.0.0.1', port: server.mqtt!.port!, credentials: { kind: 'token', token: dev.token }, clock, random: cryptoRandom });
    await wake.sendTelemetry(REPORT);
    wake.close();
    await sleep(100);
    const mqttWakeup = wakeNet.stats.bytesSent + wakeNet.stats.bytesReceived;

    // MQTT established: one more report on a live connection
    const net = new TcpStreamFactory();
    const live = new MqttThingsBoardClient({ stream: net, host: '127.0.0.1', port: server.mqtt!.port!, credentials: { kind: 'token', token: dev.token }, clock, random: cryptoRandom });
    await live.sendTelemetry(REPORT);
    const m0 = net.stats.bytesSent + net.stats.bytesReceived;
    await live.sendTelemetry(REPORT);
    const mqttEstablished = net.stats.bytesSent + net.stats.bytesReceived - m0;
    live.close();

    const row = (name: string, bytes: number) => console.log(`  ${name.padEnd(58)} ${String(bytes).padStart(5)} B`);
    console.log(`bytes per telemetry report ${JSON.stringify(REPORT)}, both directions, application bytes at the socket`);
    row('MQTT established (PUBLISH QoS 1 + PUBACK)', mqttEstablished);
    row('MQTT per wake-up (CONNECT..DISCONNECT, one report)', mqttWakeup);
    row('CoAP established (CON + separate CON 2.01 + ACKs)', coapEstablished);
    console.log(`  ratio MQTT established / CoAP = ${(mqttEstablished / coapEstablished).toFixed(2)}; MQTT wake-up / CoAP = ${(mqttWakeup / coapEstablished).toFixed(2)}`);
    console.log('  (TCP adds its handshake, ACK and FIN segments and 40 B of IPv4+TCP headers per segment; UDP 28 B per datagram)');
    return { mqttEstablished, mqttWakeup, coapEstablished };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  run().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
