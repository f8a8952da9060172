/*
 * Client fuzzer (src/coap/client.ts). Each case is one CoapClient on a virtual clock with a few
 * requests (plain, Block1 bodies, Block2 responses, NON), and Observe registrations outstanding;
 * the "network" then injects responses built from what the client sent (right and wrong MIDs and
 * tokens, ACK/CON/NON/RST, random codes, Observe, Block1/Block2, Content-Format of any length),
 * mutated copies and junk, while the clock advances. Properties:
 *   - receiving never throws out of the client, and the client never sends a datagram that does
 *     not decode;
 *   - every request and registration settles (resolves, or rejects with a CoapError) once the clock
 *     has run past every timeout; nothing rejects with anything else (TypeError, RangeError);
 *   - after close() no timer is left on the clock;
 *   - what the client sends is bounded by what it was asked and sent (no datagram storms).
 */
import { CoapClient } from '../../src/coap/client';
import { decode, encode, encodeBlock, encodeUint } from '../../src/coap/codec';
import { CoapError } from '../../src/coap/errors';
import { Code, CoapType, OptionNumber, type CoapMessage, type CoapOption } from '../../src/coap/types';
import type { Datagram } from '../../src/platform/types';
import { ManualClock } from '../sim/clock';
import { Rng, caseSeed, hex, type FuzzFailure, type FuzzResult } from './rng';

class FuzzNet implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  readonly sent: Uint8Array[] = [];
  constructor(readonly mtu: number | undefined) {}
  send(data: Uint8Array): void { this.sent.push(data.slice()); }
  close(): void {}
}

const CODES = [Code.CREATED, Code.VALID, Code.CONTENT, Code.CONTENT, Code.CONTENT, Code.CONTINUE, Code.DELETED, Code.BAD_REQUEST,
  Code.NOT_FOUND, Code.REQUEST_ENTITY_INCOMPLETE, Code.REQUEST_ENTITY_TOO_LARGE, Code.INTERNAL_SERVER_ERROR, 0x00, 0x01, 0xe0];

function randomUintValue(r: Rng, max: number): Uint8Array {
  // mostly well-formed, sometimes too long for the option (elective: must be ignored)
  if (r.chance(0.15)) return r.bytes(1 + r.int(6));
  return encodeUint(r.int(max));
}

function responseOptions(r: Rng, req: CoapMessage | undefined): CoapOption[] {
  const out: CoapOption[] = [];
  if (r.chance(0.4)) out.push({ number: OptionNumber.OBSERVE, value: randomUintValue(r, 1 << 24) });
  if (r.chance(0.5)) out.push({ number: OptionNumber.CONTENT_FORMAT, value: randomUintValue(r, 65536) });
  if (r.chance(0.35)) {
    const b2 = r.chance(0.8) ? encodeBlock({ num: r.int(4), more: r.chance(0.6), szx: r.int(7) }) : r.bytes(r.int(5));
    out.push({ number: OptionNumber.BLOCK2, value: b2 });
  }
  if (r.chance(0.2)) {
    const echo = req?.options.find((o) => o.number === OptionNumber.BLOCK1);
    out.push({ number: OptionNumber.BLOCK1, value: echo && r.chance(0.7) ? echo.value : r.bytes(r.int(5)) });
  }
  if (r.chance(0.1)) out.push({ number: OptionNumber.SIZE2, value: randomUintValue(r, 100000) });
  if (r.chance(0.1)) out.push({ number: OptionNumber.ETAG, value: r.bytes(r.int(9)) });
  if (r.chance(0.05)) out.push({ number: r.pick([9, 13, 2049, 65001]), value: r.bytes(r.int(4)) }); // unknown: critical or elective
  return out;
}

