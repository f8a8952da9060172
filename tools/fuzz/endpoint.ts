/*
 * Endpoint fuzzer (tools/tb-server over loopback UDP). Junk floods from several sockets while
 * legitimate devices (the firmware's own CoapClient over UDP) report telemetry and one of them
 * observes its shared attributes, which the admin side keeps changing (small and block-wise sized).
 * The junk is derived from the seed: random bytes; requests with unknown tokens; requests with the
 * valid token of a "junk device" (authenticated junk: bad JSON, deep nesting, Block1 fragments,
 * unknown paths, FETCH/PUT, Observe registrations never ACKed); ACK/RST with random MIDs;
 * bit-flipped copies of all of these. Properties:
 *   - the endpoint neither throws nor exits (uncaught exceptions are caught and reported);
 *   - every telemetry point a legitimate device got a 2.01 for is stored, and every point it sent is
 *     answered (it replays on timeouts, as the firmware does) -- nothing they sent is lost;
 *   - the observer receives the last shared-attribute value;
 *   - the message layer's state stays within its bounds during and after the flood.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as dgram from 'node:dgram';
import { CoapClient } from '../../src/coap/client';
import { buildUriOptions, encode, encodeBlock, encodeUint } from '../../src/coap/codec';
import { CoapError } from '../../src/coap/errors';
import { Code, CoapType, ContentFormat, OptionNumber, type CoapMessage, type CoapOption } from '../../src/coap/types';
import { encodeUtf8, decodeUtf8 } from '../../src/coap/utf8';
import { ScaledClock } from '../sim/clock';
import { UdpDatagram } from '../sim/udp';
import { DEFAULT_LIMITS } from '../tb-server/message-layer';
import { startTbServer } from '../tb-server/server';
import { Rng, caseSeed, type FuzzResult } from './rng';

export interface EndpointFuzzOptions {
  /** Junk datagrams in total. */
  count: number;
  seed: number;
  deadline?: number;
  legitDevices?: number;
  reportsPerDevice?: number;
  junkSockets?: number;
  log?: (line: string) => void;
}

function junkDatagram(r: Rng, junkToken: string, mid: number): Uint8Array {
  const kind = r.int(12);
  if (kind === 0) return r.bytes(r.int(60));
  const type = r.chance(0.8) ? CoapType.CON : CoapType.NON;
  const token = r.bytes(r.int(9));
  const path = r.pick([
    `/api/v1/${junkToken}/telemetry`, `/api/v1/${junkToken}/attributes`, `/api/v1/${junkToken}/rpc`, `/api/v1/${junkToken}/rpc/${r.int(100)}`,
    `/api/v1/${junkToken}/claim`, `/api/v1/BAD${r.int(1e6)}/telemetry`, '/api/v1/provision', '/api', '/fw/x', `/fw/${junkToken}`, '/nope', '/.well-known/core',
  ]);
  const options: CoapOption[] = buildUriOptions(path);
  let code: number = r.pick([Code.GET, Code.POST, Code.POST, Code.PUT, Code.FETCH, Code.DELETE, 0x06, 0x1f]);
  let payload: Uint8Array = new Uint8Array(0);
  switch (kind) {
    case 1: case 2: payload = encodeUtf8(r.pick(['{a:1}', '{"x":', '[1,,2]', "{'q':'r'}", '{"ts":"x","values":{}}', 'null', '1', '"s"', '{' + '"a":['.repeat(40) + ']'.repeat(40) + '}'])); code = Code.POST; break;
    case 3: { // deep nesting, balanced (valid JSON) or not
      const depth = 200 + r.int(6000);
      payload = encodeUtf8('{"d":' + '['.repeat(depth) + ']'.repeat(r.chance(0.7) ? depth : r.int(depth)) + '}');
      code = Code.POST;
      break;
    }
    case 4: // Block1 fragment, any number, any size
      options.push({ number: OptionNumber.BLOCK1, value: r.chance(0.9) ? encodeBlock({ num: r.int(3) === 0 ? 0 : r.int(2000), more: r.chance(0.8), szx: r.int(7) }) : r.bytes(r.int(5)) });
      if (r.chance(0.3)) options.push({ number: 292, value: r.bytes(r.int(5)) });
      payload = r.bytes(r.pick([16, 64, 512, 1024]));
      code = Code.POST;
      break;
    case 5: options.push({ number: OptionNumber.OBSERVE, value: r.chance(0.8) ? new Uint8Array(0) : encodeUint(1) }); code = Code.GET; break;
    case 6: options.push({ number: OptionNumber.BLOCK2, value: encodeBlock({ num: r.int(5), more: false, szx: r.int(7) }) }); code = Code.GET; break;
    case 7: return encode({ type: r.chance(0.5) ? CoapType.ACK : CoapType.RST, code: 0, messageId: r.int(0x10000), token: new Uint8Array(0), options: [], payload: new Uint8Array(0) });
    case 8: options.push({ number: OptionNumber.CONTENT_FORMAT, value: r.bytes(r.int(6)) }); payload = r.bytes(r.int(100)); break;
    case 9: options.push({ number: r.pick([9, 2049, 258, 65001]), value: r.bytes(r.int(4)) }); break;
    default: break;
  }
  let bytes: Uint8Array;
  try {
    bytes = encode({ type, code, messageId: mid, token, options, payload });
  } catch {
    return r.bytes(8);
  }
  if (r.chance(0.2)) {
    bytes = bytes.slice(0, Math.max(4, r.int(bytes.length + 1)));
    if (bytes.length) bytes[r.int(bytes.length)] ^= 1 << r.int(8);
  }
  return bytes;
}

