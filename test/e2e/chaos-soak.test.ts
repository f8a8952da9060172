/*
 * Chaos soak (issue 14): 24 device hours, a reading a minute, against the local endpoint over real
 * loopback UDP with 30 % loss each way, 10 % duplication, a NAT rebinding every 3 hours, junk
 * datagrams from a spoofer at the device's port every hour, and an endpoint restart (same store,
 * same port) at 12:00. Every reading must be stored exactly once by (key, ts), with its original ts,
 * and delivery must never stall (readings queued, none stored) for more than 5 reporting intervals:
 * with 30 % loss each way a CON exchange fails outright ~4 % of the time after its 93 s of
 * retransmissions, so a stall of 2-3 intervals happens; more would mean a wedged client or queue.
 * Over DTLS the same soak also proves that the session survives (or is re-established after) the
 * endpoint's restart, rebinding and junk.
 *
 * The device runs on a ManualClock (a day in seconds of wall time); between its timers the test
 * waits, bounded, until the loopback traffic is quiet. Loss and duplication come from a seeded
 * random, so a failure reproduces with the printed seed.
 */
import { strict as assert } from 'node:assert';
import dgram from 'node:dgram';
import { ManualClock } from '../../tools/sim/clock';
import { MemFlash } from '../../tools/sim/flash';
import { SeededRandom } from '../../tools/sim/random';
import { makeTestPki } from '../../tools/provision/certs';
import { useEndpoint } from '../helpers/e2e';

