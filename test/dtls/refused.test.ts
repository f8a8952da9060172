/* Handshakes that must fail, with the stable code and a clear message, and no data leaking out. */
import assert from 'node:assert/strict';
import { DtlsServer } from '../../hardware/dtls/index';
import type { DtlsError } from '../../src/dtls';
import { testPki, usePeers, waitFor, type Client } from './helpers';

describe('dtls: refused handshakes', function () {
  this.timeout(15000);
  const pki = testPki();
  const peers = usePeers();

  /** A server that records what it decrypted and which handshakes failed. */
  async function server(cert: string, key: string, opts: object = {}): Promise<{ s: DtlsServer; port: number; messages: Buffer[]; errors: DtlsError[] }> {
    const { s, port } = await peers.server({ cert: pki.read(cert), key: pki.read(key), ...opts });
    const messages: Buffer[] = [];
    const errors: DtlsError[] = [];
    s.on('message', (m: Buffer) => messages.push(m));
    s.on('handshakeError', (e: DtlsError) => errors.push(e));
    return { s, port, messages, errors };
  }

  function client(port: number, engine: Parameters<typeof peers.client>[1]): Client {
    const c = peers.client(port, engine);
    c.dtls.send(new TextEncoder().encode('secret telemetry')); // queued: must never reach the server
    return c;
  }

  it('unknown CA: server certificate from a rogue CA; nothing reaches the server', async () => {
    const srv = await server('rogue-server.pem', 'rogue-server.key');
    const c = client(srv.port, { ca: pki.read('ca.pem'), hostname: 'localhost' });
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_UNKNOWN_CA');
    assert.match(err.message, /unknown CA: server certificate not signed by the configured CA root/);
    // The server learns why (alert unknown_ca) and no application record ever arrived.
    const serr = await waitFor<DtlsError>('server handshakeError', 3000, (r) => {
      if (srv.errors.length) r(srv.errors[0]);
      else srv.s.once('handshakeError', r);
    });
    assert.equal(serr.code, 'DTLS_FATAL_ALERT');
    assert.equal(serr.alert, 48);
    assert.equal(srv.messages.length, 0);
    assert.equal(srv.s.stats.messages, 0);
    assert.equal(srv.s.stats.handshakes, 0);
    assert.equal(c.dtls.state, 'failed');
  });

  it('hostname mismatch: says to use a DNS name such as localhost', async () => {
    const srv = await server('server.pem', 'server.key');
    const c = client(srv.port, { ca: pki.read('ca.pem'), hostname: '127.0.0.1' });
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_HOSTNAME_MISMATCH');
    assert.match(err.message, /"127\.0\.0\.1".*use a DNS name such as localhost/);
    const other = client(srv.port, { ca: pki.read('ca.pem'), hostname: 'other.example' });
    assert.equal(((await other.failed) as DtlsError).code, 'DTLS_HOSTNAME_MISMATCH');
    assert.equal(srv.messages.length, 0);
  });

  it('expired server certificate', async () => {
    const srv = await server('server-expired.pem', 'server-expired.key');
    const c = client(srv.port, { ca: pki.read('ca.pem'), hostname: 'localhost' });
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_CERT_EXPIRED');
    assert.match(err.message, /expired/);
    assert.equal(srv.messages.length, 0);
  });

  it('no client certificate to a server that requires one: both sides fail with clear codes', async () => {
    const srv = await server('server.pem', 'server.key', { ca: pki.read('ca.pem'), authMode: 'required' });
    const c = client(srv.port, { ca: pki.read('ca.pem'), hostname: 'localhost' });
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_FATAL_ALERT');
    assert.match(err.message, /handshake_failure \(40\).*require a client certificate/);
    assert.equal(srv.errors[0]?.code, 'DTLS_NO_CLIENT_CERT');
    assert.equal(srv.messages.length, 0);
  });

  it('client certificate from a rogue CA is rejected by the server', async () => {
    const srv = await server('server.pem', 'server.key', { ca: pki.read('ca.pem'), authMode: 'required' });
    const c = client(srv.port, { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('rogue-device.pem'), key: pki.read('rogue-device.key') });
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_FATAL_ALERT');
    assert.match(err.message, /unknown_ca|bad_certificate/);
    assert.equal(srv.errors[0]?.code, 'DTLS_UNKNOWN_CA');
    assert.match(srv.errors[0].message, /client certificate not signed/);
    assert.equal(srv.messages.length, 0);
  });

  it('handshake timeout when nobody answers (short retransmission schedule)', async () => {
    const dgram = await import('node:dgram');
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    let hellos = 0;
    sink.on('message', () => hellos++);
    try {
      const c = peers.client(sink.address().port, { ca: pki.read('ca.pem'), hostname: 'localhost' }, { retransmitMs: 50, retransmitMaxMs: 400 });
      const err = (await c.failed) as DtlsError;
      assert.equal(err.code, 'DTLS_HANDSHAKE_TIMEOUT');
      assert.equal(hellos, 4, 'ClientHello + 3 retransmissions (waits 50, 100, 200, 400 ms; 800 > max: give up)');
    } finally {
      sink.close();
    }
  });
});
