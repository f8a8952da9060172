/*
 * The simulated device over MQTT / MQTTS (npm start -- --mqtt | --mqtts; npm run sim -- --server
 * mqtt[s]://...), with a live trace of every MQTT packet (the token shown as ***).
 *
 * Until DeviceApp (src/device/app.ts) takes its ThingsBoard client by the server URL, this is a
 * small stand-in loop with the same behaviour as the app's core: sensor readings every
 * reportingInterval as telemetry with device timestamps, the shared attribute reportingInterval,
 * RPC getState / setInterval. Offline queueing, provisioning and flash are the app's and are not
 * repeated here.
 */
import { readFileSync } from 'node:fs';
import { MqttThingsBoardClient } from '../../src/thingsboard/mqtt-client';
import { TlsStreamFactory } from '../../src/mqtt/tls-stream';
import type { MqttPacket } from '../../src/mqtt/codec';
import type { Clock, Log, LogLevel } from '../../src/platform/types';
import type { Credentials } from '../../src/thingsboard/client';
import type { TbObject, TbValue } from '../../src/thingsboard/payload';
import { loadDtlsEngine } from '../../hardware/dtls/index';
import { startTbServer } from '../tb-server/server';
import { certSha3FromPem } from '../tb-server/store';
import { makeCerts } from '../provision/certs';
import { createSimBoard } from './board';
import { ScaledClock } from './clock';
import { consoleLog } from './device';
import { num, parseArgs } from './args';
import { cryptoRandom } from './random';
import { TcpStreamFactory } from './tcp';

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
}