const H = 3600_000;
const MIN = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pki = makeTestPki();
const serverDtls = () => ({ port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') });

for (const secure of [false, true]) describe(`e2e: chaos soak over ${secure ? 'CoAPs (DTLS)' : 'CoAP'}, 24 h with loss, duplication, rebinding, junk and an endpoint restart (real UDP)`, function () {
  this.timeout(300_000);
  const e2e = useEndpoint(() => (secure ? { dtls: serverDtls() } : {}));

  it('stores every reading exactly once with its original ts; delivery never stalls more than 5 intervals', async () => {
    const seed = Number(process.env.SOAK_SEED ?? 20261201);
    const rnd = new SeededRandom(seed);
    const dev = e2e.server.store.createDevice('soak');
    (e2e.server.store as unknown as { historyLimit: number }).historyLimit = 10_000;
    const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
    const flash = new MemFlash(20 * 4096, 4096);
    const taken: number[] = [];
    const logLines: { t: number; line: string }[] = [];
    const keep = (level: string) => (m: string) => {
      logLines.push({ t: clock.now(), line: `${level} ${m}` });
      if (logLines.length > 5000) logLines.shift();
    };
    const d = e2e.device({
      log: { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') },
      credentials: { kind: 'token', token: dev.token },
      ...(secure ? { dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' } } : {}),
      clock,
      flash,
      reportingIntervalMs: MIN,
      sources: () => [{ name: 'n', read: () => (taken.push(clock.epochMs()), { temperature: 20 + (taken.length % 97) / 10 }) }],
    });
    d.udp.faults = { lossOut: 0.3, lossIn: 0.3, duplicateOut: 0.1, random: () => rnd.next() };

    let traffic = 0;
    const activity = () => d.udp.stats.datagramsSent + d.udp.stats.datagramsReceived;
    const settle = async () => {
      await new Promise((r) => setImmediate(r));
      if (activity() === traffic) return;
      for (let i = 0, quiet = 0; i < 100 && quiet < 2; i++) {
        const before = activity();
        await sleep(2);
        await new Promise((r) => setImmediate(r));
        quiet = activity() === before ? quiet + 1 : 0;
      }
      traffic = activity();
    };

    // Longest stretch (device time) with readings queued and none delivered.
    let lastDelivered = 0;
    let delivered = 0;
    let worstStall = 0;
    let worstAt = 0;
    const watch = () => {
      const stored = e2e.server.store.telemetry(dev.id, ['temperature']).temperature?.length ?? 0;
      if (stored > delivered || d.app.state.queued === 0) {
        delivered = stored;
        lastDelivered = clock.now();
      }
      if (clock.now() - lastDelivered > worstStall) {
        worstStall = clock.now() - lastDelivered;
        worstAt = lastDelivered;
      }
    };
    const spoof = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoof.bind(0, '127.0.0.1', () => r()));
    const junk = [Buffer.from([0xff, 0x00]), Buffer.from([0x41, 0x45, 0x00]), Buffer.from('not coap at all'), Buffer.from([0x60, 0x45, 0x12, 0x34, 0xff])];

    const run = async (until: number) => {
      while (clock.now() < until) {
        await clock.advanceAsync(Math.min(MIN, until - clock.now()), settle);
        watch();
        const t = clock.now();
        if (t % H === 0) for (const j of junk) spoof.send(j, d.udp.localPort, '127.0.0.1');
        if (t % (3 * H) === 0) d.udp.rebind();
      }
    };

    try {
      const started = d.app.start();
      await run(12 * H);
      // Endpoint restart on the same port with the same store: it forgot every Observe relation.
      const port = e2e.server.coapPort;
      const securePort = e2e.server.coapsPort;
      await e2e.server.close();
      await clock.advanceAsync(30_000, settle);
      await e2e.start(secure ? { coapPort: port, dtls: { ...serverDtls(), port: securePort! } } : { coapPort: port });
      (e2e.server.store as unknown as { historyLimit: number }).historyLimit = 10_000;
      await run(24 * H);
      // Quiet network for the drain: the queue must empty.
      d.udp.faults = {};
      await run(24 * H + 30 * MIN);
      await started;
    } finally {
      spoof.close();
    }

    const points = e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? [];
    const stored = points.map((p) => p.ts).sort((a, b) => a - b);
    const summary = `${secure ? 'CoAPs' : 'CoAP'}, seed ${seed}: ${taken.length} readings, ${stored.length} stored, ${d.udp.stats.datagramsSent} datagrams out, ${d.udp.stats.datagramsReceived} in, longest stall ${(worstStall / MIN).toFixed(1)} min from ${(worstAt / H).toFixed(2)} h, queue ${d.app.state.queued}, dropped ${d.app.state.dropped}`;
    console.log(`      ${summary}`);
    if (worstStall > 5 * MIN || process.env.SOAK_LOG)
      for (const l of logLines.filter((x) => x.t >= worstAt - MIN && x.t <= worstAt + worstStall)) console.log(`        ${(l.t / H).toFixed(3)} h ${l.line}`);
    assert.ok(taken.length >= 24 * 60, summary);
    assert.equal(d.app.state.queued, 0, `drained: ${summary}`);
    assert.equal(new Set(stored).size, stored.length, `one point per (key, ts): ${summary}`);
    assert.deepEqual(stored, [...taken].sort((a, b) => a - b), `every reading, each with its original ts: ${summary}`);
    assert.equal(d.app.state.dropped, 0);
    // With 30 % loss a CON exchange fails outright ~4 % of the time (RFC 7252: 5 tries, ~93 s);
    // the queue goes out with the next reading. A stall beyond a few intervals means a wedged session.
    // CoAPs used to stall for 11-14 min: (1) a resumption whose last flight (ChangeCipherSpec +
    // Finished) was lost left the server's endpoint waiting for its retransmission timer, which runs
    // in wall time here (a device minute is ~20 ms), so the device's requests went unanswered until
    // it handshook again; DtlsServer now resends its flight when the peer's application data shows
    // the handshake is done on the peer's side, and a retransmitted ClientHello no longer starts a
    // second endpoint. (2) After such a lossy resumption mbedTLS 2.28 limited records to 479 bytes
    // until the server's first record: a queued batch was refused five times; the core now keeps
    // the session's 995 bytes, a refused request fails at once and the app splits the batch.
    // Now 3 min over CoAPs (seeds 20261201, 7, 42, 1234, 5; plain CoAP 2-3 min), under the same bound.
    assert.ok(worstStall <= 5 * MIN, summary);
    if (secure) assert.equal(d.app.dtls!.state, 'connected', summary);
  });
});