function craft(r: Rng, sent: CoapMessage | undefined, nextMid: () => number): CoapMessage {
  const isReq = sent && sent.code !== 0 && sent.code >> 5 === 0;
  const token = sent && r.chance(0.85) ? sent.token : r.bytes(r.int(9));
  const kind = r.int(10);
  if (sent && kind === 0) return { type: CoapType.ACK, code: 0, messageId: sent.messageId, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) };
  if (sent && kind === 1) return { type: CoapType.RST, code: 0, messageId: r.chance(0.8) ? sent.messageId : r.int(0x10000), token: new Uint8Array(0), options: [], payload: new Uint8Array(0) };
  const type = sent && kind < 6 && sent.type === CoapType.CON ? CoapType.ACK : r.pick([CoapType.CON, CoapType.NON, CoapType.CON]);
  const messageId = type === CoapType.ACK ? (r.chance(0.9) ? sent!.messageId : r.int(0x10000)) : nextMid();
  const options = responseOptions(r, isReq ? sent : undefined);
  const b2 = options.find((o) => o.number === OptionNumber.BLOCK2);
  let payloadLen = r.chance(0.5) ? r.int(40) : r.int(1100);
  if (b2 && b2.value.length === 1 && (b2.value[0]! & 8) && r.chance(0.7)) payloadLen = 1 << ((b2.value[0]! & 7) + 4); // a right-sized block
  return { type, code: r.pick(CODES), messageId, token, options, payload: r.bytes(payloadLen) };
}

function mutate(r: Rng, b: Uint8Array): Uint8Array {
  const out = b.slice(0, Math.max(4, r.int(b.length + 1)));
  if (out.length) out[r.int(out.length)] ^= 1 << r.int(8);
  return out;
}

