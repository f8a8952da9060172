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
  this.timeout(40000);
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

  it('a wrong secret is reported clearly and retried with a doubling back-off (no secret in the log); once the profile exists it provisions', async () => {
    const log = memoryLog();
    const flash = provisionedFlash('wrong-secret-789');
    const security = securityFromFlash(flash, log)!;
    const d = e2e.device({ ...security, flash, log, reportingIntervalMs: 100, transmission: FAST, deviceName: 'prov-e2e', provisionRetryMs: { first: 1500, max: 3000 } });
    await d.app.start();
    assert.equal(d.app.tb.stopped, undefined, 'not stopped: retried later');
    await new Promise((r) => setTimeout(r, 4500));
    const refusals = log.lines.filter((l) => /provisioning refused: the server does not know this provisioning key\/secret \(NOT_FOUND\); next attempt in/.test(l));
    // readings every second (0..4 s); attempts at 0 and 2 s (waits 1.5 s, then 3 s): not one per reading
    assert.equal(refusals.length, 2, `${refusals.length} attempts in 4.5 s:\n${log.lines.join('\n')}`);
    assert.ok(d.app.state.queued >= 4, `readings kept (${d.app.state.queued})`);
    assert.ok(!log.lines.join('\n').includes('wrong-secret-789'));
    // the profile appears with this secret: the next attempt succeeds and the queue drains
    e2e.server.store.addProfile({ key: KEY, secret: 'wrong-secret-789', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const dev = await waitFor('device provisioned after the back-off', () => e2e.server.store.findDevice('prov-e2e'), 5000);
    await waitFor('telemetry under it', () => e2e.server.store.latestTelemetry(dev.id).temperature, 5000);
  });
});
