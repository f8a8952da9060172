// CI run of the fuzzers (tools/fuzz) at small counts, with a fixed seed plus one that changes per
// run (printed, so a failure is reproducible with `npm run fuzz -- --seed N`).
import { strict as assert } from 'node:assert';
import { QUICK, runFuzz } from '../../tools/fuzz/cli';

const seeds = [0x14c0ffee, (Date.now() >>> 0) || 1];

describe('fuzz (tools/fuzz, small counts)', () => {
  for (const seed of seeds) {
    it(`codec, client and endpoint with seed ${seed}`, async function () {
      this.timeout(120_000);
      const lines: string[] = [];
      const results = await runFuzz({ seed, counts: QUICK, timeLimitS: 100, log: (l) => lines.push(l) });
      const failures = results.flatMap((r) => r.failures);
      assert.equal(failures.length, 0, lines.join('\n'));
      for (const r of results) assert.equal(r.ran, r.requested, `${r.target} stopped early: ${lines.join('\n')}`);
    });
  }
});
