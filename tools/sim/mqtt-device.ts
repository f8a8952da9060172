/*
 * The simulated device over MQTT / MQTTS (npm start -- --mqtt | --mqtts; npm run sim -- --server
 * mqtt[s]://...): the firmware's DeviceApp with transport 'mqtt' (tools/sim/device.ts), with a live
 * trace of every MQTT packet (the token shown as ***). Queueing, the shared attribute
 * reportingInterval, RPC getState / setInterval behave as over CoAP.
 */
import { readFileSync } from 'node:fs';
import type { Clock, Log, LogLevel } from '../../src/platform/types';
import type { Credentials } from '../../src/thingsboard/client';
import { startTbServer } from '../tb-server/server';
import { certSha3FromPem } from '../tb-server/store';
import { makeCerts } from '../provision/certs';
import { ScaledClock } from './clock';
import { consoleLog, createSimDevice } from './device';
import { describeMqtt } from './mqtt-trace';
import type { PayloadCodec } from '../../src/thingsboard/payload';
import type { PayloadDescriber } from './trace';
import type { ProtoSchemas } from '../tb-server/proto-profile';
export { describeMqtt };

export interface SimMqttDeviceOptions {
  host: string;
  port: number;
  credentials: Credentials;
  /** mqtts: CA root, host name to verify (default host), client certificate and key for X.509. */
  tls?: { ca: Uint8Array; hostname?: string; cert?: Uint8Array; key?: Uint8Array };
  reportingIntervalMs: number;
  clock: Clock;
  log: Log;
  trace?: (line: string) => void;
  /** A Protobuf profile's codec (and the trace's decoder for its binary bodies). */
  codec?: PayloadCodec;
  describePayload?: PayloadDescriber;
}

export function createSimMqttDevice(o: SimMqttDeviceOptions) {
  const { clock, log } = o;
  const sim = createSimDevice({
    transport: 'mqtt',
    server: { host: o.host, port: o.port },
    credentials: o.credentials,
    ...(o.tls ? { tls: { ca: o.tls.ca, hostname: o.tls.hostname ?? o.host, ...(o.tls.cert && o.tls.key ? { cert: o.tls.cert, key: o.tls.key } : {}) } } : {}),
    reportingIntervalMs: o.reportingIntervalMs,
    firmware: { title: 'tb-coap-firmware', version: '0.1.0' },
    clock,
    log,
    ...(o.trace ? { trace: o.trace } : {}),
    ...(o.codec ? { codec: o.codec } : {}),
    ...(o.describePayload ? { describePayload: o.describePayload } : {}),
  });
  const app = sim.app;
  return {
    app,
    tb: app.tb,
    tcp: sim.tcp,
    get state() {
      return app.state;
    },
    start: () => app.start(),
    stop: () => app.stop(),
  };
}

export interface MqttSimStartOptions {
  secure: boolean;
  x509: boolean;
  intervalMs: number;
  durationMs?: number;
  speed: number;
  quiet?: boolean;
  level?: LogLevel;
  coapPort: number;
  httpPort: number;
  mqttPort: number;
  mqttsPort: number;
  dataDir: string;
  certsDir: string;
  /** A Protobuf device profile: its schemas for the endpoint, the codec and trace decoder for the device. */
  protobuf?: { schemas: ProtoSchemas; codec: PayloadCodec; describePayload: PayloadDescriber };
}

/** Runs until durationMs of device time (or Ctrl-C); resolves with the exit code. */
function runFor(sim: ReturnType<typeof createSimMqttDevice>, log: Log, speed: number, durationMs: number | undefined, onStop?: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      sim.stop();
      log.info(`device state: ${JSON.stringify(sim.state)}`);
      void (onStop ? onStop() : Promise.resolve()).then(() => resolve(sim.tb.stopped || sim.state.queued > 0 ? 1 : 0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (durationMs !== undefined && durationMs > 0) setTimeout(stop, durationMs / speed);
  });
}

