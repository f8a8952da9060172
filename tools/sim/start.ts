/*
 * npm start: the local ThingsBoard-compatible endpoint plus one simulated device, with a live view
 * of every datagram the device sends and receives. Ends after --duration of device time (or on
 * Ctrl-C) with a summary; `npm start -- --help` lists the options.
 *
 * While it runs, try from another terminal:
 *   npm run tb-server -- set-shared sim-device-1 reportingInterval=5
 *   npm run tb-server -- rpc sim-device-1 getState
 *   npm run tb-server -- telemetry sim-device-1
 */
import { startTbServer } from '../tb-server/server';
import { certSha3FromPem } from '../tb-server/store';
import { resetState } from '../tb-server/admin-auth';
import { ScaledClock } from './clock';
import { consoleLog, createSimDevice } from './device';
import { createSimBoard } from './board';
import { makeCerts } from '../provision/certs';
import type { DtlsConfig } from '../../src/device/app';
import type { Credentials } from '../../src/thingsboard/client';
import type { LogLevel } from '../../src/platform/types';
import {
  EXIT, HELP_OPTION, UsageError, choice, duration, flag, helpText, parseCommandLine, port, positive, runMain, str,
} from '../cli/options';
import type { CommandSpec } from '../cli/options';
import { ReadingGate, cliLog, runDevice } from './run';
import { LOG_LEVELS } from './cli';
import { startMqttSim } from './mqtt-device';

const DEVICE = 'sim-device-1';

export const START_SPEC: CommandSpec = {
  usage: ['npm start -- [options]'],
  summary:
    'Starts the local ThingsBoard-compatible endpoint (CoAP, admin HTTP) and one simulated device that reports to it, ' +
    'printing every datagram the device sends and receives and every request the endpoint serves. ' +
    'Ends after --duration of device time, or on Ctrl-C, with a summary.',
  options: [
    { name: 'interval', type: 'string', value: 'DURATION', help: 'reporting interval, 1s to 1d (the shared attribute reportingInterval, kept in the endpoint\'s state, overrides it)', default: '10s' },
    { name: 'duration', type: 'string', value: 'DURATION', help: 'stop after this much device time and print the summary', default: 'run until Ctrl-C' },
    { name: 'speed', type: 'string', value: 'N', help: 'device clock runs N times faster than the wall clock', default: '1' },
    { name: 'coaps', type: 'boolean', help: 'also serve CoAP over DTLS with a test PKI (made in --certs) and have the device use coaps:// with its token' },
    { name: 'x509', type: 'boolean', help: 'as --coaps, the device authenticating with its client certificate (no token)' },
    { name: 'mqtt', type: 'boolean', help: 'serve MQTT too and have the device use mqtt:// (token as user name; docs/mqtt.md)' },
    { name: 'mqtts', type: 'boolean', help: 'serve MQTT and MQTTS with the test PKI; the device uses mqtts:// (with --x509: its client certificate)' },
    { name: 'mqtt-port', type: 'string', value: 'PORT', help: 'endpoint MQTT port, with --mqtt/--mqtts (0: any free port)', default: '1883' },
    { name: 'mqtts-port', type: 'string', value: 'PORT', help: 'endpoint MQTTS port, with --mqtts (0: any free port)', default: '8883' },
    { name: 'fresh', type: 'boolean', help: 'clear the endpoint\'s state first (devices, attributes such as a reportingInterval set earlier, telemetry)' },
    { name: 'quiet', type: 'boolean', help: 'no datagram trace, no request lines and no progress; the log, errors and the summary only' },
    { name: 'log', type: 'string', value: 'LEVEL', help: 'device log level: debug, info, warn or error', default: 'info' },
    { name: 'coap-port', type: 'string', value: 'PORT', help: 'endpoint CoAP port (0: any free port)', default: '5683' },
    { name: 'coaps-port', type: 'string', value: 'PORT', help: 'endpoint CoAPs port, with --coaps/--x509 (0: any free port)', default: '5684' },
    { name: 'http-port', type: 'string', value: 'PORT', help: 'endpoint admin HTTP port (0: any free port)', default: '8080' },
    { name: 'data', type: 'string', value: 'DIR', help: 'endpoint state folder (state.json, admin-token)', default: '.tb-server' },
    { name: 'certs', type: 'string', value: 'DIR', help: 'test PKI folder for --coaps/--x509 (made when missing)', default: '.certs' },
    HELP_OPTION,
  ],
  notes: ['DURATION: a number with a unit, 500ms, 30s, 15m, 1h, 1d or 1h30m; a bare number is seconds.'],
  examples: [
    'npm start',
    'npm start -- --interval 5s --speed 10 --duration 1h',
    'npm start -- --x509 --quiet --duration 10m --speed 20',
    'npm start -- --fresh --interval 30s',
  ],
};

