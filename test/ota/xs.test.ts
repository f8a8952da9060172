/* src/ota/hash.ts on the XS engine (xsnap-worker): the same digests as on Node (docs/xs.md). */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import { scenario } from './xs-fixture';
import { scenario as agentScenario } from './xs-agent-fixture';

describe('ota checksums on XS', function () {
  this.timeout(90_000);

  it('every algorithm gives the digests it gives on Node (whole and in 100-byte pieces), no Node API in the bundle', async () => {
    assertWorker();
    const { code, inputs } = await bundle(path.join(__dirname, 'xs-fixture.ts'));
    assert.ok(inputs.some((i) => i.endsWith('src/ota/hash.ts')));
    const run = await runOnXs<Outcome<Record<string, string[]>>>(code, { timeoutMs: 60_000 });
    assert.ok(run.value.ok, `threw on XS: ${run.value.error?.message}\n${run.value.error?.stack ?? ''}`);
    assert.deepEqual(run.value.value, scenario());
  });
});

describe('ota agent on XS', function () {
  this.timeout(90_000);

  it('download with a power cut mid-chunk, resume, verify, switch, UPDATED: the same on XS as on Node', async () => {
    assertWorker();
    const node = await agentScenario();
    assert.deepEqual(node.states, ['DOWNLOADING', 'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED']);
    assert.deepEqual(node.requests, [0, 1, 2, 3, 4, 5, 5, 6, 7, 8], 'resumed at the torn chunk 5, not at 0');
    assert.equal(node.booted, '2');
    const { code } = await bundle(path.join(__dirname, 'xs-agent-fixture.ts'));
    const run = await runOnXs<Outcome<typeof node>>(code, { timeoutMs: 60_000 });
    assert.ok(run.value.ok, `threw on XS: ${run.value.error?.message}\n${run.value.error?.stack ?? ''}\n${run.output}`);
    assert.deepEqual(run.value.value, JSON.parse(JSON.stringify(node)));
  });
});
