/*
 * npm run sim -- --server coap://HOST:5683 --token TOKEN [--interval S] [--speed N]
 *                [--duration S] [--nbiot] [--quiet] [--log debug|info|warn|error]
 * Runs one simulated device against any ThingsBoard (or the local endpoint) and shows live
 * what it sends and receives. The token is never printed.
 */
import { parseArgs, num } from './args';
import { consoleLog, createSimDevice } from './device';
import { ScaledClock } from './clock';
import type { LogLevel } from '../../src/platform/types';

export function parseServer(url: string): { host: string; port: number; secure: boolean } {
  const m = /^(coaps?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(url);
  if (!m) throw new Error(`--server must look like coap://host:5683 (got ${url})`);
  const secure = m[1] === 'coaps';
  return { host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : secure ? 5684 : 5683, secure };
}

const USAGE = 'usage: npm run sim -- --server coap://HOST:5683 --token TOKEN [--interval S] [--speed N] [--duration S] [--nbiot] [--quiet] [--log LEVEL]';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help || typeof args.server !== 'string' || typeof args.token !== 'string') {
    console.error(USAGE);
    process.exit(args.help ? 0 : 2);
  }
  const server = parseServer(args.server);
  if (server.secure) throw new Error('coaps:// needs the DTLS options: see docs/dtls.md');
  const speed = num(args.speed, 1);
  const clock = new ScaledClock(speed);
  const log = consoleLog((typeof args.log === 'string' ? args.log : 'info') as LogLevel, clock);
  const device = createSimDevice({
    server,
    credentials: { kind: 'token', token: args.token },
    reportingIntervalMs: num(args.interval, 10) * 1000,
    transmission: args.nbiot ? 'nbiot' : 'rfc7252',
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
