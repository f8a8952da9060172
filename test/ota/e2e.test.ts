/*
 * Firmware update end to end in the simulator: the firmware (DeviceApp + OtaAgent) against the local
 * endpoint over real UDP on loopback, with A/B slots and a storage flash.
 */
import { strict as assert } from 'node:assert';
import { useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';
import { assign, FACTORY, fwStates, image, otaRig, upload } from './helpers';

describe('ota e2e: download, verify, switch, confirm', function () {
  this.timeout(60_000);
  const e2e = useEndpoint();
  const rigs: { sim: { stop(): void } }[] = [];
  afterEach(() => {
    for (const r of rigs.splice(0)) r.sim.stop();
  });

  it('updates to an assigned package: fw_state DOWNLOADING..UPDATED, current_fw_version, identical image', async () => {
    const rig = await otaRig(e2e, 'ota-ok');
    rigs.push(rig);
    const pkg = image(40 * 1024 + 123);
    await upload(e2e, FACTORY.title, '1.1.0', pkg, 'SHA256');
    await assign(e2e, 'ota-ok', FACTORY.title, '1.1.0');
    await waitFor('update confirmed', () => rig.slots.running().version === '1.1.0' && !rig.slots.running().trial, 40_000);
    assert.deepEqual(Buffer.from(rig.slots.runningImage()), pkg, 'the booted image is the package byte for byte');
    const history = await fwStates(e2e, 'ota-ok');
    const seq = history.map((h) => h.fw_state);
    assert.deepEqual(seq.filter((s) => s !== 'QUEUED'), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED'], seq.join(' '));
    assert.equal(history.at(-1)!.current_fw_version, '1.1.0');
    const latest = e2e.server.store.latestTelemetry(rig.deviceId);
    assert.equal(latest.current_fw_title!.value, FACTORY.title);
    assert.deepEqual(rig.slots.history, ['A 1.0.0', 'B 1.1.0 trial 1']);
    assert.equal(rig.sim.agent.stats.timeouts, 0);
  });
});

describe('ota e2e: failures and faults', function () {
  this.timeout(90_000);
  const e2e = useEndpoint();
  const rigs: { sim: { stop(): void } }[] = [];
  afterEach(() => {
    for (const r of rigs.splice(0)) r.sim.stop();
  });

  it('wrong checksum: FAILED with fw_error on the server, no switch, the old image boots again', async () => {
    const rig = await otaRig(e2e, 'ota-bad-sum');
    rigs.push(rig);
    const pkg = image(9000);
    await upload(e2e, FACTORY.title, '1.2.0', pkg, 'CRC32', '00000000');
    await assign(e2e, 'ota-bad-sum', FACTORY.title, '1.2.0');
    await waitFor('FAILED reported', () => {
      const t = e2e.server.store.latestTelemetry(rig.deviceId);
      return t.fw_state?.value === 'FAILED' ? t : undefined;
    }, 30_000);
    const t = e2e.server.store.latestTelemetry(rig.deviceId);
    assert.match(String(t.fw_error!.value), /checksum mismatch \(CRC32\): expected 00000000/);
    await rig.sim.reboot();
    assert.deepEqual(rig.slots.history, ['A 1.0.0', 'A 1.0.0']);
    assert.equal(rig.slots.running().version, '1.0.0');
    await waitFor('the failed package is not fetched again after the reboot', () => rig.log.lines.some((l) => l.includes('failed before')), 20_000);
  });

  it('an image that never reaches the server is rolled back after 3 boots, and the old image reports FAILED', async () => {
    const rig = await otaRig(e2e, 'ota-rollback', {
      // the new image's network does not work (a port where nothing answers)
      perImage: (img) => (img.version === '2.0.0' ? { server: { host: '127.0.0.1', port: 9 } } : {}),
      otaOptions: { trialTimeoutMs: 20_000 },
    });
    rigs.push(rig);
    await upload(e2e, FACTORY.title, '2.0.0', image(5000), 'MD5');
    await assign(e2e, 'ota-rollback', FACTORY.title, '2.0.0');
    await waitFor('rolled back and FAILED reported', () => {
      const t = e2e.server.store.latestTelemetry(rig.deviceId);
      return t.fw_state?.value === 'FAILED' ? t : undefined;
    }, 60_000);
    assert.deepEqual(rig.slots.history, ['A 1.0.0', 'B 2.0.0 trial 1', 'B 2.0.0 trial 2', 'B 2.0.0 trial 3', 'A 1.0.0']);
    const t = e2e.server.store.latestTelemetry(rig.deviceId);
    assert.match(String(t.fw_error!.value), /rolled back to 1\.0\.0: 2\.0\.0 did not reach the server/);
    assert.equal(rig.slots.running().version, '1.0.0');
    assert.ok(!('current_fw_version' in t) || t.current_fw_version!.value !== '2.0.0');
  });

  it('20 % loss each way during the download: updated, image identical', async () => {
    const rig = await otaRig(e2e, 'ota-loss', {
      onBoot: ({ device }) => {
        let x = 7;
        device.udp.faults = { lossIn: 0.2, lossOut: 0.2, random: () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) };
      },
    });
    rigs.push(rig);
    const pkg = image(30_000);
    await upload(e2e, FACTORY.title, '1.3.0', pkg, 'MURMUR3_128');
    await assign(e2e, 'ota-loss', FACTORY.title, '1.3.0');
    await waitFor('update confirmed', () => rig.slots.running().version === '1.3.0' && !rig.slots.running().trial, 80_000);
    assert.deepEqual(Buffer.from(rig.slots.runningImage()), pkg);
    const seq = (await fwStates(e2e, 'ota-loss')).map((h) => h.fw_state);
    assert.equal(seq.at(-1), 'UPDATED');
    assert.ok(!seq.includes('FAILED'));
  });
});
