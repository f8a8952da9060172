import { strict as assert } from 'node:assert';
import { CoapClient, type CoapClientOptions } from '../../src/coap/client';
import { buildUriOptions, decodeBlock, decodeUint, emptyMessage, encodeBlock, encodeUint, getOption, getOptions } from '../../src/coap/codec';
import { CoapClosedError, CoapError, CoapResetError, CoapTimeoutError, CoapTooLargeError } from '../../src/coap/errors';
import { Code, CoapType, NBIOT_TRANSMISSION, OptionNumber, type CoapMessage, type CoapResponse } from '../../src/coap/types';
import { decodeUtf8, encodeUtf8 } from '../../src/coap/utf8';
import type { Random } from '../../src/platform/types';
import { ManualClock } from '../../tools/sim/clock';
import { SeededRandom } from '../../tools/sim/random';
import { FakeDatagram, settle } from './fake-datagram';

const E = new Uint8Array(0);

/** Random whose next() is fixed (jitter), fill() seeded (tokens). */
function fixedJitter(value: number, seed = 1): Random {
  const r = new SeededRandom(seed);
  return { fill: (b) => r.fill(b), next: () => value };
}

function setup(options: Partial<CoapClientOptions> = {}, mtu?: number) {
  const clock = new ManualClock();
  const net = new FakeDatagram(clock, mtu);
  const client = new CoapClient(net, { clock, random: fixedJitter(0), ...options });
  return { clock, net, client };
}

function uriPath(m: CoapMessage): string {
  return getOptions(m, OptionNumber.URI_PATH).map((o) => decodeUtf8(o.value)).join('/');
}

function observeOf(m: CoapMessage): number | undefined {
  const o = getOption(m, OptionNumber.OBSERVE);
  return o ? decodeUint(o.value) : undefined;
}

function notification(token: Uint8Array, mid: number, seq: number, payload: string, type = CoapType.CON, code: number = Code.CONTENT): CoapMessage {
  return { type, code, messageId: mid, token, options: [{ number: OptionNumber.OBSERVE, value: encodeUint(seq) }], payload: encodeUtf8(payload) };
}

/** Records a rejection without letting it go unhandled; returns a getter (calls do not narrow). */
function failure(p: Promise<unknown>): () => unknown {
  const state: { error?: unknown } = {};
  p.catch((e: unknown) => (state.error = e));
  return () => state.error;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected a rejection');
}

