/*
 * hardware/dtls/xs_binding.c run on XS (not only compiled): the `dtls/native` DtlsEndpoint of a
 * Moddable build, driven by test/xs/fixtures/dtls/main.js over a UDP socket against the local
 * endpoint's DTLS listener (tools/tb-server over the N-API build of the same dtls_core.c).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useEndpoint } from '../helpers/e2e';
import { makeTestPki } from '../../tools/provision/certs';
import { buildFirmware, ROOT, runFirmware } from '../../tools/xs/firmware';

describe('XS host: dtls/native (xs_binding.c) on XS', function () {
  this.timeout(30000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));

  it('takes string options, hands Uint8Array to JavaScript (onSend, read, saveSession, peerCertificate, saveContext), carries CoAP, restores a saved connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xs-dtls-'));
    try {
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({
          include: [join(ROOT, 'test/xs/fixtures/dtls/manifest.json')],
          config: { port: e2e.server.coapsPort, ca: 'ca.pem' },
          resources: { '*': [pki.path('ca.pem')] },
        }),
      );
      const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build') });
      const r = await runFirmware({ plan, wallLimitMs: 20000 });
      const output = [...r.trace, ...r.host].join('\n');
      assert.equal(r.code, 0, output);
      const line = r.trace.find((l) => l.startsWith('result '));
      assert.ok(line, output);
      const result = JSON.parse(line.slice(7));
      assert.equal(result.error, undefined, output);
      assert.equal(result.state, 'connected');
      assert.ok(result.sent.length >= 3, 'ClientHello, ClientHello with cookie, key exchange flight');
      assert.ok(result.sent.every((k: string) => k === 'Uint8Array'), `onSend records: ${result.sent}`);
      assert.equal(result.session, 'Uint8Array');
      assert.ok(result.sessionBytes > 0);
      assert.equal(result.peerCertificate, 'Uint8Array');
      assert.equal(result.peerCertificateDer, true, 'DER SEQUENCE');
      assert.equal(result.read, 'Uint8Array');
      // the server's answer to the CoAP ping (CON, empty, MID 0x1234), decrypted: an ACK or a Reset
      // with the same message ID (node-coap ACKs it with 4.04)
      const [b0, , mid0, mid1] = result.readBytes as number[];
      assert.ok(b0 === 0x60 || b0 === 0x70, `CoAP version 1, ACK or RST: ${result.readBytes}`);
      assert.deepEqual([mid0, mid1], [0x12, 0x34]);
      // saveContext / restore (deep sleep without a handshake) on XS
      assert.equal(result.context, 'Uint8Array');
      assert.ok(result.contextBytes > 150 && result.contextBytes < 400, `context ${result.contextBytes} B`);
      assert.equal(result.savedState, 'closed', 'the saving endpoint no longer holds the connection');
      assert.equal(result.damaged, 'DTLS_BAD_SESSION');
      assert.equal(result.restored, true);
      assert.equal(result.restoredState, 'connected');
      assert.equal(result.sent.length, result.sentBeforeRestoredWrite + 1, 'one record, no handshake');
      assert.deepEqual(result.restoredReadBytes.slice(2, 4), [0x12, 0x35], 'the second ping answered in the restored connection');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('survives destroy() called from inside onSend during a failing handshake, and still reports the error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xs-dtls-'));
    try {
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({
          include: [join(ROOT, 'test/xs/fixtures/dtls/manifest.json')],
          config: { port: e2e.server.coapsPort, ca: 'ca.pem', hostname: 'wrong.example', destroyOnSend: 3 },
          resources: { '*': [pki.path('ca.pem')] },
        }),
      );
      const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build') });
      const r = await runFirmware({ plan, wallLimitMs: 20000 });
      const output = [...r.trace, ...r.host].join('\n');
      assert.equal(r.code, 0, output);
      const line = r.trace.find((l) => l.startsWith('result '));
      assert.ok(line, output);
      const result = JSON.parse(line.slice(7));
      assert.equal(result.sent.length, 3, 'ClientHello, ClientHello with cookie, the fatal alert');
      assert.equal(result.destroyed, 'closed');
      assert.match(result.error, /^DTLS_HOSTNAME_MISMATCH: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
