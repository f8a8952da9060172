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
