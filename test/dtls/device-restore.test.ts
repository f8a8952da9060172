/*
 * DeviceApp with the flash store (src/thingsboard/connect.ts wiring): before deep sleep the DTLS
 * connection goes to flash beside the session (saveDtlsContext); after a reboot it is restored from
 * the same address with no handshake, and cleared from flash before its first record; from a new
 * address the server does not answer it and the session is resumed instead.
 */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { openDeviceStorage } from '../../src/storage/index';
import { KEY_DTLS_CONTEXT } from '../../src/storage/session';
import { useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

describe('dtls: DeviceApp keeps its DTLS connection in flash across a reboot', function () {
  this.timeout(30000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));
  const dtls = { ca: pki.read('ca.pem'), hostname: 'localhost' };

  async function firstBoot(name: string) {
    const dev = e2e.server.store.createDevice(name);
    const flash = new MemFlash(20 * 4096, 4096);
    const first = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls, flash });
    await first.app.start();
    await waitFor('first report', () => first.app.state.reports >= 1);
    assert.equal(first.app.saveDtlsContext(), true, 'connection saved before sleep');
    assert.equal(first.app.dtls!.state, 'suspended');
    assert.ok(openDeviceStorage(flash).kv.has(KEY_DTLS_CONTEXT), 'context in flash');
    const localPort = first.udp.localPort;
    // Power off: nothing more leaves (stop() would deregister the observations, and a datagram sent
    // now would load the saved connection again, invalidating the flash copy as it should).
    first.app.dtls!.close();
    first.app.stop();
    assert.ok(openDeviceStorage(flash).kv.has(KEY_DTLS_CONTEXT), 'still in flash after power off');
    return { dev, flash, localPort };
  }

  it('restores it from the same address at the next boot: no handshake, cleared from flash, reports stored', async () => {
    const { dev, flash, localPort } = await firstBoot('dtls-restore');
    const handshakes = e2e.server.dtlsServer!.stats.handshakes;
    const log = memoryLog();
    const second = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls, flash, localPort, log });
    assert.equal(openDeviceStorage(flash).kv.has(KEY_DTLS_CONTEXT), false, 'cleared before the first record');
    await second.app.start();
    await waitFor('second report', () => second.app.state.reports >= 1);
    await waitFor('restore confirmed', () => second.app.dtls!.stats.restored === 1).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(second.app.dtls!.stats)} ${second.app.dtls!.path} ${log.lines.join('\n')}`); });
    assert.equal(second.app.dtls!.path, 'restored');
    assert.equal(e2e.server.dtlsServer!.stats.handshakes, handshakes, 'no handshake');
    assert.ok(log.lines.some((l) => l.includes('DTLS session established (restored: no handshake)')), log.lines.join('\n'));
    assert.equal((e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? []).length, 2);
    second.app.stop();
  });

  it('from a new address the restored connection gets no answer: the session in flash is resumed', async () => {
    const { dev, flash } = await firstBoot('dtls-restore-nat');
    const second = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls, flash });
    await second.app.start();
    await waitFor('second report', () => second.app.state.reports >= 1, 20000);
    assert.equal(second.app.dtls!.path, 'resumed');
    assert.equal(second.app.dtls!.stats.restoreFallbacks, 1);
    assert.equal((e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? []).length, 2);
    second.app.stop();
  });
});
