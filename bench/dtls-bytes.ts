/*
 * Bytes on the wire per telemetry report over CoAPs, counted at the socket both ways (a UDP
 * proxy on 127.0.0.1 sits between each client and the local endpoint's DTLS listener):
 *   (a) a report with a full handshake (device wakes with no session),
 *   (b) a report after sleep with resumption (new socket, saved session),
 *   (c) a report in an established session (CON, and NON with No-Response),
 * and, in the same run, the ThingsBoard guide's one-shot client
 *   coap-client-openssl -m POST -R ca.pem -t json -e '{...}' coaps://.../api/v1/$TOKEN/telemetry
 * Targets: (c) <= 150 B; (b) <= one third of the guide client's bytes per report.
 *
 * `npx tsx bench/dtls-bytes.ts` alone, or through `npm run bench`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/coap/client';
import { TOKEN_LENGTH } from '../src/device/app';
import { DtlsDatagram } from '../src/dtls/datagram';
import { ThingsBoardClient } from '../src/thingsboard/client';
import { loadDtlsEngine } from '../hardware/dtls/index';
import { makeTestPki } from '../tools/provision/certs';
import { startTbServer } from '../tools/tb-server/server';
import { ScaledClock } from '../tools/sim/clock';
import { cryptoRandom } from '../tools/sim/random';
import { UdpDatagram } from '../tools/sim/udp';
import { CountingProxy, sleep } from './lib/counting-proxy';

const REPORT = { temperature: 21.5, humidity: 40.2 };

export async function run(): Promise<void> {
  const pki = makeTestPki();
  const dir = mkdtempSync(join(tmpdir(), 'bench-dtls-'));
  const server = await startTbServer({
    coapPort: 0,
    httpPort: 0,
    dataDir: dir,
    dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') },
  });
  const proxy = new CountingProxy(server.coapsPort!);
  const port = await proxy.listen();
  const dev = server.store.createDevice('bench');
  const engine = loadDtlsEngine();
  const clock = new ScaledClock(1);
  const settle = () => sleep(150); // let the last ACK cross the proxy before reading the counter

  const open = (session?: Uint8Array) => {
    const udp = new UdpDatagram('127.0.0.1', port);
    const dtls = new DtlsDatagram({
      transport: udp,
      clock,
      createEngine: engine.create,
      engine: { ca: pki.read('ca.pem'), hostname: 'localhost' },
      ...(session ? { session } : {}),
    });
    const coap = new CoapClient(dtls, { clock, random: cryptoRandom, tokenLength: TOKEN_LENGTH.dtls });
    const tb = new ThingsBoardClient(coap, { credentials: { kind: 'token', token: dev.token }, clock });
    return { dtls, coap, tb, close: () => { coap.close(); dtls.close(); } };
  };

  try {
    // (a) full handshake + report
    proxy.reset();
    const a = open();
    await a.tb.sendTelemetry(REPORT);
    await settle();
    const full = proxy.bytes;
    // (c) established session, CON (ThingsBoard answers with a separate CON response, we ACK it)
    proxy.reset();
    await a.tb.sendTelemetry(REPORT);
    await settle();
    const established = proxy.bytes;
    const session = a.dtls.session()!;
    a.close();
    await sleep(50);
    // (b) wake-up: new socket, resume the saved session, report
    proxy.reset();
    const b = open(session);
    await b.tb.sendTelemetry(REPORT);
    await settle();
    const resumed = proxy.bytes;
    const resumedOk = b.dtls.resumed;
    // (c') established, NON request + NON 2.01 (confirmed, two datagrams)
    const nonTb = new ThingsBoardClient(b.coap, { credentials: { kind: 'token', token: dev.token }, clock, uplink: 'non' });
    proxy.reset();
    await nonTb.sendTelemetry(REPORT);
    await settle();
    const establishedNon = proxy.bytes;
    // (c'') established, NON + No-Response (unconfirmed: one datagram)
    const nrTb = new ThingsBoardClient(b.coap, { credentials: { kind: 'token', token: dev.token }, clock, uplink: 'non-no-response' });
    proxy.reset();
    await nrTb.sendTelemetry(REPORT);
    await settle();
    const establishedNoResponse = proxy.bytes;
    b.close();

    // The guide's one-shot client, same endpoint, same proxy.
    proxy.reset();
    const guide = await new Promise<{ ok: boolean; err: string }>((resolve) => {
      execFile(
        'coap-client-openssl',
        ['-m', 'POST', '-R', pki.path('ca.pem'), '-t', 'json', '-e', JSON.stringify(REPORT), `coaps://localhost:${port}/api/v1/${dev.token}/telemetry`],
        { timeout: 20000 },
        (err, _o, stderr) => resolve({ ok: !err, err: String(stderr) }),
      );
    });
    await settle();
    const guideBytes = proxy.bytes;
    if (!guide.ok) throw new Error(`coap-client-openssl failed: ${guide.err}`);
    const stored = server.store.telemetry(dev.id, ['temperature']).temperature?.length ?? 0;
    if (stored < 6) throw new Error(`only ${stored} of 6 reports stored`);

    // (c'') the same established CON report if the server piggybacked its 2.01 on the ACK, as
    // ThingsBoard will once PR #15174 lands (the local endpoint's conResponses: 'piggyback').
    const pigDir = mkdtempSync(join(tmpdir(), 'bench-dtls-pig-'));
    const pig = await startTbServer({
      coapPort: 0,
      httpPort: 0,
      dataDir: pigDir,
      conResponses: 'piggyback',
      dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') },
    });
    const pigProxy = new CountingProxy(pig.coapsPort!);
    const pigPort = await pigProxy.listen();
    const pigDev = pig.store.createDevice('bench');
    const pigUdp = new UdpDatagram('127.0.0.1', pigPort);
    const pigDtls = new DtlsDatagram({ transport: pigUdp, clock, createEngine: engine.create, engine: { ca: pki.read('ca.pem'), hostname: 'localhost' } });
    const pigCoap = new CoapClient(pigDtls, { clock, random: cryptoRandom, tokenLength: TOKEN_LENGTH.dtls });
    const pigTb = new ThingsBoardClient(pigCoap, { credentials: { kind: 'token', token: pigDev.token }, clock });
    let piggybacked: number;
    try {
      await pigTb.sendTelemetry(REPORT);
      await settle();
      pigProxy.reset();
      await pigTb.sendTelemetry(REPORT);
      await settle();
      piggybacked = pigProxy.bytes;
    } finally {
      pigCoap.close();
      pigDtls.close();
      pigProxy.close();
      await pig.close();
      rmSync(pigDir, { recursive: true, force: true });
    }

    const row = (name: string, bytes: number, note = '') => console.log(`  ${name.padEnd(48)} ${String(bytes).padStart(6)} B ${note}`);
    console.log(`bytes per telemetry report ${JSON.stringify(REPORT)}, both directions, counted at the socket`);
    console.log(`(mbedTLS ${engine.mbedtlsVersion}, ECDHE-ECDSA P-256; the server sends HelloVerifyRequest on full handshakes, none on session-ID resumption (Scandium's default);\n ${TOKEN_LENGTH.dtls}-byte CoAP tokens as the device uses inside DTLS;\n CON = request + ThingsBoard's separate CON response + our ACK, as ThingsBoard answers today)`);
    row('(a) full handshake + report', full);
    row('(b) after sleep: resumed handshake + report', resumed, resumedOk ? '(abbreviated handshake)' : '(NOT resumed: full handshake)');
    const target = (n: number) => (n <= 150 ? '(target <= 150: met)' : '(target <= 150: NOT met)');
    row('(c) established session, CON (device default)', established, target(established));
    row("(c') established session, NON + NON 2.01 (--non)", establishedNon, `${target(establishedNon)}, confirmed`);
    row("(c'') established, NON + No-Response", establishedNoResponse, '(unconfirmed)');
    row("(c''') established, CON, response piggybacked", piggybacked, "(ThingsBoard after PR #15174)");
    row('guide: coap-client-openssl one-shot', guideBytes);
    const ratio = resumed / guideBytes;
    console.log(`  ratio (b) / guide = ${ratio.toFixed(3)} (target <= 0.333: ${ratio <= 1 / 3 ? 'met' : 'NOT met'}); guide / (c) = ${(guideBytes / established).toFixed(1)}x`);
  } finally {
    proxy.close();
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
