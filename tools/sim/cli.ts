/*
 * npm run sim -- --server coap://HOST:5683 --token TOKEN [--interval S] [--speed N]
 *                [--duration S] [--nbiot] [--non | --no-response] [--observe-refresh S] [--quiet]
 *                [--log debug|info|warn|error]
 * CoAP over DTLS (see docs/dtls.md):
 *   one-way, token:  --server coaps://HOST:5684 --ca ca.pem --token TOKEN [--hostname NAME]
 *   mutual X.509:    --server coaps://HOST:5684 --ca ca.pem --cert device.pem --key device.key
 * Runs one simulated device against any ThingsBoard (or the local endpoint) and shows live
 * what it sends and receives. The token is never printed.
 */
import { parseArgs, num } from './args';
import { consoleLog, createSimDevice } from './device';
import { ScaledClock } from './clock';
import { readFileSync } from 'node:fs';
import { runSimOnXs } from '../xs/sim-engine';
import type { LogLevel } from '../../src/platform/types';
import type { Credentials } from '../../src/thingsboard/client';
import type { DtlsConfig } from '../../src/device/app';

export function parseServer(url: string): { host: string; port: number; secure: boolean } {
  const m = /^(coaps?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
  if (!m) throw new Error(`--server must look like coap://host:5683 (got ${url})`);
  const secure = m[1] === 'coaps';
  return { host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : secure ? 5684 : 5683, secure };
}

const USAGE = [
  'usage: npm run sim -- --server coap://HOST:5683 --token TOKEN [--interval S] [--speed N] [--duration S] [--nbiot] [--non | --no-response] [--observe-refresh S] [--quiet] [--log LEVEL]',
  '       npm run sim -- --server coaps://HOST:5684 --ca CA.pem (--token TOKEN | --cert DEVICE.pem --key DEVICE.key) [--hostname NAME]',
  '       npm run sim -- --engine xs ...   runs src/main.ts on the XS host (docs/xs.md) with the same options as config',
].join('\n');

/** Credentials and DTLS settings from the command line; exported for tests. */
export function securityFromArgs(args: Record<string, unknown>, server: { host: string; secure: boolean }): { credentials: Credentials; dtls?: DtlsConfig } {
  const str = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  const token = str('token');
  if (!server.secure) {
    if (!token) throw new Error('--token is required for coap://');
    return { credentials: { kind: 'token', token } };
  }
  const ca = str('ca');
  if (!ca) throw new Error('coaps:// needs --ca with the CA root that signed the server certificate (there is no "accept any certificate" mode)');
  const cert = str('cert');
  const key = str('key');
  if (!!cert !== !!key) throw new Error('--cert and --key go together (mutual X.509)');
  const dtls: DtlsConfig = { ca: readFileSync(ca), hostname: str('hostname') ?? server.host };
  if (cert && key) {
    dtls.cert = readFileSync(cert);
    dtls.key = readFileSync(key);
    return { credentials: { kind: 'x509' }, dtls };
  }
  if (!token) throw new Error('one-way coaps:// needs --token (or --cert/--key for X.509)');
  return { credentials: { kind: 'token', token }, dtls };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.engine === 'xs') process.exit(await runSimOnXs(args)); // the firmware itself on the XS host (tools/xs/sim-engine.ts)
  if (args.engine !== undefined && args.engine !== 'node') throw new Error('--engine is node (default) or xs');
  if (args.help || typeof args.server !== 'string') {
    console.error(USAGE);
    process.exit(args.help ? 0 : 2);
  }
  const server = parseServer(args.server);
  const security = securityFromArgs(args, server);
  const speed = num(args.speed, 1);
  const clock = new ScaledClock(speed);
  const log = consoleLog((typeof args.log === 'string' ? args.log : 'info') as LogLevel, clock);
  const device = createSimDevice({
    server,
    ...security,
    reportingIntervalMs: num(args.interval, 10) * 1000,
    transmission: args.nbiot ? 'nbiot' : 'rfc7252',
    uplink: args['no-response'] ? 'non-no-response' : args.non ? 'non' : 'con',
    observeRefreshMs: num(args['observe-refresh'], 0) * 1000,
    firmware: { title: 'tb-coap-firmware', version: '0.1.0' },
    clock,
    log,
    trace: args.quiet ? undefined : (line) => log.info(line),
  });
  device.app.onEvent = (e) => {
    if (e.type === 'stopped') log.error(`device stopped: ${e.reason}`);
  };
  const stop = () => {
    device.app.stop();
    log.info(`state: ${JSON.stringify(device.app.state)}`);
    process.exit(device.app.tb.stopped ? 1 : 0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await device.app.start();
  const duration = num(args.duration, 0);
  if (duration > 0) setTimeout(stop, (duration * 1000) / speed);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`sim: ${(e as Error).message}`);
    process.exit(1);
  });
}
