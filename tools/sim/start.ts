/*
 * npm start: the local ThingsBoard-compatible endpoint plus one simulated device, with a live
 * view of every datagram the device sends and receives. Ctrl-C stops both.
 *
 *   npm start -- [--coap-port 5683] [--http-port 8080] [--interval S] [--speed N] [--duration S]
 *                [--coaps [--x509]] [--coaps-port 5684]
 *
 * --coaps: the endpoint also serves CoAP over DTLS with a test PKI made in .certs/ (npm run certs),
 * and the device talks coaps:// with the access token (one-way), or with --x509 its client
 * certificate (mutual, no token).
 *
 * While it runs, try from another terminal:
 *   npm run tb-server -- set-shared sim-device-1 reportingInterval=5
 *   npm run tb-server -- rpc sim-device-1 getState
 *   npm run tb-server -- telemetry sim-device-1
 */
import { startTbServer } from '../tb-server/server';
import { certSha3FromPem } from '../tb-server/store';
import { num, parseArgs } from './args';
import { ScaledClock } from './clock';
import { consoleLog, createSimDevice } from './device';
import { makeCerts } from '../provision/certs';
import type { DtlsConfig } from '../../src/device/app';
import type { Credentials } from '../../src/thingsboard/client';

const DEVICE = 'sim-device-1';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const coapPort = num(args['coap-port'], 5683);
  const httpPort = num(args['http-port'], 8080);
  const speed = num(args.speed, 1);
  const clock = new ScaledClock(speed);
  const log = consoleLog('info', clock);
  const coaps = !!args.coaps || !!args.x509;
  const pki = coaps ? makeCerts('.certs') : undefined;
  const server = await startTbServer({
    coapPort,
    httpPort,
    ...(pki ? { dtls: { port: num(args['coaps-port'], 5684), cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } } : {}),
    dataDir: typeof args.data === 'string' ? args.data : '.tb-server',
    log: (line) => console.log(`            server ${line}`),
  });
  const device = server.store.findDevice(DEVICE) ?? server.store.createDevice(DEVICE);
  let credentials: Credentials = { kind: 'token', token: device.token };
  let dtls: DtlsConfig | undefined;
  if (pki) {
    dtls = { ca: pki.read('ca.pem'), hostname: 'localhost' };
    if (args.x509) {
      server.store.updateDevice(device, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
      dtls.cert = pki.read('device.pem');
      dtls.key = pki.read('device.key');
      credentials = { kind: 'x509' };
    }
  }
  console.log(`local ThingsBoard endpoint: coap://127.0.0.1:${server.coapPort}${server.coapsPort ? `  coaps://127.0.0.1:${server.coapsPort}` : ''}  admin http://127.0.0.1:${server.httpPort}`);
  if (pki) console.log(`device uses coaps:// (${args.x509 ? 'mutual X.509, no token' : 'one-way DTLS + access token'}); test PKI in ${pki.dir}`);
  console.log(`device "${DEVICE}" (token kept in .tb-server; never printed)`);
  console.log(`try: npm run tb-server -- --http http://127.0.0.1:${server.httpPort} set-shared ${DEVICE} reportingInterval=5`);
  console.log(`     npm run tb-server -- --http http://127.0.0.1:${server.httpPort} rpc ${DEVICE} getState`);
  const sim = createSimDevice({
    server: { host: '127.0.0.1', port: server.coapsPort ?? server.coapPort },
    credentials,
    ...(dtls ? { dtls } : {}),
    reportingIntervalMs: num(args.interval, 10) * 1000,
    firmware: { title: 'tb-coap-firmware', version: '0.1.0' },
    clock,
    log,
    trace: (line) => log.info(`device ${line}`),
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    sim.app.stop();
    log.info(`device state: ${JSON.stringify(sim.app.state)}`);
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  await sim.app.start();
  const duration = num(args.duration, 0);
  if (duration > 0) setTimeout(() => void stop(), (duration * 1000) / speed);
}

main().catch((e) => {
  console.error(`start: ${(e as Error).message}`);
  process.exit(1);
});