/** `npm start -- --mqtt | --mqtts [--x509]`: local endpoint with MQTT(S) plus one simulated device over it. */
export async function startMqttSim(o: MqttSimStartOptions): Promise<number> {
  const clock = new ScaledClock(o.speed);
  const log = consoleLog(o.level ?? 'info', clock);
  const secure = o.secure || o.x509;
  const pki = secure ? makeCerts(o.certsDir) : undefined;
  const server = await startTbServer({
    coapPort: o.coapPort,
    httpPort: o.httpPort,
    dataDir: o.dataDir,
    mqtt: { port: o.mqttPort, ...(pki ? { tls: { port: o.mqttsPort, cert: pki.read('server.pem'), key: pki.read('server.key') } } : {}) },
    log: (line) => { if (!o.quiet || line.startsWith('tb-server:')) console.log(`            server ${line}`); },
  });
  const name = 'sim-device-1';
  const dev = server.store.findDevice(name) ?? server.store.createDevice(name);
  // The device profile's payload type follows --protobuf (the endpoint's state keeps it between runs).
  server.store.updateDevice(dev, { protobuf: o.protobuf?.schemas });
  let credentials: Credentials = { kind: 'token', token: dev.token };
  if (pki && o.x509) {
    server.store.updateDevice(dev, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
    credentials = { kind: 'x509' };
  }
  const port = secure ? server.mqtt!.tlsPort! : server.mqtt!.port!;
  console.log(`local ThingsBoard endpoint: mqtt://127.0.0.1:${server.mqtt!.port}${server.mqtt!.tlsPort ? `  mqtts://localhost:${server.mqtt!.tlsPort}` : ''}  coap://127.0.0.1:${server.coapPort}  admin http://127.0.0.1:${server.httpPort}`);
  if (o.protobuf) console.log('device profile: Protobuf payloads (tools/proto/profiles/device); the endpoint decodes them with protobufjs');
  console.log(`device "${name}" over ${secure ? `mqtts (${o.x509 ? 'mutual X.509, no token' : 'one-way TLS + access token'}; test PKI in ${pki!.dir})` : 'mqtt (access token as user name)'}; token kept in ${o.dataDir}, never printed`);
  const sim = createSimMqttDevice({
    host: secure ? 'localhost' : '127.0.0.1', port, credentials,
    ...(pki ? { tls: { ca: pki.read('ca.pem'), hostname: 'localhost', ...(o.x509 ? { cert: pki.read('device.pem'), key: pki.read('device.key') } : {}) } } : {}),
    reportingIntervalMs: o.intervalMs, clock, log,
    ...(o.quiet ? {} : { trace: (line: string) => log.info(`device ${line}`) }),
    ...(o.protobuf ? { codec: o.protobuf.codec, describePayload: o.protobuf.describePayload } : {}),
  });
  await sim.start();
  return runFor(sim, log, o.speed, o.durationMs, () => server.close());
}

export interface MqttSimCliOptions {
  server: string;
  token?: string;
  ca?: string;
  cert?: string;
  key?: string;
  hostname?: string;
  intervalMs: number;
  durationMs?: number;
  speed: number;
  quiet?: boolean;
  level?: LogLevel;
}

/** `npm run sim -- --server mqtt[s]://HOST[:PORT] (--token T | --ca CA [--token T | --cert C --key K]) ...` */
export async function runMqttCli(o: MqttSimCliOptions): Promise<number> {
  const m = /^(mqtts?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/i.exec(o.server);
  if (!m) throw new Error(`--server must look like mqtt://host:1883 or mqtts://host:8883 (got ${o.server})`);
  const secure = m[1]!.toLowerCase() === 'mqtts';
  const host = m[2]!.replace(/^\[|\]$/g, '');
  const port = m[3] ? Number(m[3]) : secure ? 8883 : 1883;
  if (!!o.cert !== !!o.key) throw new Error('--cert and --key go together (mutual X.509)');
  if (secure && !o.ca) throw new Error('mqtts:// needs --ca with the CA root that signed the server certificate (there is no "accept any certificate" mode)');
  if (!secure && (o.ca || o.cert)) throw new Error('--ca/--cert/--key are for mqtts://');
  if (!o.token && !(secure && o.cert)) throw new Error(secure ? 'mqtts:// needs a token (or --cert/--key for X.509)' : 'mqtt:// needs the access token');
  const clock = new ScaledClock(o.speed);
  const log = consoleLog(o.level ?? 'info', clock);
  const sim = createSimMqttDevice({
    host, port,
    credentials: o.cert ? { kind: 'x509' } : { kind: 'token', token: o.token! },
    ...(secure ? { tls: { ca: readFileSync(o.ca!), hostname: o.hostname ?? host, ...(o.cert && o.key ? { cert: readFileSync(o.cert), key: readFileSync(o.key) } : {}) } } : {}),
    reportingIntervalMs: o.intervalMs, clock, log,
    ...(o.quiet ? {} : { trace: (line: string) => log.info(line) }),
  });
  log.info(`device -> ${m[1]!.toLowerCase()}://${host}:${port} (${o.cert ? 'X.509 certificate' : 'access token, not shown'})`);
  await sim.start();
  return runFor(sim, log, o.speed, o.durationMs);
}

// npm start -- --mqtt | --mqtts and npm run sim -- --server mqtt[s]://... come here
// (tools/sim/start.ts, tools/sim/cli.ts).
