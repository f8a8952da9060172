/*
 * npm run sim -- --server coap://HOST:5683 --token-file FILE [options]: one simulated device against
 * any ThingsBoard (or the local endpoint), showing live what it sends and receives. `--help` lists
 * every option with its default. The token is never printed.
 */
import { consoleLog, createSimDevice, securityFromFlash } from './device';
import { ScaledClock } from './clock';
import { existsSync, statSync } from 'node:fs';
import { runSimOnXs } from '../xs/sim-engine';
import type { Log, LogLevel } from '../../src/platform/types';
import type { Credentials } from '../../src/thingsboard/client';
import type { DtlsConfig } from '../../src/thingsboard/connect';
import type { Security } from '../../src/device/provisioned';
import { FileFlash } from './flash';
import { createSimBoard } from './board';
import { DEFAULT_LAYOUT } from '../../src/storage/index';
import {
  EXIT, HELP_OPTION, UsageError, choice, duration, flag, helpText, parseCommandLine, positive, runMain, str,
} from '../cli/options';
import type { CommandSpec, Parsed } from '../cli/options';
import { checkDtlsMaterial, checkTlsHostname, loadDtlsFiles, parseServerUrl, readToken, resolveHost } from './config-check';
import type { ServerUrl } from './config-check';
import { ReadingGate, cliLog, runDevice } from './run';
import { runMqttCli } from './mqtt-device';

