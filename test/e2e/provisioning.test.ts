/*
 * Network provisioning against the local endpoint (real UDP): a device whose flash holds only a
 * provisioning key/secret gets its access token from POST /api/v1/provision, keeps it in flash,
 * and does not provision again after a reboot. A lost provisioning response is survived (the
 * token was chosen and saved by the device first); a wrong secret stops the device, clearly.
 */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { securityFromFlash } from '../../tools/sim/device';
import type { SimDevice } from '../../tools/sim/device';
import { openDeviceStorage } from '../../src/storage/index';
import { useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

const KEY = 'prov-key-123';
const SECRET = 'prov-secret-456';
const FAST = { ackTimeout: 100, ackRandomFactor: 1, maxRetransmit: 2, responseTimeout: 400 };

describe('e2e: network provisioning with the token chosen and saved by the device', function () {
  this.timeout(30000);
  const e2e = useEndpoint();

  function provisionedFlash(secret = SECRET): MemFlash {
    const flash = new MemFlash(20 * 4096, 4096);
    openDeviceStorage(flash).credentials.save({ server: `coap://127.0.0.1:${e2e.server.coapPort}`, provisionKey: KEY, provisionSecret: secret });
    return flash;
  }

  function boot(flash: MemFlash, log = memoryLog()): SimDevice {
    const security = securityFromFlash(flash, log);
    assert.ok(security, log.lines.join('\n'));
    return e2e.device({ ...security, flash, deviceName: 'prov-e2e', log, reportingIntervalMs: 1000, transmission: FAST });
  }

  it('provisions, reports under the new device, keeps the token in flash and does not provision again after a reboot', async () => {
    e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const flash = provisionedFlash();
    const log = memoryLog();
    const d = boot(flash, log);
    await d.app.start();
    const dev = e2e.server.store.findDevice('prov-e2e');
    assert.ok(dev, 'device created by provisioning');
    await waitFor('telemetry under the provisioned device', () => e2e.server.store.latestTelemetry(dev.id).temperature);
    const stored = openDeviceStorage(flash).credentials.load();
    assert.equal(stored.token, dev.token, 'the token in flash is the one the server knows');
    assert.equal(stored.provisionState, 'done');
    const text = log.lines.join('\n');
    assert.match(text, /provisioned as prov-e2e: access token saved in flash \(not shown\)/);
    assert.ok(!text.includes(dev.token) && !text.includes(SECRET), 'no secret in the log');
    d.app.stop();
    // Reboot: no second provisioning (ThingsBoard would refuse it), the stored token is used.
    const log2 = memoryLog();
    const again = boot(flash, log2);
    await again.app.start();
    assert.equal(again.app.tb.stopped, undefined);
    const before = e2e.server.store.telemetry(dev.id, ['temperature']).temperature!.length;
    await new Promise((r) => setTimeout(r, 5));
    await again.app.reportNow();
    assert.ok(e2e.server.store.telemetry(dev.id, ['temperature']).temperature!.length > before);
    assert.ok(!log2.lines.some((l) => /provision/.test(l) && !/credentials loaded/.test(l)), log2.lines.join('\n'));
  });

  it('survives a lost provisioning response: the saved token is tried and confirmed', async () => {
    e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const flash = provisionedFlash();
    const log = memoryLog();
    const d = boot(flash, log);
    d.udp.faults = { dropInIndexes: [1, 2, 3, 4] }; // the provisioning answer (and its repeats) never arrives
    await d.app.start();
    assert.equal(openDeviceStorage(flash).credentials.load().provisionState, 'pending', 'token saved before asking');
    const dev = await waitFor('device created at the server', () => e2e.server.store.findDevice('prov-e2e'));
    await waitFor('telemetry after the retry', () => e2e.server.store.latestTelemetry(dev.id).temperature, 10000);
    await waitFor('confirmed in flash', () => openDeviceStorage(flash).credentials.load().provisionState === 'done');
    assert.equal(openDeviceStorage(flash).credentials.load().token, dev.token);
    assert.match(log.lines.join('\n'), /trying the access token saved by an earlier attempt/);
    assert.match(log.lines.join('\n'), /provisioning confirmed/);
  });

  it('a wrong secret stops the device with a clear reason and no secret in the log', async () => {
    e2e.server.store.addProfile({ key: KEY, secret: SECRET, strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const log = memoryLog();
    const d = boot(provisionedFlash('wrong-secret-789'), log);
    await d.app.start();
    assert.match(d.app.tb.stopped?.message ?? '', /provisioning refused: .*NOT_FOUND/);
    assert.ok(!log.lines.join('\n').includes('wrong-secret-789'));
    assert.equal(d.app.state.queued, 1, 'the reading is kept');
  });
});
