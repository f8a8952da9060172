/*
 * DtlsDatagram (src/dtls) in virtual time: the native engine over an in-memory link on a ManualClock,
 * so retransmission schedules, queue bounds and rehandshakes are asserted to the millisecond.
 */
import assert from 'node:assert/strict';
import { ManualClock } from '../../tools/sim/clock';
import { DtlsDatagram, type DtlsError } from '../../src/dtls';
import type { Datagram } from '../../src/platform/types';
import { addon, testPki } from './helpers';

/** A Datagram whose peer is a native server endpoint, with 1 ms latency on the ManualClock. */
class Link implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  readonly mtu = 1152;
  sent: { at: number; len: number }[] = [];
  dropUp = (_i: number) => false;
  serverPlain: string[] = [];
  closed = false;
  server: ReturnType<Link['newServer']>;
  constructor(readonly clock: ManualClock, readonly serverOpts: object) {
    this.server = this.newServer();
  }
  newServer() {
    const { DtlsEndpoint } = addon();
    const ep = new DtlsEndpoint({ role: 'server', clientId: 'link', ...this.serverOpts });
    ep.onSend = (rec) => {
      const copy = new Uint8Array(rec);
      this.clock.setTimer(() => this.onReceive?.(copy), 1);
    };
    return ep;
  }
  send(data: Uint8Array): void {
    this.sent.push({ at: this.clock.now(), len: data.length });
    if (this.dropUp(this.sent.length)) return;
    const copy = new Uint8Array(data);
    this.clock.setTimer(() => {
      try {
        this.server.feed(copy);
      } catch {
        return;
      }
      for (let m = this.server.read(); m; m = this.server.read()) this.serverPlain.push(Buffer.from(m).toString());
    }, 1);
  }
  close(): void {
    this.closed = true;
  }
}

describe('dtls: DtlsDatagram facade (virtual time)', () => {
  const pki = testPki();
  const serverOpts = { cert: pki.read('server.pem'), key: pki.read('server.key') };
  const engine = { ca: pki.read('ca.pem'), hostname: 'localhost' };

  function make(clock: ManualClock, link: Link, extra: object = {}) {
    const errors: DtlsError[] = [];
    const d = new DtlsDatagram({ transport: link, clock, createEngine: addon().create, engine, ...extra });
    d.onError = (e) => errors.push(e as DtlsError);
    return { d, errors };
  }

  it('retransmits the ClientHello on the Clock: 2 s doubling up to 32 s by default, gives up at 62 s', () => {
    const clock = new ManualClock();
    const link = new Link(clock, serverOpts);
    link.dropUp = () => true; // the server never hears us
    const { d, errors } = make(clock, link, { rehandshake: false });
    clock.advance(61_999);
    assert.equal(errors.length, 0);
    clock.advance(1);
    assert.deepEqual(link.sent.map((s) => s.at), [0, 2000, 6000, 14000, 30000]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'DTLS_HANDSHAKE_TIMEOUT');
    assert.equal(d.state, 'failed');
    assert.equal(clock.pending, 0, 'no timer left behind');
  });

  it('a ThingsBoard-like 9 s initial timeout is configurable', () => {
    const clock = new ManualClock();
    const link = new Link(clock, serverOpts);
    link.dropUp = () => true;
    const { errors } = make(clock, link, { retransmitMs: 9000, retransmitMaxMs: 36000, rehandshake: false });
    clock.advance(63_000);
    assert.deepEqual(link.sent.map((s) => s.at), [0, 9000, 27000]);
    assert.equal(errors[0].code, 'DTLS_HANDSHAKE_TIMEOUT');
  });

  it('completes after losses, delivering the queued datagrams in order (bounded queue drops the oldest)', () => {
    const clock = new ManualClock();
    const link = new Link(clock, serverOpts);
    link.dropUp = (i) => i === 1 || i === 3; // first ClientHello and first ClientHello+cookie
    const { d, errors } = make(clock, link, { maxQueue: 2 });
    for (const m of ['a', 'b', 'c']) d.send(new TextEncoder().encode(m));
    clock.advance(20_000);
    assert.equal(d.state, 'connected');
    assert.deepEqual(link.serverPlain, ['b', 'c']);
    assert.equal(errors.length, 0);
    assert.ok(d.mtu > 900 && d.mtu <= 1024 - 29);
  });

  it('resumes with a saved session, and rehandshakes by itself after close_notify', () => {
    const clock = new ManualClock();
    const link = new Link(clock, serverOpts);
    const { d } = make(clock, link);
    clock.advance(100);
    assert.equal(d.state, 'connected');
    const saved = d.session();
    assert.ok(saved);

    // The peer ends the session: the facade reports DTLS_CLOSE_NOTIFY then handshakes again (resuming).
    const events: string[] = [];
    d.onError = (e) => events.push((e as DtlsError).code);
    link.server.close();
    clock.advance(10);
    assert.deepEqual(events, ['DTLS_CLOSE_NOTIFY']);
    link.server = link.newServer(); // server side forgets the session (restart); tickets from the old one are unknown
    clock.advance(5000);
    assert.equal(d.state, 'connected');
    assert.equal(d.handshakes, 2);
    d.send(new TextEncoder().encode('after'));
    clock.advance(10);
    assert.deepEqual(link.serverPlain, ['after']);
    d.close();
    assert.equal(link.closed, true);
  });

  it('never retries an authentication failure and drops queued data', () => {
    const clock = new ManualClock();
    const link = new Link(clock, { cert: pki.read('rogue-server.pem'), key: pki.read('rogue-server.key') });
    const { d, errors } = make(clock, link);
    d.send(new TextEncoder().encode('secret'));
    clock.advance(60_000);
    assert.deepEqual(errors.map((e) => e.code), ['DTLS_UNKNOWN_CA']);
    d.send(new TextEncoder().encode('again'));
    clock.advance(60_000);
    assert.equal(d.handshakes, 1);
    assert.deepEqual(link.serverPlain, []);
  });
});
