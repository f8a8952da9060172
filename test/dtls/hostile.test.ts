/*
 * Hostile datagrams (issue 14): what a peer's address, or anyone who can send from it, must not be
 * able to do to a DTLS session or to the server.
 *  1. invalid or unexpected records never end an established session (RFC 6347 4.1.2.7); only an
 *     authenticated alert or the peer's new verified handshake does;
 *  2. cookie-less ClientHellos allocate nothing on the server (stateless HelloVerifyRequest);
 *  3. destroy() from inside onSend does not crash the N-API binding.
 * Engine-level cases run two endpoints in memory (no sockets, no timers); server-level cases run over
 * loopback UDP. Nothing here asserts a duration.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import type { NativeDtlsEndpoint, NativeEndpointOptions } from '../../hardware/dtls/index';
import { addon, nextMessage, testPki, UdpProxy, usePeers, type Client } from './helpers';

const enc = (s: string) => new TextEncoder().encode(s);

/** Polls cond every 5 ms, at most `tries` times (a bound, not a timing assertion). */
async function until(cond: () => boolean, tries = 400): Promise<boolean> {
  for (let i = 0; i < tries && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  return cond();
}

/** A DTLS record header (13 bytes) + body: type, DTLS 1.2, epoch, 48-bit sequence number. */
function record(type: number, epoch: number, seq: number, body: Uint8Array): Buffer {
  const h = Buffer.alloc(13);
  h[0] = type;
  h[1] = 0xfe;
  h[2] = 0xfd;
  h.writeUInt16BE(epoch, 3);
  h.writeUIntBE(seq, 5, 6);
  h.writeUInt16BE(body.length, 11);
  return Buffer.concat([h, body]);
}

/** 15 bytes: a 1-byte record from another epoch (mbedTLS skips it) and 1 trailing byte. */
function fifteenBytes(epoch = 0): Buffer {
  const d = Buffer.concat([record(23, epoch, 0, Uint8Array.of(0x42)), Uint8Array.of(0)]);
  assert.equal(d.length, 15);
  return d;
}

/** An epoch-0 handshake record whose ClientHello is cut short (too short for any cookie check). */
function malformedClientHello(): Buffer {
  const body = Buffer.alloc(20);
  body[0] = 1; // ClientHello
  body.writeUIntBE(40, 1, 3); // claims 40 bytes
  body.writeUIntBE(40, 9, 3);
  return record(22, 0, 7, body);
}

interface Pair {
  client: NativeDtlsEndpoint;
  server: NativeDtlsEndpoint;
  toServer: Buffer[];
  toClient: Buffer[];
  /** Every datagram the client sent, in order. */
  clientSent: Buffer[];
  pump(): void;
}

/** A client and a server endpoint wired in memory; pump() delivers until both queues are empty. */
function connectedPair(serverOpts: Partial<NativeEndpointOptions> = {}): Pair {
  const pki = testPki();
  const { DtlsContext, DtlsEndpoint } = addon();
  const ctx = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), ...serverOpts });
  const server = new DtlsEndpoint({ context: ctx, clientId: '192.0.2.1:5000' });
  const client = new DtlsEndpoint({ role: 'client', ca: pki.read('ca.pem'), hostname: 'localhost' });
  const p: Pair = {
    client,
    server,
    toServer: [],
    toClient: [],
    clientSent: [],
    pump() {
      for (let i = 0; i < 50 && (p.toServer.length || p.toClient.length); i++) {
        for (const d of p.toServer.splice(0)) server.feed(d);
        for (const d of p.toClient.splice(0)) client.feed(d);
      }
    },
  };
  client.onSend = (r) => {
    p.toServer.push(Buffer.from(r));
    p.clientSent.push(Buffer.from(r));
  };
  server.onSend = (r) => p.toClient.push(Buffer.from(r));
  client.step();
  p.pump();
  assert.equal(client.state, 'connected');
  assert.equal(server.state, 'connected');
  return p;
}

