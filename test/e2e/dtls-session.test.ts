/*
 * The DTLS session kept in flash across a reboot (src/storage/session.ts): the next boot resumes
 * with an abbreviated handshake.
 */
import { strict as assert } from 'node:assert';
import { MemFlash } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { openDeviceStorage } from '../../src/storage/index';
import { useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

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

  it('a queued batch larger than the transport takes at send time is split, not retried whole forever (issue 14 item 6)', async () => {
    // The soak's stall: a batch sized before a resumption went out as one datagram larger than the
    // new session's record; every retransmission was refused. Here the DTLS transport refuses every
    // datagram over 400 bytes while still reporting its usual limit (~990), as a record limit that
    // dropped after the request was built does: only the app's reaction can get the batch through.
    const dev = e2e.server.store.createDevice('dtls-split');
    const flash = new MemFlash(20 * 4096, 4096);
    const queued = openDeviceStorage(flash).queue;
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 12; i++) queued.push({ ts: t0 + i * 60_000, values: { temperature: 20 + i / 10, humidity: 40 + i / 10 } });
    const log = memoryLog();
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token }, dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' }, flash, log, reportingIntervalMs: 3_600_000, speed: 1 });
    const dtls = d.app.dtls!;
    const send = dtls.send.bind(dtls);
    let refused = 0;
    dtls.send = (data: Uint8Array) => {
      if (data.length <= 400) return send(data);
      refused++;
      dtls.onError?.(Object.assign(new Error(`datagram of ${data.length} bytes larger than one DTLS record`), { code: 'DTLS_TOO_LONG', datagram: data, mtu: dtls.mtu }));
    };
    const failures: string[] = [];
    d.app.onEvent = (e) => {
      if (e.type === 'report-failed') failures.push(e.error);
    };
    await d.app.start();
    const stored = () => (e2e.server.store.telemetry(dev.id, ['temperature']).temperature ?? []).length;
    await waitFor('the 12 queued readings and the boot reading stored', () => stored() >= 13 && d.app.state.queued === 0, 15_000);
    assert.ok(refused >= 1, 'the whole batch was refused');
    assert.deepEqual(failures, [], 'no failed report: the batch was split at once');
    assert.ok(log.lines.some((l) => /at a time/.test(l)), log.lines.join('\n'));
    assert.equal(stored(), 13, 'each reading once');
    d.app.stop();
  });
});
