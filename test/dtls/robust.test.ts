/* Lost, garbage and truncated datagrams, through a UDP proxy between our client and our server. */
import assert from 'node:assert/strict';
import { DtlsServer } from '../../hardware/dtls/index';
import { nextMessage, openClient, sleep, testPki, UdpProxy, waitFor, type Client } from './helpers';

describe('dtls: robustness', function () {
  this.timeout(15000);
  const pki = testPki();
  let server: DtlsServer;
  let proxy: UdpProxy;
  let front: number;
  const clients: Client[] = [];
  const received: Buffer[] = [];

  beforeEach(async () => {
    server = new DtlsServer({ cert: pki.read('server.pem'), key: pki.read('server.key'), retransmitMs: 100 });
    const { port } = await server.listen(0, '127.0.0.1');
    received.length = 0;
    server.on('message', (m: Buffer, rinfo) => {
      received.push(m);
      server.send(m, 0, m.length, rinfo.port, rinfo.address);
    });
    proxy = new UdpProxy(port);
    front = await proxy.start();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.dtls.close();
    proxy.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  function client(extra = {}): Client {
    const c = openClient(front, { ca: pki.read('ca.pem'), hostname: 'localhost' }, { retransmitMs: 100, retransmitMaxMs: 3200, ...extra });
    clients.push(c);
    return c;
  }

  it('recovers from dropped handshake datagrams in both directions by retransmission', async () => {
    // Drop the first ClientHello, the server's first ServerHello..Done flight and the client's Finished flight.
    const droppedUp = new Set([1, 3]);
    const droppedDown = new Set([2]);
    proxy.filterToServer = (_d, i) => !droppedUp.has(i);
    proxy.filterToClient = (_d, i) => !droppedDown.has(i);
    const c = client();
    c.dtls.send(new TextEncoder().encode('through loss'));
    const reply = await nextMessage(c, 8000);
    assert.equal(Buffer.from(reply).toString(), 'through loss');
    assert.ok(proxy.toServer >= 5, `client retransmitted (${proxy.toServer} datagrams up)`);
    assert.equal(c.errors.length, 0);
  });

  it('ignores garbage and truncated records on both sides; the session keeps working', async () => {
    let lastAppRecordUp: Buffer | undefined;
    let lastAppRecordDown: Buffer | undefined;
    proxy.filterToServer = (d) => {
      if (d[0] === 23) lastAppRecordUp = Buffer.from(d);
      return true;
    };
    proxy.filterToClient = (d) => {
      if (d[0] === 23) lastAppRecordDown = Buffer.from(d);
      return true;
    };
    // Garbage before and during the handshake.
    const c = client();
    proxy.injectToServer(Buffer.from('definitely not DTLS'));
    await c.connected;
    c.dtls.send(new TextEncoder().encode('one'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'one');
    assert.ok(lastAppRecordUp && lastAppRecordDown);

    const garbage = [
      Buffer.alloc(0),
      Buffer.from([0x17]),
      Buffer.from([0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 50, 1, 2, 3]), // header claims more than present
      lastAppRecordUp.subarray(0, lastAppRecordUp.length - 5), // truncated real record
      Buffer.from(lastAppRecordUp.map((b, i) => (i === lastAppRecordUp!.length - 1 ? b ^ 0xff : b))), // bad tag
      lastAppRecordUp, // replay
      Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff)),
    ];
    for (const g of garbage) proxy.injectToServer(g);
    const down = lastAppRecordDown;
    for (const g of [down.subarray(0, 20), Buffer.from('junk'), down]) proxy.injectToClient(g);
    // and directly into the client's transport (the facade's receive path)
    c.udp.onReceive!(new Uint8Array([0x16, 0xfe, 0xfd, 0, 0]));
    await sleep(200);
    assert.equal(received.length, 1, 'no garbage decrypted at the server (and the replay was rejected)');
    assert.equal(c.received.length, 1, 'no garbage or replay decrypted at the client');
    assert.equal(c.errors.length, 0);
    assert.equal(c.dtls.state, 'connected');
    c.dtls.send(new TextEncoder().encode('two'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'two');
  });

  it('rehandshakes after the server forgets the session (close_notify from the server)', async () => {
    const c = client({ rehandshake: true, rehandshakeDelayMs: 50 });
    await c.connected;
    await waitFor<void>('server session', 3000, (r) => (server.stats.handshakes ? r() : server.once('session', () => r())));
    // The server ends its side of the session (sends close_notify and forgets it).
    assert.equal(server.peers.size, 1);
    assert.ok(server.closePeer('127.0.0.1', proxy.back.address().port));
    const err = await c.failed;
    assert.equal((err as { code?: string }).code, 'DTLS_CLOSE_NOTIFY');
    assert.match(err.message, /close_notify/);
    // The facade handshakes again by itself and data flows.
    await waitFor<void>('rehandshake', 5000, (r) => {
      const t = setInterval(() => {
        if (c.dtls.state === 'connected') {
          clearInterval(t);
          r();
        }
      }, 10);
    });
    assert.equal(c.dtls.handshakes, 2);
    c.dtls.send(new TextEncoder().encode('back'));
    assert.equal(Buffer.from(await nextMessage(c)).toString(), 'back');
  });
});