describe('coap client', () => {
  describe('retransmission (RFC 7252 §4.2)', () => {
    it('doubles the timeout from ACK_TIMEOUT and rejects at 62 s with jitter 0', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: '/time' });
      const error = failure(p);
      assert.equal(net.sent.length, 1);
      await clock.advanceAsync(61_999, settle);
      assert.deepEqual(net.sent.map((s) => s.at), [0, 2000, 6000, 14000, 30000]);
      assert.ok(net.sent.every((s) => s.msg.messageId === net.sent[0]!.msg.messageId), 'same MID on retransmission');
      assert.equal(error(), undefined);
      await clock.advanceAsync(1, settle);
      assert.ok(error() instanceof CoapTimeoutError);
      assert.equal((error() as CoapTimeoutError).code, 'timeout');
      assert.equal(clock.now(), 62_000);
      assert.equal(client.stats.retransmissions, 4);
      assert.equal(client.stats.timeouts, 1);
      assert.equal(clock.pending, 0);
    });

    it('draws the first timeout in [ackTimeout, ackTimeout * ackRandomFactor]', async () => {
      for (const [r, first] of [
        [0.5, 2500],
        [0.999, 2999],
      ] as const) {
        const { clock, net, client } = setup({ random: fixedJitter(r) });
        client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
        clock.advance(first - 1);
        assert.equal(net.sent.length, 1);
        clock.advance(1);
        assert.equal(net.sent.length, 2, `retransmitted at ${first}`);
        clock.advance(2 * first - 1);
        assert.equal(net.sent.length, 2);
        clock.advance(1);
        assert.equal(net.sent.length, 3);
        client.close();
        assert.equal(clock.pending, 0);
      }
      // Seeded jitter stays in range.
      const rnd = new SeededRandom(7);
      for (let i = 0; i < 20; i++) {
        const { clock, net, client } = setup({ random: rnd });
        client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
        const due = clock.nextDue()!;
        assert.ok(due >= 2000 && due <= 3000, `first timeout ${due}`);
        clock.advance(due);
        assert.equal(net.sent.length, 2);
        client.close();
      }
    });

    it('NB-IoT profile: first timeout 15 s, 2 retransmissions', async () => {
      const { clock, net, client } = setup({ transmission: NBIOT_TRANSMISSION });
      const p = client.request({ method: 'POST', path: '/api/v1/t/telemetry', payload: encodeUtf8('{}') });
      const error = failure(p);
      await clock.advanceAsync(104_999, settle);
      assert.deepEqual(net.sent.map((s) => s.at), [0, 15000, 45000]);
      assert.equal(error(), undefined);
      await clock.advanceAsync(1, settle);
      assert.ok(error() instanceof CoapTimeoutError);
      assert.equal(clock.pending, 0);
    });

    it('per-request transmission override', async () => {
      const { clock, net, client } = setup();
      client.request({ method: 'GET', path: 'x', transmission: { ackTimeout: 500, maxRetransmit: 1 } }).catch(() => undefined);
      await clock.advanceAsync(10_000, settle);
      assert.deepEqual(net.sent.map((s) => s.at), [0, 500]);
      assert.equal(clock.pending, 0);
    });
  });

  describe('request/response matching', () => {
    it('resolves a piggybacked response and stops retransmitting', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: '/api/v1/TOKEN/attributes', query: ['sharedKeys=a'] });
      const req = net.last();
      assert.equal(req.type, CoapType.CON);
      assert.equal(req.code, Code.GET);
      assert.equal(req.token.length, 4);
      assert.equal(uriPath(req), 'api/v1/TOKEN/attributes');
      assert.equal(decodeUtf8(getOption(req, OptionNumber.URI_QUERY)!.value), 'sharedKeys=a');
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token, options: [{ number: OptionNumber.CONTENT_FORMAT, value: encodeUint(50) }], payload: encodeUtf8('{"a":1}') });
      const res = await p;
      assert.equal(res.code, Code.CONTENT);
      assert.equal(res.type, CoapType.ACK);
      assert.equal(res.contentFormat, 50);
      assert.equal(decodeUtf8(res.payload), '{"a":1}');
      assert.equal(clock.pending, 0);
      clock.advance(100_000);
      assert.equal(net.sent.length, 1);
    });

    it('uses consecutive message IDs and fresh tokens; token length configurable', async () => {
      const { net, client } = setup({ tokenLength: 8 });
      for (let i = 0; i < 3; i++) client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
      const [a, b, c] = net.sent.map((s) => s.msg);
      assert.equal(b!.messageId, (a!.messageId + 1) & 0xffff);
      assert.equal(c!.messageId, (a!.messageId + 2) & 0xffff);
      assert.equal(a!.token.length, 8);
      assert.notDeepEqual(a!.token, b!.token);
      client.close();
      const z = setup({ tokenLength: 0 });
      z.client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
      assert.equal(z.net.last().token.length, 0);
      z.client.close();
    });

    it('wraps the message ID at 65536', () => {
      const { net, client } = setup({ random: fixedJitter(65535 / 65536) });
      client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
      client.request({ method: 'GET', path: 'x' }).catch(() => undefined);
      assert.deepEqual(net.sent.map((s) => s.msg.messageId), [65535, 0]);
      client.close();
    });

    it('empty ACK then separate CON response: ACKs it with the response MID', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'POST', path: 'slow', payload: encodeUtf8('x') });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: 0, messageId: req.messageId, token: E, options: [], payload: E });
      await clock.advanceAsync(20_000, settle); // no retransmission after the empty ACK
      assert.equal(net.sent.length, 1);
      net.inject({ type: CoapType.CON, code: Code.CHANGED, messageId: 0x4242, token: req.token, options: [], payload: encodeUtf8('done') });
      const res = await p;
      assert.equal(res.code, Code.CHANGED);
      assert.equal(res.type, CoapType.CON);
      assert.deepEqual(net.last(), { type: CoapType.ACK, code: 0, messageId: 0x4242, token: E, options: [], payload: E });
      assert.equal(clock.pending, 0);
    });

    it('empty ACK then no response: rejects after responseTimeout', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'slow' });
      const error = failure(p);
      await clock.advanceAsync(1000, settle);
      net.inject({ type: CoapType.ACK, code: 0, messageId: net.last().messageId, token: E, options: [], payload: E });
      await clock.advanceAsync(29_999, settle);
      assert.equal(error(), undefined);
      await clock.advanceAsync(1, settle);
      assert.ok(error() instanceof CoapTimeoutError);
      assert.equal(clock.now(), 31_000);
      assert.equal(clock.pending, 0);
    });

    it('separate CON response whose ACK was lost (no empty ACK seen) still resolves', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      const req = net.last();
      net.inject({ type: CoapType.CON, code: Code.CONTENT, messageId: 7, token: req.token, options: [], payload: E });
      await p;
      assert.equal(net.last().type, CoapType.ACK);
      assert.equal(clock.pending, 0);
    });

    it('separate NON response resolves without an ACK', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: 0, messageId: req.messageId, token: E, options: [], payload: E });
      net.inject({ type: CoapType.NON, code: Code.CONTENT, messageId: 99, token: req.token, options: [], payload: encodeUtf8('v') });
      const res = await p;
      assert.equal(res.type, CoapType.NON);
      assert.equal(net.sent.length, 1);
      assert.equal(clock.pending, 0);
    });

    it('duplicate CON separate response gets the same ACK twice and is delivered once', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      const req = net.last();
      const resp: CoapMessage = { type: CoapType.CON, code: Code.CONTENT, messageId: 0x1111, token: req.token, options: [], payload: encodeUtf8('once') };
      net.inject(resp);
      net.inject(resp);
      await p;
      assert.equal(net.sent.length, 3);
      assert.deepEqual(net.sent[1]!.bytes, emptyMessage(CoapType.ACK, 0x1111));
      assert.deepEqual(net.sent[2]!.bytes, emptyMessage(CoapType.ACK, 0x1111));
      assert.equal(client.stats.duplicatesReceived, 1);
      assert.equal(client.stats.resetsSent, 0);
      // After EXCHANGE_LIFETIME the MID is forgotten: the (now unknown-token) message is reset.
      clock.advance(247_000);
      net.inject(resp);
      assert.deepEqual(net.last().type, CoapType.RST);
      assert.equal(clock.pending, 0);
    });

    it('RST to our CON rejects with CoapResetError', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      net.injectRaw(emptyMessage(CoapType.RST, net.last().messageId));
      const e = await rejection(p);
      assert.ok(e instanceof CoapResetError);
      assert.equal((e as CoapResetError).code, 'reset');
      assert.equal(client.stats.resets, 1);
      assert.equal(clock.pending, 0);
    });

    it('RST to our NON request rejects it too', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x', confirmable: false });
      net.injectRaw(emptyMessage(CoapType.ACK, net.last().messageId)); // nonsense for NON: ignored
      net.injectRaw(emptyMessage(CoapType.RST, net.last().messageId));
      assert.ok((await rejection(p)) instanceof CoapResetError);
      assert.equal(clock.pending, 0);
    });

    it('unknown-token CON gets RST, unknown-token NON is ignored, a ping gets RST', () => {
      const { net, client } = setup();
      net.inject({ type: CoapType.CON, code: Code.CONTENT, messageId: 0x2222, token: Uint8Array.of(9, 9), options: [], payload: E });
      assert.deepEqual(net.last(), { type: CoapType.RST, code: 0, messageId: 0x2222, token: E, options: [], payload: E });
      net.inject({ type: CoapType.NON, code: Code.CONTENT, messageId: 0x2223, token: Uint8Array.of(9, 9), options: [], payload: E });
      assert.equal(net.sent.length, 1);
      net.injectRaw(emptyMessage(CoapType.CON, 0x2224));
      assert.deepEqual(net.last().type, CoapType.RST);
      assert.equal(net.last().messageId, 0x2224);
      assert.equal(client.stats.resetsSent, 2);
    });

    it('ignores a piggybacked ACK with a foreign token and late/duplicate ACKs', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      const req = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: Uint8Array.of(1), options: [], payload: E });
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token, options: [], payload: E });
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token, options: [], payload: E });
      assert.equal((await p).code, Code.CONTENT);
      assert.equal(clock.pending, 0);
    });

    it('error codes resolve normally', async () => {
      const { net, client } = setup();
      net.responder = () => ({ code: Code.UNAUTHORIZED });
      assert.equal((await client.request({ method: 'POST', path: 'x' })).code, Code.UNAUTHORIZED);
      net.responder = () => ({ code: Code.SERVICE_UNAVAILABLE });
      assert.equal((await client.request({ method: 'GET', path: 'x' })).code, Code.SERVICE_UNAVAILABLE);
    });

    it('NON request: sent once, NON response resolves; silence rejects at responseTimeout', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'POST', path: 't', confirmable: false, payload: encodeUtf8('1') });
      const req = net.last();
      assert.equal(req.type, CoapType.NON);
      net.inject({ type: CoapType.NON, code: Code.CHANGED, messageId: 5, token: req.token, options: [], payload: E });
      assert.equal((await p).code, Code.CHANGED);
      const q = client.request({ method: 'POST', path: 't', confirmable: false });
      const error = failure(q);
      await clock.advanceAsync(29_999, settle);
      assert.equal(error(), undefined);
      assert.equal(net.sent.length, 2);
      await clock.advanceAsync(1, settle);
      assert.ok(error() instanceof CoapTimeoutError);
      assert.equal(clock.pending, 0);
    });

    it('malformed datagrams are counted, never thrown; a malformed CON is reset', () => {
      const { net, client } = setup();
      net.injectRaw(Uint8Array.of(1, 2));
      net.injectRaw(Uint8Array.of(0x5f, 0, 0, 0)); // NON, token length 15
      net.injectRaw(Uint8Array.of(0x40, 0x45, 0x12, 0x34, 0xff));
      assert.equal(client.stats.malformed, 3);
      assert.equal(net.sent.length, 1);
      assert.equal(net.last().type, CoapType.RST);
      assert.equal(net.last().messageId, 0x1234);
      // A decodable message with a bad option value (4-byte Observe) is counted too.
      net.inject({ type: CoapType.NON, code: Code.CONTENT, messageId: 1, token: E, options: [{ number: OptionNumber.BLOCK2, value: Uint8Array.of(1, 2, 3, 4) }], payload: E });
      assert.ok(client.stats.bytesReceived > 0);
    });

    it('close() rejects all pending with CoapClosedError and clears timers', async () => {
      const { clock, client } = setup();
      const a = client.request({ method: 'GET', path: 'a' });
      const b = client.request({ method: 'GET', path: 'b', confirmable: false });
      assert.equal(clock.pending, 2);
      client.close();
      assert.ok((await rejection(a)) instanceof CoapClosedError);
      assert.ok((await rejection(b)) instanceof CoapClosedError);
      assert.equal(clock.pending, 0);
      assert.ok((await rejection(client.request({ method: 'GET', path: 'c' }))) instanceof CoapClosedError);
    });

    it('setTransport: the pending exchange retransmits and completes on the new socket', async () => {
      const { clock, net, client } = setup();
      const p = client.request({ method: 'GET', path: 'x' });
      const req = net.last();
      const net2 = new FakeDatagram(clock);
      client.setTransport(net2);
      assert.equal(net.onReceive, undefined);
      clock.advance(2000);
      assert.equal(net2.sent.length, 1);
      assert.equal(net2.last().messageId, req.messageId);
      net2.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: req.messageId, token: req.token, options: [], payload: E });
      assert.equal((await p).code, Code.CONTENT);
      assert.equal(client.stats.bytesSent, req.options.length > 0 ? net.sent[0]!.bytes.length * 2 : 0);
      assert.equal(clock.pending, 0);
    });
  });

  describe('Observe (RFC 7641)', () => {
    async function registered(opts: Partial<CoapClientOptions> = {}) {
      const s = setup(opts);
      const notes: CoapResponse[] = [];
      const ends: (Error | undefined)[] = [];
      const obs = s.client.observe({ method: 'GET', path: '/api/v1/T/attributes' }, (r) => notes.push(r), (e) => ends.push(e));
      const reg = s.net.last();
      assert.equal(observeOf(reg), 0);
      assert.deepEqual(getOption(reg, OptionNumber.OBSERVE)!.value, E, 'Observe=0 is the empty uint');
      s.net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: reg.messageId, token: reg.token, options: [{ number: OptionNumber.OBSERVE, value: encodeUint(10) }], payload: encodeUtf8('{"snap":1}') });
      const r = await obs.registered;
      return { ...s, notes, ends, obs, reg, r };
    }

    it('registration response resolves registered and is delivered when it has a payload', async () => {
      const { notes, obs, r, clock, reg } = await registered();
      assert.equal(r.observe, 10);
      assert.equal(notes.length, 1);
      assert.equal(decodeUtf8(notes[0]!.payload), '{"snap":1}');
      assert.ok(obs.active);
      assert.deepEqual(obs.token, reg.token);
      assert.equal(clock.pending, 0);
    });

    it('2.03 Valid with Observe and no payload registers without a notification', async () => {
      const { client, net } = setup();
      const notes: CoapResponse[] = [];
      const obs = client.observe({ method: 'GET', path: 'rpc' }, (r) => notes.push(r));
      const reg = net.last();
      net.inject({ type: CoapType.ACK, code: Code.VALID, messageId: reg.messageId, token: reg.token, options: [{ number: OptionNumber.OBSERVE, value: E }], payload: E });
      assert.equal((await obs.registered).code, Code.VALID);
      assert.equal(notes.length, 0);
      assert.ok(obs.active);
      net.inject(notification(reg.token, 500, 1, '{"method":"x"}', CoapType.NON));
      assert.equal(notes.length, 1);
      assert.equal(net.sent.length, 1, 'NON notification not ACKed');
    });

    it('server declining (no Observe in the response) ends the observation', async () => {
      const { client, net } = setup();
      const ends: (Error | undefined)[] = [];
      const obs = client.observe({ method: 'GET', path: 'x' }, () => undefined, (e) => ends.push(e));
      const reg = net.last();
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: reg.messageId, token: reg.token, options: [], payload: encodeUtf8('v') });
      assert.equal((await obs.registered).code, Code.CONTENT);
      assert.equal(ends.length, 1);
      assert.equal((ends[0] as CoapError).code, 'observe-declined');
      assert.equal(obs.active, false);
    });

    it('registration failure rejects registered and calls onEnd', async () => {
      const { client, clock } = setup();
      const ends: (Error | undefined)[] = [];
      const obs = client.observe({ method: 'GET', path: 'x' }, () => undefined, (e) => ends.push(e));
      await clock.advanceAsync(62_000, settle);
      assert.ok((await rejection(obs.registered)) instanceof CoapTimeoutError);
      assert.ok(ends[0] instanceof CoapTimeoutError);
      assert.equal(obs.active, false);
      assert.equal(clock.pending, 0);
    });

    it('CON notifications are ACKed; stale ones dropped but still ACKed; duplicates delivered once', async () => {
      const { notes, net, reg, client } = await registered();
      net.inject(notification(reg.token, 100, 11, 'a'));
      assert.deepEqual(net.last(), { type: CoapType.ACK, code: 0, messageId: 100, token: E, options: [], payload: E });
      net.inject(notification(reg.token, 100, 11, 'a')); // duplicate (same MID)
      net.inject(notification(reg.token, 101, 5, 'stale')); // 5 after 11: older
      assert.deepEqual(net.last().messageId, 101);
      assert.equal(net.last().type, CoapType.ACK);
      net.inject(notification(reg.token, 102, 12, 'b'));
      assert.deepEqual(notes.map((n) => decodeUtf8(n.payload)), ['{"snap":1}', 'a', 'b']);
      assert.equal(client.stats.duplicatesReceived, 1);
      assert.equal(client.stats.staleNotifications, 1);
      assert.equal(notes[2]!.observe, 12);
    });

    it('24-bit wrap: 0xFFFFFF then 0 accepted; 128 s rule accepts an old number', async () => {
      const { notes, net, reg, clock } = await registered();
      net.inject(notification(reg.token, 1, 0xffffff, 'too far ahead')); // 10 -> 0xFFFFFF is backwards mod 2^24
      net.inject(notification(reg.token, 8, 0x800000, 'half'));
      net.inject(notification(reg.token, 9, 0xffffff, 'max'));
      net.inject(notification(reg.token, 2, 0, 'wrapped'));
      net.inject(notification(reg.token, 3, 0xfffffe, 'stale'));
      assert.deepEqual(notes.slice(1).map((n) => decodeUtf8(n.payload)), ['half', 'max', 'wrapped']);
      net.inject(notification(reg.token, 4, 10, 'ten'));
      net.inject(notification(reg.token, 5, 5, 'five'));
      assert.equal(decodeUtf8(notes[notes.length - 1]!.payload), 'ten');
      clock.advance(128_000);
      net.inject(notification(reg.token, 6, 5, 'five-at-128s'));
      assert.equal(decodeUtf8(notes[notes.length - 1]!.payload), 'ten', 'exactly 128 s is not more than 128 s');
      clock.advance(1);
      net.inject(notification(reg.token, 7, 4, 'four-after-128s'));
      assert.equal(decodeUtf8(notes[notes.length - 1]!.payload), 'four-after-128s');
    });

    it('an error or 2.02 notification ends the observation; later ones get RST', async () => {
      const { ends, net, reg, obs } = await registered();
      net.inject(notification(reg.token, 50, 11, '', CoapType.CON, Code.NOT_FOUND));
      assert.equal(net.last().type, CoapType.ACK);
      assert.equal(ends.length, 1);
      assert.equal((ends[0] as CoapError).response!.code, Code.NOT_FOUND);
      assert.equal(obs.active, false);
      net.inject(notification(reg.token, 51, 12, 'late'));
      assert.equal(net.last().type, CoapType.RST);
      const b = await registered();
      b.net.inject(notification(b.reg.token, 60, 11, '', CoapType.NON, Code.DELETED));
      assert.equal(b.ends.length, 1);
    });

    it('cancel sends GET Observe=1 with the same token, resolves on an empty ACK, stops delivery', async () => {
      const { notes, ends, net, reg, obs, clock } = await registered();
      const c = obs.cancel();
      assert.equal(obs.active, false);
      const dereg = net.last();
      assert.equal(dereg.code, Code.GET);
      assert.equal(observeOf(dereg), 1);
      assert.deepEqual(dereg.token, reg.token);
      assert.equal(uriPath(dereg), 'api/v1/T/attributes');
      net.inject({ type: CoapType.ACK, code: 0, messageId: dereg.messageId, token: E, options: [], payload: E });
      await c;
      assert.deepEqual(ends, [undefined]);
      net.inject(notification(reg.token, 70, 20, 'after cancel'));
      assert.equal(net.last().type, CoapType.RST);
      assert.equal(notes.length, 1);
      assert.equal(clock.pending, 0);
    });

    it('cancel resolves even when the deregistration times out', async () => {
      const { obs, clock } = await registered();
      const c = obs.cancel();
      await clock.advanceAsync(62_000, settle);
      await c;
      assert.equal(clock.pending, 0);
    });

    it('reregister uses a new token; the old token then gets RST', async () => {
      const { notes, net, reg, obs, clock } = await registered();
      const p = obs.reregister();
      const reg2 = net.last();
      assert.notDeepEqual(reg2.token, reg.token);
      assert.equal(observeOf(reg2), 0);
      net.inject({ type: CoapType.ACK, code: Code.CONTENT, messageId: reg2.messageId, token: reg2.token, options: [{ number: OptionNumber.OBSERVE, value: encodeUint(3) }], payload: E });
      assert.equal((await p).observe, 3);
      assert.equal(obs.registered, p);
      assert.deepEqual(obs.token, reg2.token);
      net.inject(notification(reg.token, 80, 99, 'old relation'));
      assert.equal(net.last().type, CoapType.RST);
      net.inject(notification(reg2.token, 81, 4, 'new relation')); // 4 > 3 in the new relation
      assert.equal(net.last().type, CoapType.ACK);
      assert.deepEqual(notes.slice(1).map((n) => decodeUtf8(n.payload)), ['new relation']);
      assert.equal(clock.pending, 0);
    });

    it('maxObservations bounds concurrent observations', () => {
      const { client } = setup({ maxObservations: 1 });
      client.observe({ method: 'GET', path: 'a' }, () => undefined);
      assert.throws(() => client.observe({ method: 'GET', path: 'b' }, () => undefined), (e: unknown) => e instanceof CoapError && e.code === 'observe-limit');
      client.close();
    });

    it('a Block2 notification is completed with GETs (no Observe) and delivered whole', async () => {
      const { notes, net, reg, clock } = await registered();
      const body = Uint8Array.from({ length: 40 }, (_, i) => i);
      net.responder = (req) => {
        assert.equal(observeOf(req), undefined);
        const b = decodeBlock(getOption(req, OptionNumber.BLOCK2)!.value);
        const start = b.num * 16;
        const more = start + 16 < body.length;
        return { options: [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: b.num, more, szx: 0 }) }], payload: body.subarray(start, Math.min(start + 16, body.length)) };
      };
      net.inject({ ...notification(reg.token, 90, 11, ''), payload: body.subarray(0, 16), options: [{ number: OptionNumber.OBSERVE, value: encodeUint(11) }, { number: OptionNumber.BLOCK2, value: encodeBlock({ num: 0, more: true, szx: 0 }) }] });
      for (let i = 0; i < 5; i++) await settle();
      assert.equal(notes.length, 2);
      assert.deepEqual(notes[1]!.payload, body);
      assert.equal(notes[1]!.observe, 11);
      assert.equal(clock.pending, 0);
    });

    it('close() ends observations with CoapClosedError', async () => {
      const { ends, client, clock } = await registered();
      client.close();
      assert.ok(ends[0] instanceof CoapClosedError);
      assert.equal(clock.pending, 0);
    });
  });

  describe('block-wise (RFC 7959)', () => {
    function block2Server(net: FakeDatagram, body: Uint8Array, serverSzx: number, seen: { num: number; szx: number }[] = []) {
      net.responder = (req) => {
        const opt = getOption(req, OptionNumber.BLOCK2);
        const asked = opt ? decodeBlock(opt.value) : { num: 0, more: false, szx: 6 };
        seen.push({ num: asked.num, szx: asked.szx });
        const szx = Math.min(asked.szx, serverSzx);
        const size = 16 << szx;
        const start = asked.num * (16 << asked.szx);
        const num = start / size;
        const more = start + size < body.length;
        return { options: [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num, more, szx }) }], payload: body.subarray(start, Math.min(start + size, body.length)) };
      };
      return seen;
    }

    it('reassembles a 3-block Block2 response', async () => {
      const { net, client, clock } = setup();
      const body = Uint8Array.from({ length: 600 }, (_, i) => (i * 7) & 0xff);
      const seen = block2Server(net, body, 4);
      const res = await client.request({ method: 'GET', path: 'fw', accept: 42 });
      assert.deepEqual(res.payload, body);
      assert.deepEqual(seen, [
        { num: 0, szx: 6 },
        { num: 1, szx: 4 },
        { num: 2, szx: 4 },
      ]);
      assert.equal(client.stats.requests, 3);
      assert.ok(net.sent.every((s) => decodeUint(getOption(s.msg, OptionNumber.ACCEPT)!.value) === 42));
      assert.equal(clock.pending, 0);
    });

    it('early Block2 negotiation with block2Szx', async () => {
      const { net, client } = setup();
      const body = Uint8Array.from({ length: 100 }, (_, i) => i);
      const seen = block2Server(net, body, 6);
      const res = await client.request({ method: 'GET', path: 'x', block2Szx: 1 });
      assert.deepEqual(res.payload, body);
      assert.deepEqual(seen.map((s) => s.szx), [1, 1, 1, 1]);
    });

    it('bounds the reassembled body (maxBodySize)', async () => {
      const { net, client, clock } = setup({ maxBodySize: 512 });
      block2Server(net, new Uint8Array(600), 4);
      const e = await rejection(client.request({ method: 'GET', path: 'big' }));
      assert.ok(e instanceof CoapError && e.code === 'body-too-large' && e.message === 'body too large');
      assert.equal(clock.pending, 0);
    });

    it('sends Block1 blocks waiting for 2.31 Continue, Size1 on the first', async () => {
      const { net, client, clock } = setup();
      const body = Uint8Array.from({ length: 600 }, (_, i) => (i * 13) & 0xff);
      const received: Uint8Array[] = [];
      const blocks: { num: number; more: boolean; szx: number; size1?: number }[] = [];
      net.responder = (req) => {
        const b = decodeBlock(getOption(req, OptionNumber.BLOCK1)!.value);
        const s1 = getOption(req, OptionNumber.SIZE1);
        blocks.push({ ...b, ...(s1 ? { size1: decodeUint(s1.value) } : {}) });
        received.push(req.payload);
        return { code: b.more ? Code.CONTINUE : Code.CHANGED, options: [{ number: OptionNumber.BLOCK1, value: encodeBlock(b) }] };
      };
      const res = await client.request({ method: 'POST', path: '/api/v1/T/telemetry', payload: body, block1Szx: 4, contentFormat: 50 });
      assert.equal(res.code, Code.CHANGED);
      assert.deepEqual(blocks, [
        { num: 0, more: true, szx: 4, size1: 600 },
        { num: 1, more: true, szx: 4 },
        { num: 2, more: false, szx: 4 },
      ]);
      assert.deepEqual(Buffer.concat(received), Buffer.from(body));
      assert.equal(clock.pending, 0);
    });

    it('Block1 size defaults from the transport MTU', async () => {
      const { net, client } = setup({}, 300); // 300 - 64 = 236 -> 128-byte blocks
      const sizes: number[] = [];
      net.responder = (req) => {
        const o = getOption(req, OptionNumber.BLOCK1);
        sizes.push(req.payload.length);
        const b = o ? decodeBlock(o.value) : undefined;
        return { code: b?.more ? Code.CONTINUE : Code.CHANGED, options: o ? [o] : [] };
      };
      await client.request({ method: 'PUT', path: 'x', payload: new Uint8Array(300) });
      assert.deepEqual(sizes, [128, 128, 44]);
    });

    it('4.13 with Size1 and a smaller Block1: retries once with smaller blocks', async () => {
      const { net, client } = setup();
      const body = new Uint8Array(1500).fill(3);
      const seen: { num: number; szx: number; len: number }[] = [];
      net.responder = (req) => {
        const b = decodeBlock(getOption(req, OptionNumber.BLOCK1)!.value);
        seen.push({ num: b.num, szx: b.szx, len: req.payload.length });
        if (b.szx > 5) return { code: Code.REQUEST_ENTITY_TOO_LARGE, options: [{ number: OptionNumber.BLOCK1, value: encodeBlock({ num: 0, more: false, szx: 5 }) }, { number: OptionNumber.SIZE1, value: encodeUint(4096) }] };
        return { code: b.more ? Code.CONTINUE : Code.CREATED, options: [{ number: OptionNumber.BLOCK1, value: encodeBlock(b) }] };
      };
      const res = await client.request({ method: 'POST', path: 'x', payload: body, block1Szx: 6 });
      assert.equal(res.code, Code.CREATED);
      assert.deepEqual(seen, [
        { num: 0, szx: 6, len: 1024 },
        { num: 0, szx: 5, len: 512 },
        { num: 1, szx: 5, len: 512 },
        { num: 2, szx: 5, len: 476 },
      ]);
      // A second 4.13 is returned as is.
      net.responder = () => ({ code: Code.REQUEST_ENTITY_TOO_LARGE });
      assert.equal((await client.request({ method: 'POST', path: 'x', payload: body, block1Szx: 6 })).code, Code.REQUEST_ENTITY_TOO_LARGE);
    });

    it('a datagram the transport refuses (larger than one DTLS record) fails the request at once: CoapTooLargeError, no retransmission (issue 14 item 6)', async () => {
      const { net, client, clock } = setup({}, 995);
      net.refuseOver = 995;
      net.responder = (req) => ({ code: Code.CONTINUE, options: [{ number: OptionNumber.BLOCK1, value: getOption(req, OptionNumber.BLOCK1)!.value }] });
      const p = client.request({ method: 'POST', path: 'x', payload: new Uint8Array(3000), block1Szx: 6 }); // 1024-byte blocks
      const failed = failure(p);
      await settle();
      const err = failed();
      assert.ok(err instanceof CoapTooLargeError, `rejected at once, without a clock tick: ${String(err)}`);
      assert.equal((err as CoapTooLargeError).code, 'too-large');
      assert.equal((err as CoapTooLargeError).mtu, 995);
      assert.ok((err as CoapTooLargeError).size > 1024, 'the refused datagram held a 1024-byte block');
      assert.equal(net.refused, 1);
      assert.equal(clock.pending, 0, 'no retransmission timer left');
      assert.equal(client.stats.tooLarge, 1);
      // the same body in blocks sized from the transport's MTU goes
      net.responder = (req) => {
        const b = decodeBlock(getOption(req, OptionNumber.BLOCK1)!.value);
        return { code: b.more ? Code.CONTINUE : Code.CHANGED, options: [{ number: OptionNumber.BLOCK1, value: encodeBlock(b) }] };
      };
      assert.equal((await client.request({ method: 'POST', path: 'x', payload: new Uint8Array(3000) })).code, Code.CHANGED);
      assert.equal(net.refused, 1);
      assert.ok(net.sent.every((s) => s.bytes.length <= 995), 'every datagram fits');
    });

    it('a datagram refused while queued (reported later through onError) fails its request too; other traffic is untouched', async () => {
      const { net, client, clock } = setup({}, 995);
      const p = client.request({ method: 'POST', path: 'x', payload: new Uint8Array(10) });
      const failed = failure(p);
      await settle();
      const sent = net.sent[0]!;
      net.onError?.(Object.assign(new Error('too long'), { code: 'DTLS_TOO_LONG', datagram: sent.bytes.slice(), mtu: 8 }));
      await settle();
      assert.ok(failed() instanceof CoapTooLargeError, `rejected with CoapTooLargeError: ${String(failed())}`);
      assert.equal(clock.pending, 0);
      // a refused datagram that is not a pending request (a retransmission of a failed one, an ACK): ignored
      net.onError?.(Object.assign(new Error('too long'), { code: 'DTLS_TOO_LONG', datagram: sent.bytes.slice(), mtu: 8 }));
      net.responder = () => ({ code: Code.CHANGED });
      assert.equal((await client.request({ method: 'POST', path: 'x', payload: new Uint8Array(10) })).code, Code.CHANGED);
    });

    it('GET over a transport whose datagrams cannot carry a 1024-byte block asks for blocks that fit (Block2 early negotiation)', async () => {
      for (const [mtu, szx] of [[995, 5], [479, 4], [1152, undefined], [undefined, undefined]] as const) {
        const { net, client } = setup({}, mtu);
        net.responder = () => ({ code: Code.CONTENT, payload: encodeUtf8('ok') });
        await client.request({ method: 'GET', path: 'big' });
        const b2 = getOption(net.sent[0]!.msg, OptionNumber.BLOCK2);
        assert.equal(b2 ? decodeBlock(b2.value).szx : undefined, szx, `mtu ${mtu}`);
        if (b2) assert.equal(decodeBlock(b2.value).num, 0);
      }
    });

    it('no early Block2 negotiation when the caller says the body fits one message (maxResponseBody: a firmware chunk)', async () => {
      // a 960-byte chunk over a 995-byte DTLS datagram: one response, not two 512-byte blocks
      for (const [max, szx] of [[960, undefined], [979, undefined], [980, 5], [2000, 5]] as const) {
        const { net, client } = setup({}, 995);
        net.responder = () => ({ code: Code.CONTENT, payload: new Uint8Array(max > 979 ? 10 : max) });
        await client.request({ method: 'GET', path: 'fw', maxResponseBody: max });
        const b2 = getOption(net.sent[0]!.msg, OptionNumber.BLOCK2);
        assert.equal(b2 ? decodeBlock(b2.value).szx : undefined, szx, `maxResponseBody ${max}`);
      }
    });

    it('an error response mid-Block1 ends the transfer with that response', async () => {
      const { net, client, clock } = setup();
      net.responder = (req) => {
        const b = decodeBlock(getOption(req, OptionNumber.BLOCK1)!.value);
        return b.num === 1 ? { code: Code.REQUEST_ENTITY_INCOMPLETE } : { code: Code.CONTINUE, options: [{ number: OptionNumber.BLOCK1, value: encodeBlock(b) }] };
      };
      const res = await client.request({ method: 'POST', path: 'x', payload: new Uint8Array(100), block1Szx: 0 });
      assert.equal(res.code, Code.REQUEST_ENTITY_INCOMPLETE);
      assert.equal(net.sent.length, 2);
      assert.equal(clock.pending, 0);
    });
  });

  it('builds the URI for every request from path and query', () => {
    assert.deepEqual(buildUriOptions('/a/b', ['c']).map((o) => o.number), [11, 11, 15]);
  });
});