/** Kept for callers of the old API: `{host, port, secure}` of a coap[s]:// URL (throws UsageError). */
export function parseServer(url: string): { host: string; port: number; secure: boolean } {
  const u = parseServerUrl(url);
  return { host: u.host, port: u.port, secure: u.secure };
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

export const SIM_SPEC: CommandSpec = {
  usage: [
    'npm run sim -- --server coap://HOST[:5683] (--token-file FILE | TB_TOKEN=... | --token T) [options]',
    'npm run sim -- --server coaps://HOST[:5684] --ca CA.pem (--token-file FILE | --cert DEVICE.pem --key DEVICE.key) [options]',
    'npm run sim -- --flash SIM-FLASH.bin [options]      (server and credentials from `npm run provision -- --flash`)',
  ],
  summary:
    'Runs one simulated device (the firmware in src/device on Node) against ThingsBoard or the local endpoint and prints ' +
    'every datagram it sends and receives (the access token shown as ***). Ends after --duration of device time, or on Ctrl-C, ' +
    'with a summary.',
  options: [
    { name: 'server', type: 'string', value: 'URL', help: 'coap://HOST[:PORT] or coaps://HOST[:PORT]; coaps needs a host NAME (the host mbedTLS checks no IP SANs)', default: 'none; required unless --flash' },
    { name: 'token-file', type: 'string', value: 'FILE', help: 'read the access token from FILE (one line); the safe form' },
    { name: 'token', type: 'string', value: 'TOKEN', help: 'the access token on the command line (ps and shell history keep it: prefer --token-file or TB_TOKEN)', default: 'TB_TOKEN from the environment' },
    { name: 'ca', type: 'string', value: 'FILE', help: 'coaps: CA root(s) that signed the server certificate, PEM or DER (required for coaps)' },
    { name: 'cert', type: 'string', value: 'FILE', help: 'coaps mutual X.509: device certificate, PEM or DER (with --key; no token then)' },
    { name: 'key', type: 'string', value: 'FILE', help: 'coaps mutual X.509: device private key, PEM or DER, unencrypted' },
    { name: 'hostname', type: 'string', value: 'NAME', help: 'name checked against the server certificate', default: 'the host in --server' },
    { name: 'flash', type: 'string', value: 'FILE', help: 'simulator flash image: server, credentials (or provisioning key/secret), settings and offline queue from it (docs/storage.md)' },
    { name: 'device-name', type: 'string', value: 'NAME', help: 'with --flash: the name to provision under', default: 'sim-device' },
    { name: 'interval', type: 'string', value: 'DURATION', help: 'reporting interval, 1s to 1d (the shared attribute reportingInterval overrides it)', default: '10s' },
    { name: 'duration', type: 'string', value: 'DURATION', help: 'stop after this much device time and print the summary', default: 'run until Ctrl-C' },
    { name: 'speed', type: 'string', value: 'N', help: 'device clock runs N times faster than the wall clock', default: '1' },
    { name: 'nbiot', type: 'boolean', help: 'NB-IoT retransmission profile (first timeout 15 s)', default: 'RFC 7252: 2 s' },
    { name: 'non', type: 'boolean', help: 'telemetry as NON requests, still confirmed by the server\'s NON 2.01' },
    { name: 'no-response', type: 'boolean', help: 'telemetry as NON with No-Response: one datagram, unconfirmed' },
    { name: 'observe-refresh', type: 'string', value: 'DURATION', help: 're-register Observe after an uplink that followed this much silence (NAT rebinding); 0 = never', default: '25s (the device default)' },
    { name: 'quiet', type: 'boolean', help: 'no datagram trace and no progress lines; the log, errors and the summary only' },
    { name: 'log', type: 'string', value: 'LEVEL', help: 'log level: debug, info, warn or error', default: 'info' },
    { name: 'engine', type: 'string', value: 'ENGINE', help: 'node, or xs: src/main.ts on the XS host (docs/xs.md; --server/--token/--ca/--cert/--key/--hostname/--interval/--nbiot/--observe-refresh/--speed/--duration)', default: 'node' },
    HELP_OPTION,
  ],
  notes: [
    'DURATION: a number with a unit, 500ms, 30s, 15m, 1h, 1d or 1h30m; a bare number is seconds.',
    'The token is taken from --token-file, --token or TB_TOKEN (one of them); it is never printed.',
    'Certificate and key files are checked before the device starts (PEM/DER, key matches certificate, not expired).',
  ],
  examples: [
    'TB_TOKEN=$(cat token.txt) npm run sim -- --server coap://thingsboard.example.com:5683 --interval 10s',
    'npm run sim -- --server coap://127.0.0.1:5683 --token-file token.txt --speed 10 --duration 15m',
    'npm run sim -- --server coaps://localhost:5684 --ca .certs/ca.pem --cert .certs/device.pem --key .certs/device.key --quiet',
  ],
};

/** Credentials and DTLS settings from the command line; files checked, exported for tests. */
export function securityFromArgs(args: Record<string, unknown>, server: { host: string; secure: boolean; port?: number }, env: Record<string, string | undefined> = process.env): { credentials: Credentials; dtls?: DtlsConfig } {
  const s = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  const token = readToken({ token: s('token'), tokenFile: s('token-file') }, env);
  if (!server.secure) {
    if (s('ca') || s('cert') || s('key')) throw new UsageError('--ca, --cert and --key are for coaps:// servers (this one is coap://)');
    if (!token) throw new UsageError('coap:// needs the access token: --token-file FILE, TB_TOKEN=... in the environment, or --token');
    return { credentials: { kind: 'token', token } };
  }
  const ca = s('ca');
  if (!ca) throw new UsageError('coaps:// needs --ca with the CA root that signed the server certificate (there is no "accept any certificate" mode)');
  const url: ServerUrl = { scheme: 'coaps', host: server.host, port: server.port ?? 5684, secure: true };
  const hostname = checkTlsHostname(url, s('hostname'));
  const files = loadDtlsFiles({ ca, cert: s('cert'), key: s('key') });
  const dtls: DtlsConfig = { ca: files.ca, hostname };
  if (files.cert && files.key) {
    dtls.cert = files.cert;
    dtls.key = files.key;
    return { credentials: { kind: 'x509' }, dtls };
  }
  if (!token) throw new UsageError('one-way coaps:// needs the access token (--token-file, TB_TOKEN or --token), or --cert/--key for X.509');
  return { credentials: { kind: 'token', token }, dtls };
}

const FLASH_BYTES = (DEFAULT_LAYOUT.kvBlocks + DEFAULT_LAYOUT.queueBlocks) * 4096;

async function main(argv: string[]): Promise<number> {
  const p: Parsed = parseCommandLine(SIM_SPEC, argv);
  if (flag(p, 'help')) {
    console.log(helpText(SIM_SPEC));
    return EXIT.OK;
  }
  const engine = choice(p, 'engine', ['node', 'xs'] as const, 'node');
  const level = choice(p, 'log', LOG_LEVELS, 'info');
  const intervalMs = duration(p, 'interval', 10_000, { minMs: 1000, maxMs: 86_400_000 });
  const durationMs = str(p, 'duration') !== undefined ? duration(p, 'duration', 0) : undefined;
  const speed = positive(p, 'speed', 1, 100_000);
  const observeRefreshMs = str(p, 'observe-refresh') !== undefined ? duration(p, 'observe-refresh', 0, { minMs: 0 }) : undefined;
  if (flag(p, 'non') && flag(p, 'no-response')) throw new UsageError('--non and --no-response: give one (--no-response already sends NON)');
  const flashPath = str(p, 'flash');
  if (flashPath) {
    for (const k of ['server', 'token', 'token-file', 'ca', 'cert', 'key', 'hostname'])
      if (p.values[k] !== undefined) throw new UsageError(`--flash takes the server and credentials from the image: leave out --${k} (change them with npm run provision -- --flash ${flashPath})`);
  } else if (str(p, 'device-name') !== undefined) throw new UsageError('--device-name goes with --flash (network provisioning)');
  const serverArg = str(p, 'server');
  if (!flashPath && !serverArg) throw new UsageError('--server URL is required (or --flash FILE); see --help');
  if (serverArg && /^mqtts?:\/\//i.test(serverArg)) {
    const token = str(p, 'ca') && str(p, 'cert') ? undefined : readToken({ token: str(p, 'token'), tokenFile: str(p, 'token-file') });
    return runMqttCli({ server: serverArg, ...(token ? { token } : {}), ...(['ca', 'cert', 'key', 'hostname'] as const).reduce((a, k) => (str(p, k) ? { ...a, [k]: str(p, k) } : a), {}), intervalMs, ...(durationMs !== undefined ? { durationMs } : {}), speed, quiet: flag(p, 'quiet'), level: level as LogLevel });
  }

  if (engine === 'xs') {
    if (flashPath) throw new UsageError('--flash is not available with --engine xs');
    const server = parseServerUrl(serverArg!);
    const token = readToken({ token: str(p, 'token'), tokenFile: str(p, 'token-file') });
    if (server.secure) {
      checkTlsHostname(server, str(p, 'hostname'));
      loadDtlsFiles({ ca: str(p, 'ca') ?? (() => { throw new UsageError('coaps:// needs --ca'); })(), cert: str(p, 'cert'), key: str(p, 'key') });
    }
    const args: Record<string, string | boolean> = {};
    for (const [k, v] of Object.entries(p.values)) if (v !== undefined) args[k] = v;
    delete args['token-file'];
    if (token) args.token = token;
    args.interval = String(intervalMs / 1000);
    if (durationMs !== undefined) args.duration = String(durationMs / 1000);
    if (observeRefreshMs !== undefined) args['observe-refresh'] = String(observeRefreshMs / 1000);
    return runSimOnXs(args); // the firmware itself on the XS host (tools/xs/sim-engine.ts)
  }

  const clock = new ScaledClock(speed);
  const log: Log = cliLog(consoleLog(level as LogLevel, clock));
  let security: Security;
  let serverLabel: string;
  let flash: FileFlash | undefined;
  if (flashPath) {
    if (!existsSync(flashPath)) throw new UsageError(`--flash ${flashPath}: no such image; write one with npm run provision -- --server URL --token-file FILE --flash ${flashPath}`);
    const size = Math.max(FLASH_BYTES, statSync(flashPath).size - (statSync(flashPath).size % 4096));
    flash = new FileFlash(flashPath, size, 4096);
    const s = securityFromFlash(flash, log);
    if (!s) throw new UsageError(`--flash ${flashPath}: no usable credentials in the image (the line above says why)`);
    if (s.dtls) {
      const buf = (v: string | Uint8Array | undefined) => (v === undefined ? undefined : Buffer.from(v));
      const where = (f: string) => `(${f} in ${flashPath})`;
      checkDtlsMaterial({ ca: buf(s.dtls.ca)!, ...(s.dtls.cert && s.dtls.key ? { cert: buf(s.dtls.cert)!, key: buf(s.dtls.key)! } : {}) },
        { ca: where('ca'), cert: where('cert'), key: where('key') });
      checkTlsHostname({ scheme: 'coaps', host: s.server.host, port: s.server.port, secure: true }, s.dtls.hostname);
    }
    security = s;
    serverLabel = `${s.dtls ? 'coaps' : 'coap'}://${s.server.host}:${s.server.port}`;
  } else {
    const server = parseServerUrl(serverArg!);
    security = { server: { host: server.host, port: server.port }, ...securityFromArgs(p.values, server) };
    serverLabel = `${server.scheme}://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`;
  }
  // Resolved once: a name that does not resolve is one clear line, not a warning per retransmission.
  const address = await resolveHost(security.server.host);
  const gate = new ReadingGate();
  const quiet = flag(p, 'quiet');
  const device = createSimDevice({
    ...security,
    server: { host: address, port: security.server.port },
    reportingIntervalMs: intervalMs,
    transmission: flag(p, 'nbiot') ? 'nbiot' : 'rfc7252',
    uplink: flag(p, 'no-response') ? 'non-no-response' : flag(p, 'non') ? 'non' : 'con',
    // Only when given: DeviceApp's default (25 s re-registration) holds otherwise.
    ...(observeRefreshMs !== undefined ? { observeRefreshMs } : {}),
    firmware: { title: 'tb-coap-firmware', version: '0.1.0' },
    clock,
    log,
    sources: (c) => gate.wrap([createSimBoard(c, log).source]),
    ...(flash ? { flash, deviceName: str(p, 'device-name') ?? 'sim-device' } : {}),
    ...(quiet ? {} : { trace: (line: string) => log.info(line) }),
  });
  log.info(`device -> ${serverLabel} (${security.credentials.kind === 'x509' ? 'X.509 certificate' : 'access token, not shown'})`);
  const code = await runDevice({
    sim: device,
    gate,
    log,
    out: (l) => console.log(l),
    quiet,
    serverLabel,
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(str(p, 'interval') !== undefined ? { cliIntervalMs: intervalMs, intervalOption: `--interval ${str(p, 'interval')}` } : {}),
  });
  flash?.close();
  return code;
}

if (require.main === module) runMain('sim', () => main(process.argv.slice(2)));
