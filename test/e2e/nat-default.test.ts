/*
 * Defaults that keep a device reachable behind a NAT, against the local endpoint over real UDP:
 * the device clock is a ManualClock (device time jumps, the network runs in wall time).
 * With default settings, after the NAT maps the device to a new port, shared-attribute updates
 * reach the device again after its next report (OBSERVE_REFRESH_MS), instead of never.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { OBSERVE_REFRESH_MS } from '../../src/device/app';
import { admin, useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';

describe('e2e: NAT rebinding with default settings (real UDP, device on a ManualClock)', function () {
  this.timeout(30000);
  const e2e = useEndpoint();

  it('shared-attribute updates reach the device again after its NAT mapping changed, with no observeRefreshMs set', async () => {
    const dev = e2e.server.store.createDevice('nat-default');
    const clock = new ManualClock(0, Date.now());
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token }, clock, reportingIntervalMs: 60_000 });
    await d.app.start();
    const setShared = (v: number) => admin(e2e.server, 'POST', '/api/devices/nat-default/attributes/shared', { reportingInterval: v });
    await setShared(100);
    await waitFor('update before the rebinding', () => d.app.intervalMs === 100_000);
    // A minute of silence: the NAT forgets the mapping; the next datagram leaves from a new port.
    d.udp.rebind();
    await setShared(200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(d.app.intervalMs, 100_000, 'the notification went to the old mapping');
    assert.ok(100_000 > OBSERVE_REFRESH_MS);
    const reports = d.app.state.reports;
    clock.advance(100_000); // the next reading, and its report, after > OBSERVE_REFRESH_MS of silence
    await waitFor('report after the silence', () => d.app.state.reports > reports);
    await waitFor('snapshot after the default re-registration', () => d.app.intervalMs === 200_000);
    await setShared(300);
    await waitFor('updates flow again', () => d.app.intervalMs === 300_000);
  });
});
