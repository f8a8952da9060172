/*
 * DTLS state across deep sleep, cheapest first (issue 8 item 6): (a) the whole connection saved
 * before sleep and restored (no handshake), (b) the saved session resumed when the server does not
 * answer the restored connection, (c) a full handshake when the server forgot the session too.
 * Real UDP on loopback against DtlsServer (the local endpoint's DTLS listener), the N-API engine.
 */
import assert from 'node:assert/strict';
import { DtlsServer } from '../../hardware/dtls/index';
import { openDeviceStorage } from '../../src/storage/index';
import { sessionTag } from '../../src/storage/session';
import { MemFlash } from '../../tools/sim/flash';
import { addon, nextMessage, sleep, testPki, usePeers, waitFor, type Client } from './helpers';

describe('dtls: connection saved across deep sleep (context restore, then resume, then full)', function () {
  this.timeout(20000);
  const pki = testPki();
  const one = { ca: pki.read('ca.pem'), hostname: 'localhost' };
  const peers = usePeers();
  const extraServers: DtlsServer[] = [];
  afterEach(async () => {
    for (const s of extraServers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  });

  async function echo(): Promise<{ s: DtlsServer; port: number }> {
    const r = await peers.server();
    r.s.on('message', (buf: Buffer, rinfo) => r.s.send(buf, rinfo));
    return r;
  }
  const msg = (t: string) => new TextEncoder().encode(t);
  const text = (d: Uint8Array) => new TextDecoder().decode(d);

  /** Full handshake, one echo (the server's record frees the handshake state), then the context. */
  async function awake(port: number, localPort = 0): Promise<{ c: Client; ctx: Uint8Array; session: Uint8Array; localPort: number }> {
    const c = peers.client(port, one, {}, localPort);
    assert.equal((await c.connected).path, 'full');
    c.dtls.send(msg('hello'));
    assert.equal(text(await nextMessage(c)), 'hello');
    const session = c.dtls.session()!;
    const ctx = c.dtls.saveContext();
    assert.ok(ctx, 'context saved');
    assert.equal(c.dtls.state, 'suspended');
    const lp = c.udp.localPort;
    c.udp.close(); // power off: the socket goes too
    await sleep(20);
    return { c, ctx, session, localPort: lp };
  }

  it('engine: saveContext() only once connected and answered; the saving engine is closed; a restored engine is connected at once', async () => {
    const { port } = await echo();
    const c = peers.client(port, one);
    await c.connected;
    c.dtls.send(msg('x'));
    await nextMessage(c);
    const e = addon();
    assert.equal(e.contextAvailable, true, 'MBEDTLS_SSL_CONTEXT_SERIALIZATION in the system mbedTLS');
    const fresh = e.create({ role: 'client', ...one });
    assert.equal(fresh.saveContext!(), null, 'nothing to save before the handshake');
    fresh.destroy();
    const ctx = c.dtls.saveContext()!;
    assert.ok(ctx.length > 150 && ctx.length < 400, `context ${ctx.length} B`);
    const restored = e.create({ role: 'client', ...one, restore: ctx });
    assert.equal(restored.state, 'connected');
    assert.equal(restored.restored, true);
    assert.equal(restored.resumed, false);
    restored.destroy();
    const damaged = ctx.slice();
    damaged[0]! ^= 1;
    assert.throws(() => e.create({ role: 'client', ...one, restore: damaged }), (err: Error & { code?: string }) => err.code === 'DTLS_BAD_SESSION');
  });

  it('(a) simulated reboot: the context from the flash store is restored from the same address, no handshake, cleared before use', async () => {
    const { s, port } = await echo();
    const { ctx, session, localPort } = await awake(port);
    // Before sleep: saved to flash. Reboot: a new storage instance over the same flash.
    const flash = new MemFlash(20 * 4096, 4096);
    const tag = sessionTag(['127.0.0.1', String(port), 'localhost', undefined, undefined]);
    openDeviceStorage(flash).session.save(tag, session);
    openDeviceStorage(flash).session.saveContext(tag, ctx);
    const store = openDeviceStorage(flash).session;
    const saved = store.loadContext(tag)!;
    assert.equal(saved.length, ctx.length);
    let cleared = false;
    const handshakes = s.stats.handshakes;
    const c = peers.client(port, one, { context: saved, session: store.load(tag)!, onRestore: () => (cleared = store.clearContext()) }, localPort);
    assert.equal(cleared, true, 'the stored copy is invalidated before anything is sent');
    assert.equal(openDeviceStorage(flash).session.loadContext(tag), undefined, 'a second reboot finds no context');
    assert.equal(c.dtls.state, 'connected');
    assert.equal(c.dtls.path, 'restored');
    c.dtls.send(msg('after sleep'));
    assert.equal(text(await nextMessage(c)), 'after sleep');
    assert.equal((await c.connected).path, 'restored');
    assert.equal(s.stats.handshakes, handshakes, 'no handshake at the server');
    assert.equal(c.udp.stats.datagramsSent, 1, 'one datagram out: the record');
    assert.deepEqual({ ...c.dtls.stats }, { restores: 1, restored: 1, restoreFallbacks: 0, resumed: 0, full: 0, contextSaves: 0 });
    // and again: the restored connection saves its context for the next sleep
    const next = c.dtls.saveContext();
    assert.ok(next && next.length === ctx.length);
    assert.notDeepEqual([...next], [...ctx], 'sequence numbers moved on');
  });

  it('(a) in one process (light sleep): saveContext() suspends, the next send() restores at once', async () => {
    const { s, port } = await echo();
    const c = peers.client(port, one);
    await c.connected;
    c.dtls.send(msg('1'));
    await nextMessage(c);
    let restores = 0;
    assert.ok(c.dtls.saveContext());
    assert.equal(c.dtls.state, 'suspended');
    const handshakes = s.stats.handshakes;
    c.dtls.send(msg('2'));
    assert.equal(text(await nextMessage(c)), '2');
    assert.equal(c.dtls.path, 'restored');
    assert.equal(s.stats.handshakes, handshakes);
    assert.equal(c.dtls.stats.restored, 1);
    restores = c.dtls.stats.restores;
    assert.equal(restores, 1);
  });

  it('(a) -> (b): from a new address the server does not know the connection: no answer, the session is resumed, the datagram goes over it', async () => {
    const { s, port } = await echo();
    const { ctx, session } = await awake(port);
    const c = peers.client(port, one, { context: ctx, session, restoreTimeoutMs: 400 });
    assert.equal(c.dtls.path, 'restored');
    c.dtls.send(msg('lost then resent'));
    const info = await c.connected;
    assert.equal(info.path, 'resumed');
    assert.equal(text(await nextMessage(c)), 'lost then resent', 'sent again over the resumed session');
    assert.equal(c.dtls.stats.restoreFallbacks, 1);
    assert.equal(c.dtls.stats.resumed, 1);
    assert.ok(s.stats.dropped >= 1, 'the server dropped the record from an unknown address');
  });

  it('(a) -> (b) -> (c): the server restarted (forgot connection and session): full handshake, the datagram goes over it', async () => {
    const first = await echo();
    const port = first.port;
    const { ctx, session, localPort } = await awake(port);
    await new Promise<void>((r) => first.s.close(() => r()));
    const s2 = new DtlsServer({ cert: pki.read('server.pem'), key: pki.read('server.key') });
    extraServers.push(s2);
    await s2.listen(port, '127.0.0.1');
    s2.on('message', (buf: Buffer, rinfo) => s2.send(buf, rinfo));
    const c = peers.client(port, one, { context: ctx, session, restoreTimeoutMs: 400 }, localPort);
    c.dtls.send(msg('over a new session'));
    assert.equal((await c.connected).path, 'full');
    assert.equal(text(await nextMessage(c)), 'over a new session');
    assert.deepEqual({ ...c.dtls.stats }, { restores: 1, restored: 0, restoreFallbacks: 1, resumed: 0, full: 1, contextSaves: 0 });
  });

  it('(a) -> (b) at once: a context from another mbedTLS build (damaged bytes) is not loaded; the session is resumed', async () => {
    const { port } = await echo();
    const { ctx, session } = await awake(port);
    ctx[0]! ^= 0xff;
    const c = peers.client(port, one, { context: ctx, session });
    assert.equal(c.dtls.state, 'handshaking');
    assert.equal((await c.connected).path, 'resumed');
    assert.equal(c.dtls.stats.restoreFallbacks, 1);
  });

  it('the same context loaded twice (no invalidation): the second copy\'s records are replays the server discards, so it falls back', async () => {
    const { s, port } = await echo();
    const { ctx, session, localPort } = await awake(port);
    const a = peers.client(port, one, { context: ctx.slice(), session }, localPort);
    a.dtls.send(msg('first'));
    assert.equal(text(await nextMessage(a)), 'first');
    a.dtls.close();
    await sleep(20);
    const handshakes = s.stats.handshakes;
    const b = peers.client(port, one, { context: ctx.slice(), session, restoreTimeoutMs: 400 }, localPort);
    b.dtls.send(msg('second'));
    const info = await b.connected;
    assert.notEqual(info.path, 'restored', 'the replayed connection was never answered');
    assert.equal(text(await nextMessage(b)), 'second');
    assert.equal(s.stats.handshakes, handshakes + 1);
  });

  it('an X.509 client restores its connection from the same address: the server still sees its certificate', async () => {
    const { s, port } = await peers.server({ ca: pki.read('ca.pem'), authMode: 'required' });
    const certs = new Map<string, boolean>();
    s.on('message', (buf: Buffer, rinfo) => {
      certs.set(String(buf), s.peerCertificate(rinfo.address, rinfo.port) !== null);
      s.send(buf, rinfo);
    });
    const mutual = { ...one, cert: pki.read('device.pem'), key: pki.read('device.key') };
    const c = peers.client(port, mutual);
    await c.connected;
    c.dtls.send(msg('before'));
    await nextMessage(c);
    const ctx = c.dtls.saveContext()!;
    const lp = c.udp.localPort;
    c.udp.close();
    await sleep(20);
    const r = peers.client(port, mutual, { context: ctx }, lp);
    r.dtls.send(msg('after'));
    assert.equal(text(await nextMessage(r)), 'after');
    assert.equal(r.dtls.path, 'restored');
    await waitFor('both messages seen', 2000, (ok) => (certs.size === 2 ? ok(undefined) : setTimeout(() => ok(undefined), 100)));
    assert.deepEqual([...certs], [['before', true], ['after', true]], 'same connection, same certificate at the server');
  });
});
