/* src/ota/hash.ts on the XS engine (xsnap-worker): the same digests as on Node (docs/xs.md). */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import { scenario } from './xs-fixture';

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
