// Message-layer behaviour checked with raw datagrams (coap-packet codec), so the CON/ACK/NON
// choices of the server are visible exactly as a device sees them.

import { strict as assert } from 'node:assert';
import * as dgram from 'node:dgram';
import { generate, parse } from 'coap-packet';
import type { ParsedPacket } from 'coap-packet';
import { http, sleep, startTemp } from './helpers';

type Tb = Awaited<ReturnType<typeof startTemp>>;

class Raw {
  readonly sock = dgram.createSocket('udp4');
  readonly inbox: ParsedPacket[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly port: number) {
    this.sock.on('message', (m) => {
      this.inbox.push(parse(m));
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async bind(): Promise<void> { await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r())); }
  send(p: Parameters<typeof generate>[0]): void { this.sock.send(generate(p), this.port, '127.0.0.1'); }
  async next(timeoutMs = 2000): Promise<ParsedPacket> {
    const deadline = Date.now() + timeoutMs;
    while (!this.inbox.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no datagram within ${timeoutMs} ms`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
    return this.inbox.shift()!;
  }
  ack(p: ParsedPacket): void {
    this.send({ messageId: p.messageId, code: '0.00', confirmable: false, ack: true, reset: false, options: [], token: Buffer.alloc(0) });
  }
  close(): Promise<void> { return new Promise((r) => this.sock.close(() => r())); }
}

const uri = (path: string): { name: 'Uri-Path'; value: Buffer }[] =>
  path.split('/').filter(Boolean).map((s) => ({ name: 'Uri-Path' as const, value: Buffer.from(s) }));

describe('tb-server message layer (raw UDP)', () => {
  let tb: Tb;
  let raw: Raw;
  before(async () => {
    tb = await startTemp({ piggybackTimeoutMs: 200 });
    tb.store.createDevice('w', { token: 'WIRE_TOKEN' });
    raw = new Raw(tb.coapPort);
    await raw.bind();
  });
  after(async () => {
    await raw.close();
    await tb.close();
  });

  it('fast CON request: separate CON response with a new MID and no ACK (TB default, PR #15174 unmerged)', async () => {
    raw.send({ messageId: 1000, token: Buffer.from('t1'), code: '0.02', confirmable: true, options: uri('/api/v1/WIRE_TOKEN/telemetry'), payload: Buffer.from('{"a":1}') });
    const r = await raw.next();
    assert.equal(r.code, '2.01');
    assert.equal(r.confirmable, true);
    assert.equal(r.ack, false);
    assert.notEqual(r.messageId, 1000);
    assert.deepEqual(r.token, Buffer.from('t1'));
    raw.ack(r);
    await sleep(300);
    assert.equal(raw.inbox.length, 0, 'no retransmission after ACK');
  });

  it('a duplicate CON request (same MID) is not processed twice', async () => {
    const before = tb.store.telemetry(tb.store.findDevice('w')!.id, ['dup']).dup?.length ?? 0;
    const p = { messageId: 1001, token: Buffer.from('t2'), code: '0.02', confirmable: true, options: uri('/api/v1/WIRE_TOKEN/telemetry'), payload: Buffer.from('{"dup":1}') };
    raw.send(p);
    const r = await raw.next();
    raw.ack(r);
    raw.send(p);
    const ack = await raw.next();
    assert.equal(ack.code, '0.00', 'duplicate is answered with an empty ACK');
    assert.equal(ack.ack, true);
    assert.equal(ack.messageId, 1001);
    await sleep(100);
    assert.equal((tb.store.telemetry(tb.store.findDevice('w')!.id, ['dup']).dup ?? []).length, before + 1);
    assert.equal(raw.inbox.length, 0);
  });

  it('slow CON request: empty ACK first, then a separate CON response', async () => {
    const slow = await startTemp({ piggybackTimeoutMs: 100, responseDelayMs: 300 });
    const r2 = new Raw(slow.coapPort);
    await r2.bind();
    try {
      slow.store.createDevice('s', { token: 'SLOW_WIRE' });
      r2.send({ messageId: 2000, token: Buffer.from('s1'), code: '0.02', confirmable: true, options: uri('/api/v1/SLOW_WIRE/rpc'), payload: Buffer.from('{"method":"getTime"}') });
      const ack = await r2.next();
      assert.equal(ack.ack, true);
      assert.equal(ack.code, '0.00');
      assert.equal(ack.messageId, 2000);
      const res = await r2.next();
      assert.equal(res.code, '2.05');
      assert.equal(res.confirmable, true);
      assert.notEqual(res.messageId, 2000);
      r2.ack(res);
    } finally {
      await r2.close();
      await slow.close();
    }
  });

  it('piggyback mode: ACK carrying the response', async () => {
    const pb = await startTemp({ conResponses: 'piggyback' });
    const r2 = new Raw(pb.coapPort);
    await r2.bind();
    try {
      pb.store.createDevice('p', { token: 'PB_WIRE' });
      r2.send({ messageId: 3000, token: Buffer.from('p1'), code: '0.02', confirmable: true, options: uri('/api/v1/PB_WIRE/telemetry'), payload: Buffer.from('{"a":1}') });
      const res = await r2.next();
      assert.equal(res.ack, true);
      assert.equal(res.code, '2.01');
      assert.equal(res.messageId, 3000);
    } finally {
      await r2.close();
      await pb.close();
    }
  });

  it('NON request: NON response', async () => {
    raw.send({ messageId: 1002, token: Buffer.from('n1'), code: '0.02', confirmable: false, options: uri('/api/v1/WIRE_TOKEN/telemetry'), payload: Buffer.from('{"n":1}') });
    const r = await raw.next();
    assert.equal(r.code, '2.01');
    assert.equal(r.confirmable, false);
    assert.equal(r.ack, false);
  });

  it('a single Uri-Path option containing slashes is re-split (modem quirk)', async () => {
    raw.send({ messageId: 1003, token: Buffer.from('q1'), code: '0.02', confirmable: false,
      options: [{ name: 'Uri-Path', value: Buffer.from('api/v1/WIRE_TOKEN/telemetry') }], payload: Buffer.from('{"q":1}') });
    assert.equal((await raw.next()).code, '2.01');
  });

  it('Block1 with a new token per block: 2.31 Continue, then the whole body is processed once; out of order is 4.08', async () => {
    const body = Buffer.from(JSON.stringify({ blk: 'y'.repeat(100) }));
    const opts = (num: number, more: boolean): { name: 'Uri-Path' | 'Block1'; value: Buffer }[] =>
      [...uri('/api/v1/WIRE_TOKEN/telemetry'), { name: 'Block1', value: Buffer.from([(num << 4) | (more ? 8 : 0) | 2]) }]; // SZX 2 = 64 bytes
    raw.send({ messageId: 1100, token: Buffer.from('b0'), code: '0.02', confirmable: true, options: opts(0, true), payload: body.subarray(0, 64) });
    let r = await raw.next();
    assert.equal(r.code, '2.31');
    assert.equal(r.ack, true);
    raw.send({ messageId: 1101, token: Buffer.from('b1'), code: '0.02', confirmable: true, options: opts(1, false), payload: body.subarray(64) });
    r = await raw.next();
    assert.equal(r.code, '2.01');
    assert.deepEqual(r.token, Buffer.from('b1'));
    raw.ack(r);
    assert.equal(tb.store.latestTelemetry(tb.store.findDevice('w')!.id).blk.value, 'y'.repeat(100));
    raw.send({ messageId: 1102, token: Buffer.from('b2'), code: '0.02', confirmable: true, options: opts(3, false), payload: body.subarray(0, 10) });
    assert.equal((await raw.next()).code, '4.08');
  });

  it('a duplicate of a piggybacked request gets the same ACK again', async () => {
    const p = { messageId: 1200, token: Buffer.from('d1'), code: '0.02', confirmable: true, options: uri('/api/v1/WIRE_TOKEN/telemetry'), payload: Buffer.from('{"x":1') };
    raw.send(p); // invalid JSON -> 4.00 (TB timing: separate CON) ...
    const first = await raw.next();
    raw.ack(first);
    const blk = { messageId: 1201, token: Buffer.from('d2'), code: '0.02', confirmable: true, options: [...uri('/api/v1/WIRE_TOKEN/telemetry'), { name: 'Block1' as const, value: Buffer.from([0x0a]) }], payload: Buffer.alloc(64, 32) };
    raw.send(blk);
    const a1 = await raw.next();
    raw.send(blk);
    const a2 = await raw.next();
    assert.equal(a1.code, '2.31');
    assert.deepEqual(a2, a1);
  });

  it('CON observe: piggybacked first response with Observe 0, CON notifications; RST cancels', async () => {
    raw.send({ messageId: 1004, token: Buffer.from('o1'), code: '0.01', confirmable: true,
      options: [{ name: 'Observe', value: Buffer.alloc(0) }, ...uri('/api/v1/WIRE_TOKEN/attributes')] });
    const first = await raw.next();
    assert.equal(first.ack, true);
    assert.equal(first.messageId, 1004);
    assert.equal(first.code, '2.05');
    const obs = first.options.find((o) => o.name === 'Observe');
    assert.ok(obs && obs.value.every((b) => b === 0), 'Observe 0');
    await http(tb, 'POST', '/api/devices/w/attributes/shared', { x: 1 });
    const n = await raw.next();
    assert.equal(n.confirmable, true);
    assert.equal(n.code, '2.05');
    assert.deepEqual(JSON.parse(n.payload.toString()), { x: 1 });
    // reactive cancel: RST the notification
    raw.send({ messageId: n.messageId, code: '0.00', confirmable: false, ack: false, reset: true, options: [], token: Buffer.alloc(0) });
    await sleep(100);
    await http(tb, 'POST', '/api/devices/w/attributes/shared', { x: 2 });
    await sleep(300);
    assert.equal(raw.inbox.length, 0, 'no notification after RST');
  });

  it('NON observe: NON notifications', async () => {
    raw.send({ messageId: 1005, token: Buffer.from('o2'), code: '0.01', confirmable: false,
      options: [{ name: 'Observe', value: Buffer.alloc(0) }, ...uri('/api/v1/WIRE_TOKEN/rpc')] });
    const first = await raw.next();
    assert.equal(first.code, '2.03');
    assert.equal(first.confirmable, false);
    assert.equal(first.payload.length, 0);
    const call = http(tb, 'POST', '/api/devices/w/rpc', { method: 'm', timeoutMs: 2000 });
    const n = await raw.next();
    assert.equal(n.confirmable, false);
    assert.equal(n.code, '2.05');
    const { id } = JSON.parse(n.payload.toString()) as { id: number };
    raw.send({ messageId: 1006, token: Buffer.from('r1'), code: '0.02', confirmable: false, options: uri(`/api/v1/WIRE_TOKEN/rpc/${id}`), payload: Buffer.from('{"ok":1}') });
    assert.equal((await raw.next()).code, '2.01');
    assert.equal((await call).status, 200);
  });
});