export async function fuzzEndpoint(o: EndpointFuzzOptions): Promise<FuzzResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const failures: string[] = [];
  const onUncaught = (e: Error): void => { failures.push(`uncaught: ${e.stack ?? e.message}`); };
  process.on('uncaughtException', onUncaught);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-fuzz-'));
  const serverLines: string[] = [];
  const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir, piggybackTimeoutMs: 200, log: (l) => { if (serverLines.length < 50 && /error|fail/i.test(l)) serverLines.push(l); } });
  const r = new Rng(caseSeed(o.seed, 0));
  const nonce = r.u32().toString(36);
  const nDev = o.legitDevices ?? 3;
  const reports = o.reportsPerDevice ?? Math.max(20, Math.ceil(o.count / 500));
  const figures: Record<string, number> = { junkSent: 0, legitReports: 0, legitRetries: 0, maxSeen: 0, maxOutstanding: 0, maxTransfers: 0, maxCoapLru: 0, maxOpen: 0 };
  const sample = (): void => {
    const s = tb.state();
    const l = s.layers[0]!;
    figures.maxSeen = Math.max(figures.maxSeen!, l.seen);
    figures.maxOutstanding = Math.max(figures.maxOutstanding!, l.outstanding);
    figures.maxTransfers = Math.max(figures.maxTransfers!, l.transfers);
    figures.maxCoapLru = Math.max(figures.maxCoapLru!, l.coapLru);
    figures.maxOpen = Math.max(figures.maxOpen!, s.service.open);
  };
  tb.store.createDevice('junk', { token: `JUNK_${nonce}` });
  const devices = Array.from({ length: nDev }, (_, i) => tb.store.createDevice(`legit-${i}`, { token: `LEGIT_${i}_${nonce}` }));
  const clock = new ScaledClock(1);
  const clients: { client: CoapClient; udp: UdpDatagram }[] = devices.map((d, i) => {
    const udp = new UdpDatagram('127.0.0.1', tb.coapPort);
    const rr = new Rng(caseSeed(o.seed, 100 + i));
    const client = new CoapClient(udp, { clock, random: { fill: (b) => rr.fill(b), next: () => rr.next() }, transmission: { ackTimeout: 500, maxRetransmit: 4, responseTimeout: 5000 } });
    return { client, udp };
  });
  // device 0 observes its shared attributes
  let lastShared = '';
  let closing = false;
  const sharedSeen: string[] = [];
  const obs = clients[0]!.client.observe({ method: 'GET', path: `/api/v1/${devices[0]!.token}/attributes` }, (res) => {
    const text = decodeUtf8(res.payload);
    sharedSeen.push(text);
  }, (reason) => { if (reason && !closing) failures.push(`observation ended: ${reason.message}`); });
  try {
    await obs.registered;
  } catch (e) {
    failures.push(`observe registration failed: ${(e as Error).message}`);
  }

  // legitimate reports: each point until it is answered 2.01 (replayed on timeout, like the firmware)
  const baseTs = 1_700_000_000_000;
  const legit = clients.map(async ({ client }, i) => {
    const key = `legit_${i}_${nonce}`;
    for (let n = 0; n < reports; n++) {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 20) { failures.push(`${key}#${n}: no 2.01 after 20 attempts`); return; }
        try {
          // device 1 sends every 4th report block-wise (Block1), beside the junk Block1 fragments
          const values: Record<string, unknown> = { [key]: n };
          if (i === 1 && n % 4 === 0) values.pad = 'p'.repeat(2500);
          const res = await client.request({ method: 'POST', path: `/api/v1/${devices[i]!.token}/telemetry`, contentFormat: ContentFormat.JSON,
            payload: encodeUtf8(JSON.stringify({ ts: baseTs + n, values })), confirmable: !(i === 2 && n % 3 === 0) });
          if (res.code !== Code.CREATED) { failures.push(`${key}#${n}: answered ${res.code >> 5}.${res.code & 31}`); return; }
          figures.legitReports!++;
          break;
        } catch (e) {
          if (!(e instanceof CoapError)) throw e;
          figures.legitRetries!++;
        }
      }
      await new Promise((res) => setImmediate(res));
    }
  });

  // the admin side changes the observed attributes meanwhile, one of them block-wise sized
  const admin = (async () => {
    for (let k = 0; k < 6; k++) {
      lastShared = k === 3 ? 'B'.repeat(1500) : `v${k}`;
      const res = await fetch(`http://127.0.0.1:${tb.httpPort}/api/devices/legit-0/attributes/shared`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tb.adminToken}` }, body: JSON.stringify({ fuzzShared: lastShared }),
      });
      if (res.status !== 200) failures.push(`admin attribute update answered ${res.status}`);
      await new Promise((res2) => setTimeout(res2, 30));
    }
  })();

  // junk floods
  const socks = await Promise.all(Array.from({ length: o.junkSockets ?? 4 }, () => new Promise<dgram.Socket>((res) => {
    const s = dgram.createSocket('udp4');
    s.on('message', () => {});
    s.bind(0, '127.0.0.1', () => res(s));
  })));
  let mid = 0;
  let stopped = false;
  for (let i = 0; i < o.count; i++) {
    if ((i & 63) === 0) {
      if (o.deadline !== undefined && Date.now() > o.deadline) { stopped = true; break; }
      sample();
      await new Promise((res) => setImmediate(res));
    }
    const jr = new Rng(caseSeed(o.seed, 1000 + i));
    mid = (mid + 1) & 0xffff;
    const d = junkDatagram(jr, `JUNK_${nonce}`, mid);
    socks[i % socks.length]!.send(d, tb.coapPort, '127.0.0.1');
    figures.junkSent!++;
  }
  await Promise.all([...legit, admin]);
  // let the last notifications (and their block-wise follow-ups) arrive
  for (let w = 0; w < 200 && !(sharedSeen.length && sharedSeen[sharedSeen.length - 1]!.includes(lastShared)); w++) {
    await new Promise((res) => setTimeout(res, 10));
  }
  sample();

  for (const [i, d] of devices.entries()) {
    const got = tb.store.telemetry(d.id)[`legit_${i}_${nonce}`] ?? [];
    const values = new Set(got.map((p) => p.value));
    for (let n = 0; n < reports; n++) if (!values.has(n)) failures.push(`legit_${i}: point ${n} lost`);
  }
  const last = sharedSeen[sharedSeen.length - 1] ?? '';
  let lastValue: unknown;
  try { lastValue = (JSON.parse(last) as { fuzzShared?: unknown }).fuzzShared; } catch { lastValue = undefined; }
  if (lastValue !== lastShared) failures.push(`observer's last shared value is ${String(lastValue).slice(0, 20)}, expected ${lastShared.slice(0, 20)} (${sharedSeen.length} notifications)`);
  const L = DEFAULT_LIMITS;
  if (figures.maxSeen! > L.maxSeen) failures.push(`dedup state ${figures.maxSeen} > ${L.maxSeen}`);
  if (figures.maxOutstanding! > L.maxOutstanding) failures.push(`outstanding ${figures.maxOutstanding} > ${L.maxOutstanding}`);
  if (figures.maxTransfers! > L.maxTransfers) failures.push(`transfers ${figures.maxTransfers} > ${L.maxTransfers}`);
  if (figures.maxCoapLru! > L.maxOutstanding + 512) failures.push(`node-coap LRU ${figures.maxCoapLru}`);

  closing = true;
  for (const { client, udp } of clients) { client.close(); udp.close(); }
  await Promise.all(socks.map((s) => new Promise<void>((res) => s.close(() => res()))));
  try {
    await tb.close();
  } catch (e) {
    failures.push(`close() threw ${(e as Error).name}: ${(e as Error).message}`);
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.off('uncaughtException', onUncaught);
  if (failures.length) log(`endpoint: server log excerpts: ${serverLines.slice(0, 5).join(' | ')}`);
  return {
    target: 'endpoint', seed: o.seed, requested: o.count, ran: figures.junkSent!, ms: Date.now() - t0,
    failures: failures.slice(0, 10).map((message) => ({ target: 'endpoint', seed: o.seed, index: -1, message })),
    figures: { ...figures, stoppedByTimeLimit: stopped ? 1 : 0 },
  };
}