const te = new TextDecoder();
const NAMES = Object.freeze(['', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT']);

/** One trace line per MQTT packet; the access token (CONNECT user name) never appears. */
export function describeMqtt(p: MqttPacket, bytes: number): string {
  const name = NAMES[p.type] ?? `type ${p.type}`;
  switch (p.type) {
    case 1:
      return `${name} clean=${p.clean ? 1 : 0} keepAlive=${p.keepAlive}s user=${p.username === undefined ? '-' : p.username === 'provision' ? 'provision' : '***'} (${bytes} B)`;
    case 2:
      return `${name} code=${p.returnCode} sessionPresent=${p.sessionPresent ? 1 : 0} (${bytes} B)`;
    case 3: {
      const body = te.decode(p.payload);
      return `${name} ${p.topic} q${p.qos}${p.id ? ` id=${p.id}` : ''}${p.dup ? ' DUP' : ''} (${bytes} B) ${body.length > 120 ? `${body.slice(0, 117)}...` : body}`;
    }
    case 8:
      return `${name} id=${p.id} ${p.items.map((i) => `${i.topic}@q${i.qos}`).join(' ')} (${bytes} B)`;
    case 9:
      return `${name} id=${p.id} [${p.codes.join(',')}] (${bytes} B)`;
    case 4:
    case 11:
      return `${name} id=${p.id} (${bytes} B)`;
    default:
      return `${name} (${bytes} B)`;
  }
}

export function createSimMqttDevice(o: SimMqttDeviceOptions) {
  const { clock, log } = o;
  const tcp = new TcpStreamFactory();
  const stream = o.tls
    ? new TlsStreamFactory(tcp, { clock, createEngine: loadDtlsEngine().create, engine: { ca: o.tls.ca, hostname: o.tls.hostname ?? o.host, ...(o.tls.cert && o.tls.key ? { cert: o.tls.cert, key: o.tls.key } : {}) } })
    : tcp;
  const trace = o.trace;
  const tb = new MqttThingsBoardClient({
    stream, host: o.host, port: o.port, credentials: o.credentials, clock, random: cryptoRandom, log,
    ...(trace ? { tap: (dir: 'out' | 'in', p: MqttPacket, bytes: number) => trace(`${dir === 'out' ? '->' : '<-'} ${describeMqtt(p, bytes)}`) } : {}),
  });
  const board = createSimBoard(clock, log);
  let intervalMs = o.reportingIntervalMs;
  let timer: unknown;
  let running = false;
  const started = clock.now();
  const state = { reports: 0, failures: 0 };
  const schedule = () => {
    if (!running) return;
    timer = clock.setTimer(() => void report(), intervalMs);
  };
  const report = async () => {
    const values = board.source.read();
    if (values && Object.keys(values).length) {
      try {
        await tb.sendTelemetry({ ts: clock.epochMs(), values });
        state.reports++;
      } catch (e) {
        state.failures++;
        log.warn(`report failed: ${(e as Error).message}`);
      }
    }
    schedule();
  };
  const setInterval = (seconds: number, why: string) => {
    if (!(seconds > 0 && seconds <= 86400)) return log.warn(`reportingInterval ${seconds} ignored (1 s .. 1 day)`);
    intervalMs = seconds * 1000;
    log.info(`reporting every ${seconds} s (${why})`);
    if (timer !== undefined) clock.clearTimer(timer);
    schedule();
  };
  return {
    tb,
    tcp,
    state,
    async start(): Promise<void> {
      running = true;
      tb.subscribeAttributes((u) => {
        const s = u.shared.reportingInterval;
        if (typeof s === 'number') setInterval(s, 'shared attribute');
      });
      tb.subscribeRpc((r): TbValue => {
        if (r.method === 'getState') return { interval: intervalMs / 1000, uptime: Math.round((clock.now() - started) / 1000), ...state } as TbObject;
        if (r.method === 'setInterval') {
          const p = r.params as TbObject | null;
          const s = p && typeof p.interval === 'number' ? p.interval : NaN;
          if (!(s > 0)) throw new Error('setInterval: params must be {"interval": seconds > 0}');
          setInterval(s, 'RPC');
          void tb.sendAttributes({ reportingInterval: s }).catch(() => undefined);
          return { interval: s };
        }
        throw new Error(`unknown method ${r.method}`);
      });
      await tb.sendAttributes({ firmware: 'tb-coap-firmware 0.1.0 (sim, mqtt)' }).catch((e: Error) => log.warn(e.message));
      await report();
    },
    stop(): void {
      running = false;
      if (timer !== undefined) clock.clearTimer(timer);
      tb.close();
    },
  };
}

/** `npm start -- --mqtt | --mqtts [--x509]`: local endpoint with MQTT(S) plus one simulated device over it. */
export async function startMqttSim(args: Record<string, string | boolean>): Promise<void> {
  const speed = num(args.speed, 1);
  const clock = new ScaledClock(speed);
  const log = consoleLog('info', clock);
  const secure = !!args.mqtts || !!args.x509;
  const pki = secure ? makeCerts('.certs') : undefined;
  const server = await startTbServer({
    coapPort: num(args['coap-port'], 5683),
    httpPort: num(args['http-port'], 8080),
    dataDir: typeof args.data === 'string' ? args.data : '.tb-server',
    mqtt: {
      port: num(args['mqtt-port'], 1883),
      ...(pki ? { tls: { port: num(args['mqtts-port'], 8883), cert: pki.read('server.pem'), key: pki.read('server.key') } } : {}),
    },
    log: (line) => console.log(`            server ${line}`),
  });
  const name = 'sim-device-1';
  const dev = server.store.findDevice(name) ?? server.store.createDevice(name);
  let credentials: Credentials = { kind: 'token', token: dev.token };
  if (pki && args.x509) {
    server.store.updateDevice(dev, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
    credentials = { kind: 'x509' };
  }
  const port = secure ? server.mqtt!.tlsPort! : server.mqtt!.port!;
  console.log(`local ThingsBoard endpoint: mqtt://127.0.0.1:${server.mqtt!.port}${server.mqtt!.tlsPort ? `  mqtts://localhost:${server.mqtt!.tlsPort}` : ''}  coap://127.0.0.1:${server.coapPort}  admin http://127.0.0.1:${server.httpPort}`);
  console.log(`device "${name}" over ${secure ? `mqtts (${args.x509 ? 'mutual X.509, no token' : 'one-way TLS + access token'}; test PKI in ${pki!.dir})` : 'mqtt (access token as user name)'}; token kept in .tb-server, never printed`);
  console.log(`try: npm run tb-server -- --http http://127.0.0.1:${server.httpPort} set-shared ${name} reportingInterval=5`);
  console.log(`     npm run tb-server -- --http http://127.0.0.1:${server.httpPort} rpc ${name} getState`);
  const sim = createSimMqttDevice({
    host: secure ? 'localhost' : '127.0.0.1', port, credentials,
    ...(pki ? { tls: { ca: pki.read('ca.pem'), hostname: 'localhost', ...(args.x509 ? { cert: pki.read('device.pem'), key: pki.read('device.key') } : {}) } } : {}),
    reportingIntervalMs: num(args.interval, 10) * 1000, clock, log,
    trace: (line) => log.info(`device ${line}`),
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    sim.stop();
    log.info(`device state: ${JSON.stringify(sim.state)}`);
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  await sim.start();
  const duration = num(args.duration, 0);
  if (duration > 0) setTimeout(() => void stop(), (duration * 1000) / speed);
}

/** `npm run sim -- --server mqtt[s]://HOST[:PORT] (--token T | --ca CA [--token T | --cert C --key K]) ...` */
export async function runMqttCli(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const m = /^(mqtts?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(String(args.server));
  if (!m) throw new Error(`--server must look like mqtt://host:1883 or mqtts://host:8883 (got ${String(args.server)})`);
  const secure = m[1] === 'mqtts';
  const host = m[2]!.replace(/^\[|\]$/g, '');
  const port = m[3] ? Number(m[3]) : secure ? 8883 : 1883;
  const str = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  const token = str('token');
  const cert = str('cert');
  const key = str('key');
  if (!!cert !== !!key) throw new Error('--cert and --key go together (mutual X.509)');
  if (secure && !str('ca')) throw new Error('mqtts:// needs --ca with the CA root that signed the server certificate (there is no "accept any certificate" mode)');
  if (!token && !(secure && cert)) throw new Error(secure ? 'mqtts:// needs --token (or --cert/--key for X.509)' : '--token is required for mqtt://');
  const speed = num(args.speed, 1);
  const clock = new ScaledClock(speed);
  const log = consoleLog((str('log') ?? 'info') as LogLevel, clock);
  const sim = createSimMqttDevice({
    host, port,
    credentials: cert ? { kind: 'x509' } : { kind: 'token', token: token! },
    ...(secure ? { tls: { ca: readFileSync(str('ca')!), hostname: str('hostname') ?? host, ...(cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : {}) } } : {}),
    reportingIntervalMs: num(args.interval, 10) * 1000, clock, log,
    ...(args.quiet ? {} : { trace: (line: string) => log.info(line) }),
  });
  await sim.start();
  const duration = num(args.duration, 0);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (duration > 0) setTimeout(stop, (duration * 1000) / speed);
  });
  sim.stop();
  log.info(`state: ${JSON.stringify(sim.state)}`);
  return sim.tb.stopped ? 1 : 0;
}

// Until tools/sim/start.ts and cli.ts route --mqtt/--mqtts and mqtt[s]:// here (their CLI is being
// reworked; see docs/mqtt.md), run this file directly:
//   npx tsx tools/sim/mqtt-device.ts start [--mqtts [--x509]] [--interval S] [--speed N] [--duration S]
//   npx tsx tools/sim/mqtt-device.ts --server mqtt://HOST:1883 --token TOKEN [--interval S] ...
if (require.main === module) {
  const argv = process.argv.slice(2);
  const main = argv[0] === 'start'
    ? startMqttSim(parseArgs(argv.slice(1)) as Record<string, string | boolean>).then(() => undefined)
    : runMqttCli(argv).then((code) => process.exit(code));
  main.catch((e: unknown) => {
    console.error(`mqtt sim: ${(e as Error).message}`);
    process.exit(1);
  });
}