/** Runs case `index`; resolves with a failure message or null. */
export async function clientCase(seed: number, index: number): Promise<string | null> {
  const r = new Rng(caseSeed(seed, index));
  const clock = new ManualClock();
  const net = new FuzzNet(r.pick([undefined, 100, 300, 1152]));
  const jitter = r.next();
  const client = new CoapClient(net, {
    clock, random: { fill: (b) => r.fill(b), next: () => jitter },
    maxBodySize: r.pick([256, 4096, 65536]), maxObservations: 3, dedupSize: r.pick([0, 4, 32]),
  });
  const problems: string[] = [];
  const pending = new Set<number>();
  let nextId = 0;
  const track = (what: string, p: Promise<unknown>): void => {
    const id = nextId++;
    pending.add(id);
    p.then(() => pending.delete(id), (e: unknown) => {
      pending.delete(id);
      if (!(e instanceof CoapError)) problems.push(`${what} rejected with ${(e as Error)?.name}: ${(e as Error)?.message}`);
    });
  };
  const start = (): void => {
    const k = r.int(6);
    try {
      if (k < 2) {
        track('observe', client.observe({ method: 'GET', path: '/api/v1/T/attributes', confirmable: r.chance(0.8), ...(r.chance(0.3) ? { block2Szx: r.int(7) } : {}) },
          () => {}, () => {}).registered);
        return;
      }
      const big = k === 2;
      track('request', client.request({
        method: r.pick(['GET', 'POST', 'FETCH'] as const), path: '/api/v1/T/telemetry',
        payload: r.bytes(big ? 200 + r.int(3000) : r.int(30)), confirmable: r.chance(0.85),
        ...(r.chance(0.3) ? { block2Szx: r.int(7) } : {}), ...(big && r.chance(0.5) ? { block1Szx: r.int(7) } : {}),
      }));
    } catch (e) {
      if (!(e instanceof CoapError)) problems.push(`starting an operation threw ${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  let mid = r.int(0x10000);
  const nextMid = (): number => (mid = (mid + 1) & 0xffff);
  const inject = (bytes: Uint8Array): void => {
    try {
      net.onReceive?.(bytes);
    } catch (e) {
      problems.push(`receive threw ${(e as Error).name}: ${(e as Error).message} on ${hex(bytes)}`);
    }
  };
  const flush = async (): Promise<void> => { for (let i = 0; i < 30; i++) await Promise.resolve(); };

  if (r.chance(0.3)) {
    // oracle: a well-formed piggybacked answer carrying only ELECTIVE options, of any length, must
    // complete a plain GET at once (RFC 7252 §5.4.1/§5.4.3: unrecognized or malformed elective
    // options are ignored)
    let res: unknown;
    const p = client.request({ method: 'GET', path: '/oracle' }).then((v) => (res = v), (e) => (res = e));
    const req = decode(net.sent[net.sent.length - 1]!);
    const options: CoapOption[] = [];
    for (const n of [OptionNumber.CONTENT_FORMAT, OptionNumber.OBSERVE, OptionNumber.ETAG, OptionNumber.SIZE2, 14 /* Max-Age */, 2050, 65000]) {
      if (r.chance(0.5)) options.push({ number: n, value: r.bytes(r.int(7)) });
    }
    inject(encode({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token, options, payload: r.bytes(r.int(20)) }));
    await flush();
    void p;
    if (!res || res instanceof Error) problems.push(`a 2.05 with elective options ${JSON.stringify(options.map((o) => [o.number, hex(o.value)]))} did not complete the GET: ${String(res)}`);
  }
  const ops = 1 + r.int(4);
  for (let i = 0; i < ops; i++) start();
  await flush();
  const steps = 10 + r.int(60);
  let injected = 0;
  for (let s = 0; s < steps; s++) {
    const a = r.int(10);
    if (a < 5 && net.sent.length) {
      const recent = net.sent[net.sent.length - 1 - r.int(Math.min(net.sent.length, 6))]!;
      let sentMsg: CoapMessage | undefined;
      try { sentMsg = decode(recent); } catch { sentMsg = undefined; }
      let bytes: Uint8Array;
      try { bytes = encode(craft(r, sentMsg, nextMid)); } catch { continue; }
      inject(bytes);
      injected++;
      if (r.chance(0.1)) { inject(bytes); injected++; } // duplicate
    } else if (a < 6 && net.sent.length) {
      inject(mutate(r, net.sent[r.int(net.sent.length)]!));
      injected++;
    } else if (a < 7) {
      inject(r.bytes(r.int(30)));
      injected++;
    } else if (a < 9) {
      await clock.advanceAsync(r.pick([0, 100, 1000, 3000, 20000, 70000]), flush);
    } else {
      start();
    }
    await flush();
  }
  // run past every timeout: exchanges retransmit for at most ~93 s, separate responses 30 s
  for (let t = 0; t < 12 && pending.size; t++) await clock.advanceAsync(60_000, flush);
  if (pending.size) problems.push(`${pending.size} requests/registrations never settled`);
  for (const b of net.sent) {
    try { decode(b); } catch { problems.push(`the client sent a malformed datagram ${hex(b)}`); break; }
  }
  // each operation sends its blocks and retransmissions; each injected datagram at most a reply
  // and a follow-up block request: anything far beyond is a storm
  const budget = (nextId + 1) * 300 + injected * 3;
  if (net.sent.length > budget) problems.push(`sent ${net.sent.length} datagrams (budget ${budget})`);
  client.close();
  await flush();
  if (clock.pending !== 0) problems.push(`${clock.pending} timers left after close()`);
  return problems.length ? problems.join('; ') : null;
}

export async function fuzzClient(o: { count: number; seed: number; deadline?: number; onlyCase?: number }): Promise<FuzzResult> {
  const start = Date.now();
  const failures: FuzzFailure[] = [];
  let ran = 0;
  const first = o.onlyCase ?? 0;
  const end = o.onlyCase !== undefined ? o.onlyCase + 1 : o.count;
  for (let i = first; i < end; i++) {
    if (o.deadline !== undefined && Date.now() > o.deadline) break;
    let f: string | null;
    try {
      f = await clientCase(o.seed, i);
    } catch (e) {
      f = `case threw ${(e as Error).name}: ${(e as Error).message}`;
    }
    ran++;
    if (f) {
      failures.push({ target: 'client', seed: o.seed, index: i, message: f });
      if (failures.length >= 10) break;
    }
  }
  return { target: 'client', seed: o.seed, requested: end - first, ran, ms: Date.now() - start, failures };
}
