/* The storage code runs on the XS engine (frozen built-ins, no Node) with the same results as on Node. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import { scenario } from './xs-fixture';

describe('storage on XS (xsnap-worker)', function () {
  this.timeout(60000);

  it('key/value store, queue ring, credentials and typed errors behave on XS as on Node', async () => {
    assertWorker();
    const { code } = await bundle(path.join(__dirname, 'xs-fixture.ts'));
    const run = await runOnXs<Outcome<ReturnType<typeof scenario>>>(code, { timeoutMs: 30000 });
    if (!run.value.ok) assert.fail(`threw on XS: ${run.value.error?.name}: ${run.value.error?.message}\n${run.value.error?.stack ?? ''}`);
    const xs = run.value.value!;
    const node = JSON.parse(JSON.stringify(scenario())) as typeof xs;
    assert.deepEqual(xs, node);
    assert.equal(xs.token, 'tok-2');
    assert.equal(xs.interval, 12);
    assert.deepEqual(xs.errors, ['CredentialsError invalid token true', 'StorageError too-large true']);
    assert.ok(xs.dropped > 0 && xs.queued > 0, `dropped ${xs.dropped}, queued ${xs.queued}`);
    assert.equal(xs.first[0]!.values.s, 'é');
  });
});
