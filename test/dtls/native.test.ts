/* Our client (src/dtls DtlsDatagram over the N-API engine) against our DtlsServer, over loopback UDP. */
import assert from 'node:assert/strict';
import * as coap from 'coap';
import { DtlsServer, type DtlsPeerInfo } from '../../hardware/dtls/index';
import { addon, coapGetTime, nextMessage, testPki, usePeers, waitFor, type Client } from './helpers';

describe('dtls: ours <-> ours (N-API engine, DtlsServer)', function () {
  this.timeout(15000);
  const pki = testPki();
  const peers = usePeers();
  const { client } = peers;

  /** An echo server: answers each datagram with "echo:" + datagram. */
  async function server(opts: Parameters<typeof peers.server>[0] = {}): Promise<{ s: DtlsServer; port: number }> {
    const r = await peers.server(opts);
    r.s.on('message', (buf: Buffer, rinfo) => r.s.send(Buffer.concat([Buffer.from('echo:'), buf]), 0, buf.length + 5, rinfo.port, rinfo.address));
    return r;
  }

  it('loads the addon built from binding.gyp (mbedTLS 2.28 here; CID not compiled in)', () => {
    const a = addon();
    assert.match(a.mbedtlsVersion, /^\d+\.\d+\.\d+$/);
    assert.equal(typeof a.cidAvailable, 'boolean');
    if (a.mbedtlsVersion.startsWith('2.')) assert.equal(a.cidAvailable, false);
  });

  it('one-way: handshake, then application data both ways (queued before the handshake)', async () => {
    const { s, port } = await server();
    const sessions: DtlsPeerInfo[] = [];
    s.on('session', (i: DtlsPeerInfo) => sessions.push(i));
    const c = client(port, { ca: pki.read('ca.pem'), hostname: 'localhost' });
    c.dtls.send(new TextEncoder().encode('hello')); // queued until the handshake completes
    const reply = await nextMessage(c);
    assert.equal(Buffer.from(reply).toString(), 'echo:hello');
    assert.equal(c.dtls.state, 'connected');
    assert.equal(c.dtls.resumed, false);
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].peerCertificate, null);
    assert.equal(sessions[0].ciphersuite, 'TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8');
    c.dtls.send(new TextEncoder().encode('again'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'echo:again');
    assert.ok(c.dtls.peerCertificate && c.dtls.peerCertificate.length > 300, 'client sees the server certificate');
    assert.ok(c.dtls.mtu > 900 && c.dtls.mtu < 1024, `mtu ${c.dtls.mtu}`);
    console.log(`      full one-way handshake: ${c.handshakeBytes} bytes`);
  });

  it('mutual: the server sees the client certificate DER (PEM and DER credentials)', async () => {
    const { s, port } = await server({ ca: pki.read('ca.pem'), authMode: 'required' });
    const seen = waitFor<DtlsPeerInfo>('session', 5000, (r) => s.once('session', r));
    const c = client(port, { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.der'), key: pki.read('device.key.der') });
    c.dtls.send(new TextEncoder().encode('x509'));
    const info = await seen;
    assert.deepEqual(Buffer.from(info.peerCertificate!), pki.read('device.der'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'echo:x509');
    assert.deepEqual(s.peerCertificate('127.0.0.1', c.udp.localPort), pki.read('device.der'));
    console.log(`      mutual handshake: ${c.handshakeBytes} bytes`);

    const rsa = client(port, { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device-rsa.pem'), key: pki.read('device-rsa.key') });
    rsa.dtls.send(new TextEncoder().encode('rsa'));
    assert.equal(Buffer.from(await nextMessage(rsa)).toString(), 'echo:rsa');
  });

  it('resumes a saved session after a simulated sleep: new socket, new engine, abbreviated handshake', async () => {
    const { s, port } = await server({ ca: pki.read('ca.pem'), authMode: 'optional' });
    const opts = { ca: pki.read('ca.pem'), hostname: 'localhost' };
    const first = client(port, opts);
    await first.connected;
    const full = first.handshakeBytes;
    const saved = first.dtls.session();
    assert.ok(saved && saved.length > 100, 'session saved');
    first.dtls.close(); // sleep: socket and engine gone, only the bytes survive

    const serverSide = waitFor<DtlsPeerInfo>('session', 5000, (r) => s.once('session', r));
    const second = client(port, opts, { session: saved });
    const info = await second.connected;
    assert.equal(info.resumed, true);
    assert.equal(second.dtls.resumed, true);
    assert.equal((await serverSide).resumed, true, 'the server did an abbreviated handshake too');
    assert.equal(s.stats.resumed, 1);
    assert.ok(second.handshakeBytes < full, `resumed ${second.handshakeBytes} B < full ${full} B`);
    second.dtls.send(new TextEncoder().encode('after sleep'));
    assert.equal(Buffer.from(await nextMessage(second)).toString(), 'echo:after sleep');
    console.log(`      full ${full} B, resumed ${second.handshakeBytes} B`);

    // A session from the resumed handshake is itself resumable.
    const again = second.dtls.session();
    second.dtls.close();
    const third = client(port, opts, { session: again! });
    assert.equal((await third.connected).resumed, true);
  });

  it('resumes a mutual session and keeps the client certificate', async () => {
    const { s, port } = await server({ ca: pki.read('ca.pem'), authMode: 'required' });
    const opts = { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') };
    const first = client(port, opts);
    await first.connected;
    const saved = first.dtls.session();
    first.dtls.close();
    const serverSide = waitFor<DtlsPeerInfo>('session', 5000, (r) => s.once('session', r));
    const second = client(port, opts, { session: saved! });
    assert.equal((await second.connected).resumed, true);
    const info = await serverSide;
    assert.equal(info.resumed, true);
    assert.deepEqual(Buffer.from(info.peerCertificate!), pki.read('device.der'));
    console.log(`      mutual: full ${first.handshakeBytes} B, resumed ${second.handshakeBytes} B`);
  });

  it('a corrupted saved session falls back to a full handshake', async () => {
    const { port } = await server();
    const c = client(port, { ca: pki.read('ca.pem'), hostname: 'localhost' }, { session: Uint8Array.from([1, 2, 3, 4]) });
    assert.equal((await c.connected).resumed, false);
  });

  it('PSK (PSK-AES128-CCM-8) between our client and our server', async () => {
    const { port } = await server({ cert: undefined, key: undefined, psk: 'secretPSK', pskIdentity: 'dev1' });
    const c = client(port, { psk: 'secretPSK', pskIdentity: 'dev1' });
    c.dtls.send(new TextEncoder().encode('psk'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'echo:psk');
    console.log(`      PSK handshake: ${c.handshakeBytes} bytes`);
  });

  it('the coap package server runs over DtlsServer (instanceof dgram.Socket: duplicate CONs get the cached reply)', async () => {
    const { s, port } = await peers.server();
    let handled = 0;
    const app = coap.createServer((req: { url: string }, res: { end(b: string): void }) => {
      handled++;
      res.end(`t=${req.url}`);
    });
    app.listen(s);
    const c = client(port, { ca: pki.read('ca.pem'), hostname: 'localhost' });
    c.dtls.send(coapGetTime(0x4242));
    const reply = await nextMessage(c);
    assert.equal(reply[1], 0x45);
    assert.equal((reply[2] << 8) | reply[3], 0x4242);
    assert.match(Buffer.from(reply).toString(), /t=\/time/);
    c.dtls.send(coapGetTime(0x4242)); // retransmitted CON
    const again = await nextMessage(c);
    assert.deepEqual(again, reply);
    assert.equal(handled, 1, 'answered from the response cache');
    app.close();
  });

  it('configuration errors have stable codes', () => {
    const { DtlsEndpoint } = addon();
    const code = (o: object) => {
      try {
        new DtlsEndpoint(o);
      } catch (e) {
        return `${(e as { code: string }).code}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    assert.match(code({ role: 'client', ca: pki.read('ca.pem') }), /^DTLS_CONFIG: hostname required/);
    assert.match(code({ role: 'client' }), /^DTLS_CONFIG/);
    assert.match(code({ role: 'client', ca: 'not a cert', hostname: 'localhost' }), /^DTLS_BAD_CA_FILE: bad CA file/);
    assert.match(
      code({ role: 'client', ca: pki.read('ca.pem'), hostname: 'localhost', cert: 'garbage', key: pki.read('device.key') }),
      /^DTLS_BAD_CERT_FILE: bad certificate file/,
    );
    assert.match(
      code({ role: 'client', ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: 'garbage' }),
      /^DTLS_BAD_KEY_FILE: bad key file/,
    );
    assert.match(
      code({ role: 'client', ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('server.key') }),
      /^DTLS_BAD_KEY_FILE: bad key file: the private key does not match/,
    );
    assert.match(code({ role: 'server', cert: pki.read('server.pem'), key: pki.read('server.key'), authMode: 'required' }), /^DTLS_CONFIG/);
    assert.equal(code({ role: 'client', ca: pki.read('ca.pem'), hostname: 'localhost' }), 'no error');
  });
});