/** Both directions still carry data. */
function assertSessionWorks(p: Pair, tag: string): void {
  p.client.write(enc(`up ${tag}`));
  p.pump();
  assert.equal(Buffer.from(p.server.read() ?? []).toString(), `up ${tag}`, 'the server still decrypts the client');
  p.server.write(enc(`down ${tag}`));
  p.pump();
  assert.equal(Buffer.from(p.client.read() ?? []).toString(), `down ${tag}`, 'the client still decrypts the server');
}

describe('dtls: hostile datagrams (issue 14)', function () {
  this.timeout(20000);
  const pki = testPki();
  const one = { ca: pki.read('ca.pem'), hostname: 'localhost' };

  describe('invalid records never end an established session (engine)', () => {
    it('15 bytes (a record from another epoch + 1 trailing byte) to either side: discarded', () => {
      const p = connectedPair();
      for (const ep of [p.server, p.client]) {
        assert.doesNotThrow(() => ep.feed(fifteenBytes(0)), 'epoch 0');
        assert.doesNotThrow(() => ep.feed(fifteenBytes(7)), 'a future epoch');
        assert.equal(ep.read(), null);
        assert.equal(ep.state, 'connected');
        assert.ok(ep.discarded >= 2, `discarded ${ep.discarded}`);
      }
      assertSessionWorks(p, '1');
    });

    it('a replayed record followed by trailing bytes: discarded, session kept', () => {
      const p = connectedPair();
      p.client.write(enc('first'));
      const up = p.toServer[0]!;
      p.pump();
      assert.equal(Buffer.from(p.server.read()!).toString(), 'first');
      // the same epoch and sequence number again (a replay), 1-byte body, then 1 stray byte
      const replay = Buffer.concat([record(up[0]!, up.readUInt16BE(3), up.readUIntBE(5, 6), Uint8Array.of(1)), Uint8Array.of(0)]);
      assert.equal(replay.length, 15);
      assert.doesNotThrow(() => p.server.feed(replay));
      assert.doesNotThrow(() => p.server.feed(up)); // the whole record replayed
      assert.equal(p.server.read(), null, 'nothing decrypted twice');
      assert.equal(p.server.state, 'connected');
      assertSessionWorks(p, '2');
    });

    it('a malformed epoch-0 ClientHello to a connected server: discarded', () => {
      const p = connectedPair();
      assert.doesNotThrow(() => p.server.feed(malformedClientHello()));
      assert.equal(p.server.state, 'connected');
      assert.equal(p.toClient.length, 0, 'nothing sent in answer');
      assertSessionWorks(p, '3');
    });

    it('a replayed ClientHello with a valid cookie does not reset the connected server endpoint', () => {
      const p = connectedPair();
      const withCookie = p.clientSent.filter((d) => d[0] === 22 && d[3] === 0 && d[4] === 0 && d[13] === 1)[1];
      assert.ok(withCookie && withCookie[59 + 1 + withCookie[59]!]! > 0, "the client's second ClientHello carries a cookie");
      assert.doesNotThrow(() => p.server.feed(withCookie));
      assert.equal(p.server.state, 'connected', 'still the same session');
      assert.equal(p.toClient.length, 0, 'no new ServerHello flight from the established endpoint');
      assertSessionWorks(p, '4');
    });

    it("a lost last flight is still resent: the established side drops the retransmission's epoch-0 records but sees its Finished", () => {
      const { DtlsContext, DtlsEndpoint } = addon();
      const ctx = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), cookies: false });
      let session: Buffer | null = null;
      for (const resume of [false, true]) {
        // full handshake: the server sends the last flight; resumed: the client does
        const server = new DtlsEndpoint({ context: ctx, clientId: 'z' });
        const client = new DtlsEndpoint({ role: 'client', ...one, ...(resume ? { session: session! } : {}) });
        const up: Buffer[] = [];
        const down: Buffer[] = [];
        client.onSend = (r) => up.push(Buffer.from(r));
        server.onSend = (r) => down.push(Buffer.from(r));
        client.step();
        const first = resume ? client : server; // completes first, its last flight is lost
        const waiting = resume ? server : client;
        const done = () => first.state === 'connected';
        for (let i = 0; i < 10 && !done(); i++) {
          for (const d of up.splice(0)) server.feed(d);
          if (done()) break;
          for (const d of down.splice(0)) client.feed(d);
        }
        assert.equal(first.state, 'connected');
        (resume ? up : down).length = 0; // the last flight is lost
        assert.equal(waiting.state, 'handshaking');
        const discarded = first.discarded;
        waiting.timerExpired(); // retransmits its flight, which starts with epoch-0 records
        for (const d of (resume ? down : up).splice(0)) first.feed(d);
        assert.ok(first.discarded > discarded, 'the epoch-0 records were dropped');
        for (const d of (resume ? up : down).splice(0)) waiting.feed(d);
        assert.equal(waiting.state, 'connected', 'the last flight came again');
        assert.equal(client.resumed, resume);
        session = client.saveSession();
        client.write(enc('after'));
        for (const d of up.splice(0)) server.feed(d);
        assert.equal(Buffer.from(server.read()!).toString(), 'after');
        client.destroy();
        server.destroy();
      }
    });

    it('a resumption that needed retransmissions keeps the session\'s record size (issue 14 item 6)', () => {
      // mbedTLS lowers its handshake MTU to 508 bytes after a second retransmission, and the client
      // of an abbreviated handshake keeps that structure (to resend its last flight) until the
      // server's first record: it could not write more than 479 bytes, where the session takes 995.
      const { DtlsContext, DtlsEndpoint } = addon();
      const ctx = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), cookies: false });
      let session: Buffer | null = null;
      const limits: number[] = [];
      for (const lossy of [false, true]) {
        const server = new DtlsEndpoint({ context: ctx, clientId: 'r' });
        const client = new DtlsEndpoint({ role: 'client', ...one, ...(session ? { session } : {}) });
        const up: Buffer[] = [];
        const down: Buffer[] = [];
        client.onSend = (r) => up.push(Buffer.from(r));
        server.onSend = (r) => down.push(Buffer.from(r));
        client.step();
        if (lossy) {
          up.length = 0; // the ClientHello is lost twice: two retransmissions
          client.timerExpired();
          up.length = 0;
          client.timerExpired();
        }
        for (let i = 0; i < 10 && !(client.state === 'connected' && server.state === 'connected'); i++) {
          for (const d of up.splice(0)) server.feed(d);
          for (const d of down.splice(0)) client.feed(d);
        }
        assert.equal(client.state, 'connected');
        assert.equal(client.resumed, lossy);
        limits.push(client.maxPayload);
        // a record of the session's full size goes out at once, before the server has said anything
        assert.doesNotThrow(() => client.write(new Uint8Array(client.maxPayload)));
        for (const d of up.splice(0)) server.feed(d);
        assert.equal(server.read()?.length, limits[limits.length - 1]);
        session ??= client.saveSession();
        client.destroy();
        server.destroy();
      }
      assert.equal(limits[1], limits[0], `record payload after a lossy resumption ${limits[1]} B, after a full handshake ${limits[0]} B`);
    });

    it('an authenticated close_notify still ends the session', () => {
      const p = connectedPair();
      p.client.close();
      let err: { code?: string } | undefined;
      for (const d of p.toServer.splice(0)) {
        try {
          p.server.feed(d);
        } catch (e) {
          err = e as { code?: string };
        }
      }
      assert.equal(err?.code, 'DTLS_CLOSE_NOTIFY');
      assert.equal(p.server.state, 'closed');
    });

    it('a forged alert in plaintext (epoch 0) does not', () => {
      const p = connectedPair();
      assert.doesNotThrow(() => p.client.feed(record(21, 0, 9, Uint8Array.of(2, 40))));
      assert.doesNotThrow(() => p.server.feed(record(21, 0, 9, Uint8Array.of(2, 0))));
      assertSessionWorks(p, '5');
    });
  });

  describe('invalid records never end an established session (DtlsServer and DtlsDatagram over UDP)', () => {
    const peers = usePeers();
    let proxy: UdpProxy | undefined;
    afterEach(() => {
      proxy?.close();
      proxy = undefined;
    });

    async function echoThroughProxy(): Promise<{ s: Awaited<ReturnType<typeof peers.server>>['s']; c: Client; hellos: Buffer[]; px: UdpProxy }> {
      const { s, port } = await peers.server({ retransmitMs: 100 });
      s.on('message', (m: Buffer, rinfo) => s.send(m, rinfo));
      const px = new UdpProxy(port);
      proxy = px;
      const front = await px.start();
      const hellos: Buffer[] = [];
      px.filterToServer = (d) => {
        if (d[0] === 22 && d[3] === 0 && d[4] === 0 && d[13] === 1) hellos.push(Buffer.from(d));
        return true;
      };
      const c = peers.client(front, one, { retransmitMs: 100, retransmitMaxMs: 800 });
      c.dtls.send(enc('hello'));
      assert.equal(Buffer.from(await nextMessage(c)).toString(), 'hello');
      return { s, c, hellos, px };
    }

    it('15-byte datagrams, a malformed and a replayed ClientHello from the peer\'s address leave the session up', async () => {
      const { s, c, hellos, px } = await echoThroughProxy();
      assert.equal(hellos.length, 2, 'ClientHello, then ClientHello with the cookie');
      const before = s.stats.datagramsIn;
      for (const d of [fifteenBytes(0), fifteenBytes(3), malformedClientHello(), hellos[1]!]) px.injectToServer(d);
      for (const d of [fifteenBytes(0), fifteenBytes(3)]) px.injectToClient(d);
      assert.ok(await until(() => s.stats.datagramsIn >= before + 4), 'the server got the four datagrams');
      assert.equal(s.stats.failures, 0, 'no session ended on the server');
      assert.equal(s.stats.handshakes, 1);
      assert.equal(s.peers.size, 1);
      assert.equal(c.errors.length, 0, `client errors: ${c.errors.map((e) => e.message).join('; ')}`);
      assert.equal(c.dtls.state, 'connected');
      c.dtls.send(enc('still here'));
      assert.equal(Buffer.from(await nextMessage(c)).toString(), 'still here');
      assert.equal(s.stats.handshakes, 1, 'the replayed ClientHello started no session');
    });

    it("the peer's new verified handshake from the same address does replace the session", async () => {
      const { s, c, px } = await echoThroughProxy();
      // The device reboots behind the same address: no close_notify, a fresh client, full handshake.
      px.filterToServer = () => false;
      c.dtls.close();
      px.filterToServer = () => true;
      const c2 = peers.client(px.front.address().port, one, { retransmitMs: 100, retransmitMaxMs: 800 });
      c2.dtls.send(enc('rebooted'));
      assert.equal(Buffer.from(await nextMessage(c2)).toString(), 'rebooted');
      assert.equal(s.stats.handshakes, 2);
      assert.equal(s.peers.size, 1, 'one peer for the one address');
      assert.equal(s.endpoints, 1, 'the old endpoint is gone');
    });
  });

  describe("a resumption whose last flight (the client's ChangeCipherSpec + Finished) is lost (issue 14 soak)", () => {
    const peers = usePeers();

    for (const sameAddress of [true, false]) {
      it(`the client's application data makes the server resend its flight, and the session comes up (${sameAddress ? 'beside the established session' : 'from a new port'})`, async () => {
        // The server's retransmission timer is out of reach (60 s, then doubling): only the client's traffic can
        // finish the handshake. Before, the server's endpoint waited for its timer while the
        // client, done with its handshake, sent records nobody could read.
        const { s, port } = await peers.server({ retransmitMs: 60_000, retransmitMaxMs: 480_000 });
        s.on('message', (m: Buffer, rinfo) => s.send(m, rinfo));
        const c = peers.client(port, one, { retransmitMs: 60_000, retransmitMaxMs: 60_000 });
        c.dtls.send(enc('first'));
        assert.equal(Buffer.from(await nextMessage(c)).toString(), 'first');
        if (!sameAddress) c.udp.rebind();
        const sent = c.udp.stats.datagramsSent;
        c.udp.faults = { dropOutIndexes: [sent + 2] }; // ClientHello goes, ChangeCipherSpec + Finished do not
        c.dtls.reconnect(true);
        assert.ok(await until(() => c.dtls.state === 'connected'), 'the client completed its side');
        assert.equal(c.dtls.resumed, true);
        assert.ok(await until(() => s.endpoints === 2), 'the server still waits for our last flight');
        // CoAP's retransmissions, in short: the same request again until it is answered (bounded).
        let echoed = false;
        for (let i = 0; i < 4 && !echoed; i++) {
          const before = c.received.length;
          c.dtls.send(enc(`again ${i}`));
          echoed = await until(() => c.received.length > before, 100);
        }
        assert.ok(echoed, `answered after the lost last flight (server: ${JSON.stringify(s.stats)})`);
        assert.equal(s.stats.handshakes, 2);
        assert.ok(s.stats.earlyResends >= 1);
        assert.equal(s.peers.size, sameAddress ? 1 : 2);
      });
    }
  });

  describe("a resumption whose ClientHello is retransmitted (the server's flight was lost)", () => {
    const peers = usePeers();

    it('the retransmission (new record sequence number) reaches the same handshake: one endpoint, its flight again', async () => {
      const { s, port } = await peers.server({ retransmitMs: 60_000, retransmitMaxMs: 480_000 });
      s.on('message', (m: Buffer, rinfo) => s.send(m, rinfo));
      const first = peers.client(port, one);
      first.dtls.send(enc('first'));
      assert.equal(Buffer.from(await nextMessage(first)).toString(), 'first');
      const session = first.dtls.session()!;
      first.dtls.close();
      const px = new UdpProxy(port);
      try {
        const front = await px.start();
        const hellos: Buffer[] = [];
        px.filterToServer = (d) => {
          if (d[0] === 22 && d[3] === 0 && d[4] === 0 && d[13] === 1) hellos.push(Buffer.from(d));
          return true;
        };
        px.filterToClient = (_d, i) => i !== 1; // the server's first flight is lost
        const c = peers.client(front, one, { session, retransmitMs: 100, retransmitMaxMs: 800 });
        assert.equal((await c.connected).resumed, true);
        c.dtls.send(enc('second'));
        assert.equal(Buffer.from(await nextMessage(c)).toString(), 'second');
        assert.ok(hellos.length >= 2, 'the client retransmitted its ClientHello');
        assert.ok(!hellos[0].subarray(5, 11).equals(hellos[1].subarray(5, 11)), 'in a record with a new sequence number');
        assert.equal(s.stats.resumptionsWithoutCookie, 1, 'one endpoint for the one handshake');
        assert.equal(s.stats.handshakes, 2);
      } finally {
        px.close();
      }
    });
  });

  describe('a new ClientHello from an address whose handshake never finished', () => {
    const peers = usePeers();

    it('a new verified handshake replaces the unfinished one at once', async () => {
      const { s, port } = await peers.server({ retransmitMs: 100 });
      s.on('message', (m: Buffer, rinfo) => s.send(m, rinfo));
      const px = new UdpProxy(port);
      try {
        const front = await px.start();
        px.filterToClient = (d) => d[13] === 3; // only the HelloVerifyRequest gets through
        const c1 = peers.client(front, one, { retransmitMs: 5000, retransmitMaxMs: 5000 });
        assert.ok(await until(() => s.peers.size === 1), 'the server holds the unfinished handshake');
        c1.dtls.close();
        px.filterToClient = () => true;
        const c2 = peers.client(front, one, { retransmitMs: 200, retransmitMaxMs: 400 });
        const outcome = await Promise.race([c2.connected.then(() => 'connected'), c2.failed.then((e) => (e as { code?: string }).code)]);
        assert.equal(outcome, 'connected');
        c2.dtls.send(enc('second'));
        assert.equal(Buffer.from(await nextMessage(c2)).toString(), 'second');
        assert.equal(s.endpoints, 1);
      } finally {
        px.close();
      }
    });
  });

  describe('ClientHello flood', () => {
    const peers = usePeers();

    it('2000 cookie-less ClientHellos from distinct ports allocate no endpoint; a real client still connects', async () => {
      const { s, port } = await peers.server({ maxPeers: 100, retransmitMs: 100 });
      s.on('message', (m: Buffer, rinfo) => s.send(m, rinfo));
      // A real ClientHello, made in memory.
      const probe = new (addon().DtlsEndpoint)({ role: 'client', ...one });
      let hello: Buffer | undefined;
      probe.onSend = (r) => (hello ??= Buffer.from(r));
      probe.step();
      probe.destroy();
      assert.ok(hello && hello[13] === 1);
      const total = 2000;
      const batch = 100;
      let sent = 0;
      let answered = 0;
      for (let b = 0; b < total / batch; b++) {
        const socks = await Promise.all(
          Array.from({ length: batch }, () => new Promise<dgram.Socket>((resolve) => {
            const so = dgram.createSocket('udp4');
            so.on('message', () => answered++);
            so.bind(0, '127.0.0.1', () => resolve(so));
          })),
        );
        for (const so of socks) so.send(hello, port, '127.0.0.1');
        sent += batch;
        await until(() => s.stats.datagramsIn >= sent, 200);
        await until(() => answered >= sent, 200);
        for (const so of socks) so.close();
        assert.equal(s.peers.size, 0, `per-peer state after ${sent} ClientHellos`);
      }
      assert.ok(s.stats.datagramsIn >= total * 0.95, `the flood reached the server (${s.stats.datagramsIn})`);
      assert.ok(s.stats.helloVerifyRequests >= total * 0.95, `answered statelessly (${s.stats.helloVerifyRequests} HelloVerifyRequests)`);
      assert.equal(s.endpoints, 0);

      const c = peers.client(port, one, { retransmitMs: 200, retransmitMaxMs: 800 });
      const outcome = await Promise.race([c.connected.then(() => 'connected'), c.failed.then((e) => (e as { code?: string }).code ?? e.message)]);
      assert.equal(outcome, 'connected');
      c.dtls.send(enc('after the flood'));
      assert.equal(Buffer.from(await nextMessage(c)).toString(), 'after the flood');
      assert.equal(s.peers.size, 1);
      assert.equal(s.endpoints, 1);
    });

    it('junk from unknown addresses allocates nothing either', async () => {
      const { s, port } = await peers.server();
      const so = dgram.createSocket('udp4');
      await new Promise<void>((r) => so.bind(0, '127.0.0.1', () => r()));
      try {
        for (const d of [fifteenBytes(), malformedClientHello(), Buffer.from('not dtls'), record(22, 0, 0, Uint8Array.of(2, 0, 0, 0))]) {
          so.send(d, port, '127.0.0.1');
        }
        assert.ok(await until(() => s.stats.datagramsIn >= 4));
      } finally {
        so.close();
      }
      assert.equal(s.peers.size, 0);
      assert.equal(s.stats.helloVerifyRequests, 0, 'no answer to what is not a ClientHello');
    });
  });

  describe('destroy() from inside onSend', () => {
    it('during a failing handshake (the client sends its alert): no crash, the error is thrown', () => {
      // In a child process: before the fix this was a segfault that would take mocha down with it.
      const script = `
        const { DtlsEndpoint } = require(process.argv[1]);
        const fs = require('fs');
        const pki = (f) => fs.readFileSync(require('path').join(process.argv[2], f));
        const server = new DtlsEndpoint({ role: 'server', cert: pki('rogue-server.pem'), key: pki('rogue-server.key'), cookies: false, clientId: 'x' });
        const client = new DtlsEndpoint({ role: 'client', ca: pki('ca.pem'), hostname: 'localhost' });
        const up = [], down = [];
        let destroyedInOnSend = 0;
        client.onSend = (r) => {
          up.push(Buffer.from(r));
          if (client.state === 'failed') { client.destroy(); destroyedInOnSend++; }
        };
        server.onSend = (r) => down.push(Buffer.from(r));
        client.step();
        let code = 'none';
        for (let i = 0; i < 20 && (up.length || down.length); i++) {
          for (const d of up.splice(0)) { try { server.feed(d); } catch (e) {} }
          for (const d of down.splice(0)) {
            try { client.feed(d); } catch (e) { code = e.code; }
          }
        }
        let after = 'none';
        try { client.feed(Buffer.alloc(20)); } catch (e) { after = e.code; }
        console.log(JSON.stringify({ code, destroyedInOnSend, after, state: client.state }));
      `;
      const r = spawnSync(process.execPath, ['-e', script, addon().path, pki.dir], { encoding: 'utf8', timeout: 15000 });
      assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      assert.deepEqual(out, { code: 'DTLS_UNKNOWN_CA', destroyedInOnSend: 1, after: 'DTLS_STATE', state: 'closed' });
    });

    it('inside a DtlsServer-like owner: destroy() in onSend for every record of a flight', () => {
      const { DtlsContext, DtlsEndpoint } = addon();
      const ctx = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), cookies: false });
      const server = new DtlsEndpoint({ context: ctx, clientId: 'y', mtu: 300 }); // a flight of several datagrams
      const client = new DtlsEndpoint({ role: 'client', ...one });
      let hello: Buffer | undefined;
      client.onSend = (r) => (hello ??= Buffer.from(r));
      client.step();
      let calls = 0;
      server.onSend = () => {
        calls++;
        server.destroy();
      };
      assert.doesNotThrow(() => server.feed(hello!));
      assert.equal(calls, 1, 'delivery stops once the endpoint is destroyed');
      assert.equal(server.state, 'closed');
      client.destroy();
    });
  });

  it('the server context answers a ClientHello statelessly: verdicts', () => {
    const { DtlsContext, DtlsEndpoint } = addon();
    const ctx = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key') });
    const client = new DtlsEndpoint({ role: 'client', ...one });
    const out: Buffer[] = [];
    client.onSend = (r) => out.push(Buffer.from(r));
    client.step();
    const first = ctx.checkClientHello(out[0]!, '127.0.0.1:1');
    assert.equal(first.verdict, 'verify');
    assert.ok(first.reply && first.reply[13] === 3, 'a HelloVerifyRequest');
    assert.equal(first.reply.readUInt16BE(17), out[0]!.readUInt16BE(17), 'message_seq copied');
    assert.deepEqual(first.reply.subarray(3, 11), out[0]!.subarray(3, 11), 'epoch and record sequence number copied');
    client.feed(first.reply);
    const second = out[1]!;
    assert.equal(ctx.checkClientHello(second, '127.0.0.1:1').verdict, 'accept', 'its cookie is valid for that address');
    assert.equal(ctx.checkClientHello(second, '127.0.0.1:2').verdict, 'verify', 'but not for another one');
    assert.equal(ctx.checkClientHello(malformedClientHello(), '127.0.0.1:1').verdict, 'drop');
    assert.equal(ctx.checkClientHello(fifteenBytes(), '127.0.0.1:1').verdict, 'drop');
    assert.equal(ctx.checkClientHello(second.subarray(0, second.length - 1), '127.0.0.1:1').verdict, 'drop', 'truncated');
    const cookieless = new DtlsContext({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), cookies: false });
    assert.equal(cookieless.checkClientHello(out[0]!, '127.0.0.1:1').verdict, 'accept');
    client.destroy();
  });
});
