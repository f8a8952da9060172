/* The modem and power code runs on the XS engine (frozen built-ins, no Node) with the same results as on Node. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import { scenario } from './xs-fixture';

describe('modem and power code on XS (xsnap-worker)', function () {
  this.timeout(60000);

  it('timer tables, AT channel, +CEREG and the T3324 check behave on XS as on Node', async () => {
    assertWorker();
    const { code } = await bundle(path.join(__dirname, 'xs-fixture.ts'));
    const run = await runOnXs<Outcome<Awaited<ReturnType<typeof scenario>>>>(code, { timeoutMs: 30000 });
    if (!run.value.ok) assert.fail(`threw on XS: ${run.value.error?.name}: ${run.value.error?.message}\n${run.value.error?.stack ?? ''}`);
    const xs = run.value.value!;
    const node = JSON.parse(JSON.stringify(await scenario())) as typeof xs;
    assert.deepEqual(xs, node);
    assert.deepEqual(xs.results[1], [0x40, 13, 10, 79, 75, 13]);
    assert.equal(xs.results[2], 'AtError cme 30 true');
    assert.deepEqual(xs.results.slice(3), ['timeout', 'reboot']);
    assert.equal(xs.reg.activeTimeS, 10);
    assert.equal(xs.reg.periodicTauS, 3600);
  });
});