async function main(argv: string[]): Promise<number> {
  const p = parseCommandLine(START_SPEC, argv);
  if (flag(p, 'help')) {
    console.log(helpText(START_SPEC));
    return EXIT.OK;
  }
  const intervalMs = duration(p, 'interval', 10_000, { minMs: 1000, maxMs: 86_400_000 });
  const durationMs = str(p, 'duration') !== undefined ? duration(p, 'duration', 0) : undefined;
  const speed = positive(p, 'speed', 1, 100_000);
  const level = choice(p, 'log', LOG_LEVELS, 'info') as LogLevel;
  const coapPort = port(p, 'coap-port', 5683, true);
  const coapsPort = port(p, 'coaps-port', 5684, true);
  const httpPort = port(p, 'http-port', 8080, true);
  const dataDir = str(p, 'data') ?? '.tb-server';
  const quiet = flag(p, 'quiet');
  const clock = new ScaledClock(speed);
  const log = cliLog(consoleLog(level, clock));
  const coaps = flag(p, 'coaps') || flag(p, 'x509');
  if (flag(p, 'fresh')) {
    const removed = resetState(dataDir);
    console.log(`--fresh: ${removed.length ? `endpoint state in ${dataDir} cleared` : `no endpoint state in ${dataDir}`}`);
  }
  if (flag(p, 'mqtt') || flag(p, 'mqtts')) {
    return startMqttSim({ secure: flag(p, 'mqtts'), x509: flag(p, 'x509'), intervalMs, ...(durationMs !== undefined ? { durationMs } : {}), speed, quiet, level, coapPort, httpPort, mqttPort: port(p, 'mqtt-port', 1883, true), mqttsPort: port(p, 'mqtts-port', 8883, true), dataDir, certsDir: str(p, 'certs') ?? '.certs' });
  }
  const pki = coaps ? makeCerts(str(p, 'certs') ?? '.certs') : undefined;
  const server = await startTbServer({
    coapPort,
    httpPort,
    ...(pki ? { dtls: { port: coapsPort, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } } : {}),
    dataDir,
    log: (line) => { if (!quiet || line.startsWith('tb-server:')) console.log(`            server ${line}`); },
  }).catch((e: Error & { code?: string }) => {
    if (e.code === 'EADDRINUSE') throw new UsageError(`${e.message}: another endpoint (npm start / tb-server serve) is running; stop it or choose other ports (--coap-port, --http-port, --coaps-port)`);
    throw e;
  });
  const device = server.store.findDevice(DEVICE) ?? server.store.createDevice(DEVICE);
  let credentials: Credentials = { kind: 'token', token: device.token };
  let dtls: DtlsConfig | undefined;
  if (pki) {
    dtls = { ca: pki.read('ca.pem'), hostname: 'localhost' };
    if (flag(p, 'x509')) {
      server.store.updateDevice(device, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
      dtls.cert = pki.read('device.pem');
      dtls.key = pki.read('device.key');
      credentials = { kind: 'x509' };
    }
  }
  const shared = server.store.attributes(device.id).shared;
  const serverLabel = pki ? `coaps://localhost:${server.coapsPort}` : `coap://127.0.0.1:${server.coapPort}`;
  console.log(`local ThingsBoard endpoint: coap://127.0.0.1:${server.coapPort}${server.coapsPort ? `  coaps://127.0.0.1:${server.coapsPort}` : ''}  admin http://127.0.0.1:${server.httpPort}`);
  if (pki) console.log(`device uses coaps:// (${flag(p, 'x509') ? 'mutual X.509, no token' : 'one-way DTLS + access token'}); test PKI in ${pki.dir}`);
  console.log(`device "${DEVICE}" (token kept in ${dataDir}; never printed)`);
  if (typeof shared.reportingInterval === 'number')
    console.log(`note: the endpoint's state (${dataDir}) holds shared attribute reportingInterval=${shared.reportingInterval} from an earlier run; it overrides --interval once the device registers (npm start -- --fresh clears it)`);
  const h = httpPort === 8080 && dataDir === '.tb-server' ? '' : ` --http http://127.0.0.1:${server.httpPort}${dataDir !== '.tb-server' ? ` --data ${dataDir}` : ''}`;
  console.log(`try: npm run tb-server --${h} set-shared ${DEVICE} reportingInterval=5`);
  console.log(`     npm run tb-server --${h} rpc ${DEVICE} getState`);
  const gate = new ReadingGate();
  const sim = createSimDevice({
    server: { host: '127.0.0.1', port: server.coapsPort ?? server.coapPort },
    credentials,
    ...(dtls ? { dtls } : {}),
    reportingIntervalMs: intervalMs,
    firmware: { title: 'tb-coap-firmware', version: '0.1.0' },
    clock,
    log,
    sources: (c) => gate.wrap([createSimBoard(c, log).source]),
    ...(quiet ? {} : { trace: (line: string) => log.info(`device ${line}`) }),
  });
  return runDevice({
    sim,
    gate,
    log,
    out: (l) => console.log(l),
    quiet,
    serverLabel,
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(str(p, 'interval') !== undefined ? { cliIntervalMs: intervalMs, intervalOption: `--interval ${str(p, 'interval')}` } : {}),
    deviceName: DEVICE,
    onStopped: () => server.close(),
  });
}

if (require.main === module) runMain('start', () => main(process.argv.slice(2)));
