/*
 * Our DTLS client against libcoap's GnuTLS server (a second, independent TLS stack), where it
 * applies: one-way certificate, PSK, and refusing a server signed by another CA. (GnuTLS's
 * coap-server never resumes sessions, so resumption is tested against OpenSSL and our server.)
 */
import assert from 'node:assert/strict';
import type { DtlsError } from '../../src/dtls';
import { coapGetTime, expectTime, testPki, useLibcoapServer } from './helpers';

const GNUTLS = 'coap-server-gnutls';

describe('dtls: ours -> coap-server-gnutls (libcoap over GnuTLS)', function () {
  this.timeout(20000);
  const pki = testPki();
  const libcoap = useLibcoapServer(GNUTLS);
  const client = libcoap.client;


  it('one-way certificate: verifies the CA and hostname, GET /time -> 2.05', async () => {
    await libcoap.start(['-c', 'server.pem', '-j', 'server.key']);
    const c = client({ ca: pki.read('ca.pem'), hostname: 'localhost' });
    await expectTime(c, 0x2001);
    assert.equal(c.dtls.state, 'connected');
  });

  it('PSK: -k secretPSK with an identity -> 2.05', async () => {
    await libcoap.start(['-k', 'secretPSK']);
    const c = client({ psk: 'secretPSK', pskIdentity: 'Client_identity' });
    await expectTime(c, 0x2002);
  });

  it('a GnuTLS server with a certificate from another CA is refused before any data', async () => {
    await libcoap.start(['-c', 'rogue-server.pem', '-j', 'rogue-server.key']);
    const c = client({ ca: pki.read('ca.pem'), hostname: 'localhost' });
    c.dtls.send(coapGetTime(0x2003));
    const err = (await c.failed) as DtlsError;
    assert.equal(err.code, 'DTLS_UNKNOWN_CA', err.message);
    assert.equal(c.received.length, 0);
  });
});
