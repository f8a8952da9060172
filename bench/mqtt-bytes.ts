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
 *   MQTTS (TLS 1.2 records, our mbedTLS stream against node:tls/OpenSSL): per wake-up with a full
 *   handshake, per wake-up resuming the saved session (session ID), and established.
 *
 * `npx tsx bench/mqtt-bytes.ts` alone, or through `npm run bench`.
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
import { TlsStreamFactory } from '../src/mqtt/tls-stream';
import { loadDtlsEngine } from '../hardware/dtls/index';
import { makeTestPki } from '../tools/provision/certs';

const REPORT = { temperature: 21.5, humidity: 40.2 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(): Promise<{ mqttEstablished: number; mqttWakeup: number; coapEstablished: number; mqttsFull: number; mqttsResumed: number; mqttsEstablished: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mqtt-'));
  const pki = makeTestPki();
  const server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, mqtt: { port: 0, tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } });
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

    // MQTTS: TLS bytes on the wire (records), per wake-up full / resumed, and established
    const tcp = new TcpStreamFactory();
    const tls = new TlsStreamFactory(tcp, { clock, createEngine: loadDtlsEngine().create, engine: { ca: pki.read('ca.pem'), hostname: 'localhost' } });
    const mqtts = () => new MqttThingsBoardClient({ stream: tls, host: '127.0.0.1', port: server.mqtt!.tlsPort!, credentials: { kind: 'token', token: dev.token }, clock, random: cryptoRandom });
    const wakeTls = async (): Promise<[number, boolean]> => {
      const before = tcp.stats.bytesSent + tcp.stats.bytesReceived;
      const c = mqtts();
      await c.sendTelemetry(REPORT);
      const resumed = tls.last!.resumed;
      c.close();
      await sleep(100);
      return [tcp.stats.bytesSent + tcp.stats.bytesReceived - before, resumed];
    };
    const [mqttsFull, fullResumed] = await wakeTls();
    const [mqttsResumed, wasResumed] = await wakeTls();
    if (fullResumed || !wasResumed) throw new Error(`MQTTS resumption did not behave: first resumed=${fullResumed}, second resumed=${wasResumed}`);
    const liveTls = mqtts();
    await liveTls.sendTelemetry(REPORT);
    const t0 = tcp.stats.bytesSent + tcp.stats.bytesReceived;
    await liveTls.sendTelemetry(REPORT);
    const mqttsEstablished = tcp.stats.bytesSent + tcp.stats.bytesReceived - t0;
    liveTls.close();

    const row = (name: string, bytes: number) => console.log(`  ${name.padEnd(58)} ${String(bytes).padStart(5)} B`);
    console.log(`bytes per telemetry report ${JSON.stringify(REPORT)}, both directions, application bytes at the socket`);
    row('MQTT established (PUBLISH QoS 1 + PUBACK)', mqttEstablished);
    row('MQTT per wake-up (CONNECT..DISCONNECT, one report)', mqttWakeup);
    row('CoAP established (CON + separate CON 2.01 + ACKs)', coapEstablished);
    row('MQTTS per wake-up, full TLS 1.2 handshake (one-way)', mqttsFull);
    row('MQTTS per wake-up, session resumed by ID', mqttsResumed);
    row('MQTTS established (PUBLISH + PUBACK in TLS records)', mqttsEstablished);
    console.log(`  ratio MQTT established / CoAP = ${(mqttEstablished / coapEstablished).toFixed(2)}; MQTT wake-up / CoAP = ${(mqttWakeup / coapEstablished).toFixed(2)}`);
    console.log('  (TCP adds its handshake, ACK and FIN segments and 40 B of IPv4+TCP headers per segment; UDP 28 B per datagram)');
    console.log(`  MQTTS resumed / full = ${(mqttsResumed / mqttsFull).toFixed(2)}; CoAPs figures: the dtls-bytes bench above`);
    return { mqttEstablished, mqttWakeup, coapEstablished, mqttsFull, mqttsResumed, mqttsEstablished };
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
