/*
 * The DTLS session kept in flash across a reboot (src/storage/session.ts): the next boot resumes
 * with an abbreviated handshake.
 */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { openDeviceStorage } from '../../src/storage/index';
import { useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';

describe('e2e: DTLS session kept in flash across a reboot', function () {
  this.timeout(30000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));

  it('saves the session after the handshake and resumes it at the next boot', async () => {
    const dev = e2e.server.store.createDevice('dtls-flash');
    const flash = new MemFlash(20 * 4096, 4096);
    const dtls = { ca: pki.read('ca.pem'), hostname: 'localhost' };
    const first = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls, flash });
    await first.app.start();
    await waitFor('first report', () => first.app.state.reports >= 1);
    assert.equal(first.app.dtls!.resumed, false);
    assert.ok(openDeviceStorage(flash).kv.has(3), 'session in flash');
    first.app.stop();
    const second = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls, flash });
    await second.app.start();
    await waitFor('second report', () => second.app.state.reports >= 1);
    assert.equal(second.app.dtls!.resumed, true, 'abbreviated handshake from the session in flash');
    second.app.stop();
  });
});
