/*
 * The local endpoint's X509_CERTIFICATE provisioning, as ThingsBoard: the `hash` (the certificate's
 * base64 DER, or its PEM) is stored trimmed and registered by SHA3-256 hex of that; the reply carries
 * the trimmed certificate; a certificate registered to another device is FAILURE and creates nothing;
 * an empty hash gets the default (access token) credentials. The CoAP and the MQTT endpoint share
 * the rules (store.ts provisionDevice).
 */
import { strict as assert } from 'node:assert';
import { createHash, X509Certificate } from 'node:crypto';
import { makeTestPki } from '../../tools/provision/certs';
import { Client, startTemp } from './helpers';

type Tb = Awaited<ReturnType<typeof startTemp>>;

describe('tb-server: provisioning with X509_CERTIFICATE', () => {
  let tb: Tb;
  let c: Client;
  const pki = makeTestPki();
  const pem = pki.read('device.pem').toString();
  const b64 = new X509Certificate(pem).raw.toString('base64');
  const sha3 = createHash('sha3-256').update(b64).digest('hex');

  before(async () => {
    tb = await startTemp();
    tb.store.addProfile({ key: 'xk', secret: 'xs', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    c = new Client(tb.coapPort);
  });
  after(async () => {
    await c.close();
    await tb.close();
  });

  const provision = (body: object) => c.request({ method: 'POST', pathname: '/api/v1/provision', payload: JSON.stringify({ provisionDeviceKey: 'xk', provisionDeviceSecret: 'xs', ...body }) });

  it('registers the certificate by SHA3-256 of its base64 DER and answers with the trimmed certificate', async () => {
    // sent as PEM with line breaks: stored and answered trimmed (EncryptionUtil.certTrimNewLines)
    const r = await provision({ deviceName: 'x509-a', credentialsType: 'X509_CERTIFICATE', hash: pem });
    assert.equal(r.code, '2.01');
    assert.deepEqual(r.json, { credentialsValue: b64, credentialsType: 'X509_CERTIFICATE', status: 'SUCCESS' });
    const dev = tb.store.findDevice('x509-a')!;
    assert.equal(dev.certSha3, sha3);
    assert.equal(tb.store.byCertSha3(sha3), dev);
  });

  it('a certificate registered to another device is FAILURE, and no device is created', async () => {
    const r = await provision({ deviceName: 'x509-b', credentialsType: 'X509_CERTIFICATE', hash: b64 });
    assert.equal(r.code, '4.00');
    assert.deepEqual(r.json, { errorMsg: 'Failed to provision device!', status: 'FAILURE' });
    assert.equal(tb.store.findDevice('x509-b'), undefined);
    // the same name again: FAILURE as for tokens
    assert.equal(((await provision({ deviceName: 'x509-a', credentialsType: 'X509_CERTIFICATE', hash: b64 })).json as { status: string }).status, 'FAILURE');
  });

  it('X509_CERTIFICATE with no hash gets the default credentials: a generated access token', async () => {
    const r = await provision({ deviceName: 'x509-c', credentialsType: 'X509_CERTIFICATE' });
    assert.equal(r.code, '2.01');
    const body = r.json as { credentialsType: string; credentialsValue: string };
    assert.equal(body.credentialsType, 'ACCESS_TOKEN');
    assert.equal(tb.store.findDevice('x509-c')!.token, body.credentialsValue);
    assert.equal(tb.store.findDevice('x509-c')!.certSha3, undefined);
  });
});
