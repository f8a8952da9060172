/*
 * npm run fuzz -- [--seed N] [--codec N] [--client N] [--endpoint N] [--time-limit S] [--only codec|client|endpoint] [--case I] [--quick]
 *
 * Runs the three fuzzers (tools/fuzz/codec.ts, client.ts, endpoint.ts), each bounded by its count
 * and all together by the time limit. Prints the seed; a failure is reproduced with the same seed
 * (and, for codec/client, `--only <target> --case <index>` runs just that case). Exit code 1 on any
 * failure. Full counts: 1,000,000 codec datagrams, 20,000 client cases, 50,000 junk datagrams.
 */
import { fuzzClient } from './client';
import { fuzzCodec } from './codec';
import { fuzzEndpoint } from './endpoint';
import type { FuzzResult } from './rng';

export const FULL = { codec: 1_000_000, client: 20_000, endpoint: 50_000 };
export const QUICK = { codec: 50_000, client: 1_000, endpoint: 3_000 };

export async function runFuzz(o: { seed: number; counts: { codec: number; client: number; endpoint: number }; timeLimitS: number; only?: string; onlyCase?: number; log: (l: string) => void }): Promise<FuzzResult[]> {
  const deadline = Date.now() + o.timeLimitS * 1000;
  const results: FuzzResult[] = [];
  const want = (t: string): boolean => !o.only || o.only === t;
  const report = (r: FuzzResult): void => {
    const figures = r.figures ? ' ' + Object.entries(r.figures).map(([k, v]) => `${k}=${v}`).join(' ') : '';
    o.log(`fuzz ${r.target}: seed ${r.seed}: ${r.ran}/${r.requested} in ${(r.ms / 1000).toFixed(1)} s, ${r.failures.length} failures${figures}`);
    for (const f of r.failures) {
      o.log(`  FAIL ${f.target} seed ${f.seed}${f.index >= 0 ? ` case ${f.index}` : ''}: ${f.message}`);
      o.log(`    reproduce: npm run fuzz -- --only ${f.target} --seed ${f.seed}${f.index >= 0 ? ` --case ${f.index}` : ` --endpoint ${r.requested}`}`);
    }
    results.push(r);
  };
  o.log(`fuzz: seed ${o.seed}, time limit ${o.timeLimitS} s`);
  if (want('codec') && o.counts.codec > 0) report(fuzzCodec({ count: o.counts.codec, seed: o.seed, deadline, onlyCase: o.onlyCase }));
  if (want('client') && o.counts.client > 0) report(await fuzzClient({ count: o.counts.client, seed: o.seed, deadline, onlyCase: o.onlyCase }));
  if (want('endpoint') && o.counts.endpoint > 0) {
    const t0 = Date.now();
    report(await fuzzEndpoint({ count: o.counts.endpoint, seed: o.seed, deadline, log: o.log }).catch((e: Error) => ({
      target: 'endpoint', seed: o.seed, requested: o.counts.endpoint, ran: 0, ms: Date.now() - t0,
      failures: [{ target: 'endpoint', seed: o.seed, index: -1, message: `run threw ${e.name}: ${e.message}` }],
    })));
  }
  return results;
}

async function main(argv: string[]): Promise<number> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, dflt: number): number => {
    const v = arg(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a number`);
    return n;
  };
  const base = argv.includes('--quick') ? QUICK : FULL;
  const seed = num('seed', (Date.now() ^ (process.pid << 8)) >>> 0);
  const results = await runFuzz({
    seed,
    counts: { codec: num('codec', base.codec), client: num('client', base.client), endpoint: num('endpoint', base.endpoint) },
    timeLimitS: num('time-limit', 600),
    only: arg('only'),
    onlyCase: arg('case') !== undefined ? num('case', 0) : undefined,
    log: (l) => console.log(l),
  });
  const failed = results.reduce((n, r) => n + r.failures.length, 0);
  console.log(failed ? `fuzz: ${failed} failures (seed ${seed})` : `fuzz: no failures (seed ${seed})`);
  return failed ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => { console.error(e); process.exit(2); });
}
