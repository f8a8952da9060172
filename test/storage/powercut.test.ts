/*
 * A power cut at every program/erase step of a credentials replace, a queue append (in a block,
 * into a new block, over a reclaimed block of the full ring) and a queue confirmation. After the
 * "reboot" (the stores opened again on the same image): the old or the new credentials are intact,
 * never neither; no reading the server had not confirmed is lost; and the store still works.
 *
 * Cut points: for every op of the scenario (found by a dry run), the power goes after 0, 1, every
 * write unit, and all of its bytes (the op done, the next one never started); erases at 0, 1, half,
 * all but one and all bytes. Each also once with a "noisy" tear (half-programmed bits).
 */
import { strict as assert } from 'node:assert';
import { isDeepStrictEqual } from 'node:util';
import { MemFlash, PowerCut } from '../../tools/sim/flash';
import type { Flash } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { encodeCredentials } from '../../src/storage/credentials';
import { fakePem } from './helpers';

const BS = 4096;
const LAYOUT = { kvBlocks: 4, sectorBlocks: 2, writeSize: 4 };
const BLOCKS = 8; // 4 settings + 4 queue

interface Op {
  kind: 'program' | 'erase';
  length: number;
}

/** Runs `scenario` on a copy of `base`, recording the length of every program/erase. */
function dryRun(base: Uint8Array, scenario: (f: Flash) => void): Op[] {
  const f = new MemFlash(base.length, BS, base);
  const ops: Op[] = [];
  const rec: Flash = {
    byteLength: f.byteLength,
    blockSize: f.blockSize,
    read: (o, n) => f.read(o, n),
    write: (o, d) => {
      ops.push({ kind: 'program', length: d.length });
      f.write(o, d);
    },
    erase: (b) => {
      ops.push({ kind: 'erase', length: BS });
      f.erase(b);
    },
  };
  scenario(rec);
  return ops;
}

function cutPositions(op: Op): number[] {
  const L = op.length;
  const set = new Set<number>([0, 1, L - 1, L]);
  if (op.kind === 'erase') set.add(L >> 1);
  else {
    const step = L <= 512 ? 4 : Math.ceil(L / 128 / 4) * 4;
    for (let p = 4; p < L; p += step) set.add(p);
  }
  return [...set].filter((p) => p >= 0 && p <= L).sort((a, b) => a - b);
}

/**
 * Cuts the power at every position of every op of `scenario`, then calls `check` with the
 * image as it is after the cut. Returns the number of cuts tried.
 */
function everyCut(base: Uint8Array, scenario: (f: Flash) => void, check: (f: MemFlash, where: string) => void): number {
  const ops = dryRun(base, scenario);
  assert.ok(ops.length > 0, 'the scenario programs or erases something');
  let tried = 0;
  ops.forEach((op, i) => {
    const positions = cutPositions(op);
    const runs: [number, 'prefix' | 'noisy'][] = positions.map((p) => [p, 'prefix']);
    runs.push([positions[positions.length >> 1]!, 'noisy']);
    for (const [bytes, mode] of runs) {
      const f = new MemFlash(base.length, BS, base);
      f.cutAt = { op: i + 1, bytes };
      f.tornMode = mode;
      assert.throws(() => scenario(f), PowerCut, `op ${i + 1} is reached`);
      check(f, `${op.kind} #${i + 1}/${ops.length} cut after ${bytes}/${op.length} B (${mode})`);
      tried++;
    }
  });
  return tried;
}

const reading = (n: number) => ({ ts: 1_700_000_000_000 + n * 60_000, values: { temperature: 20 + n / 10, humidity: 40, n } });

function credentials(version: number): StoredCredentials {
  return {
    server: 'coaps://tb.example.com:5684',
    ca: fakePem('CERTIFICATE', 600, 100 + version),
    cert: fakePem('CERTIFICATE', 500, 200 + version),
    key: fakePem('EC PRIVATE KEY', 121, 300 + version),
    provisionKey: `pkey-${version}`,
    provisionSecret: `psecret-${version}`,
  };
}

const counts: Record<string, number> = {};

describe('storage: a power cut at every program/erase step', function () {
  this.timeout(120_000);

  after(() => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(`      power cuts tried: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}; ${total} in all`);
  });

  for (const compaction of [false, true]) {
    it(`credentials replace${compaction ? ' that compacts into the other sector' : ' (append)'}: the old or the new record after reboot, never neither`, () => {
      const f = new MemFlash(BLOCKS * BS, BS);
      const s = openDeviceStorage(f, LAYOUT);
      s.credentials.save(credentials(1));
      s.settings.save({ reportingInterval: 30, source: 'shared attribute reportingInterval' });
      const size = Math.ceil((16 + encodeCredentials(credentials(2)).length) / 16) * 16;
      if (compaction) {
        // Fill the active sector until the next credentials record no longer fits in it.
        for (let i = 0; s.kv.free >= size && i < 1000; i++) s.settings.save({ reportingInterval: 31 + (i % 2), source: 'rpc' });
        s.settings.save({ reportingInterval: 30, source: 'shared attribute reportingInterval' });
      }
      const base = f.snapshot();
      const scenario = (fl: Flash) => openDeviceStorage(fl, LAYOUT).credentials.save(credentials(2));
      // The dry run does what the test says it does.
      const probe = new MemFlash(base.length, BS, base);
      const ps = openDeviceStorage(probe, LAYOUT);
      ps.credentials.save(credentials(2));
      assert.equal(ps.kv.stats.compactions > 0, compaction, `compaction ${compaction}`);
      let olds = 0;
      let news = 0;
      counts[compaction ? 'credentials replace (compaction)' : 'credentials replace (append)'] = everyCut(base, scenario, (img, where) => {
        const after = openDeviceStorage(img, LAYOUT);
        const c = after.credentials.load(); // throws if neither is intact
        const isOld = isDeepStrictEqual({ ...c }, credentials(1));
        const isNew = isDeepStrictEqual({ ...c }, credentials(2));
        assert.ok(isOld || isNew, `${where}: credentials are the old or the new ones`);
        if (isOld) olds++;
        else news++;
        assert.equal(after.settings.load().reportingInterval, 30, `${where}: settings kept`);
        // Still usable: the next replace works and is read back after another reboot.
        after.credentials.save(credentials(3));
        assert.equal(openDeviceStorage(img, LAYOUT).credentials.load().provisionKey, 'pkey-3', `${where}: usable after the cut`);
      });
      assert.ok(olds > 0 && news > 0, `both outcomes seen (old ${olds}, new ${news})`);
    });
  }

  /** Readings that must still be there after the cut: every one not confirmed before the scenario. */
  function queueCase(name: string, prepare: (s: ReturnType<typeof openDeviceStorage>) => void, scenario: (s: ReturnType<typeof openDeviceStorage>) => void) {
    it(`queue ${name}: no reading the server had not confirmed is lost`, () => {
      const f = new MemFlash(BLOCKS * BS, BS);
      const s = openDeviceStorage(f, LAYOUT);
      prepare(s);
      const base = f.snapshot();
      const pending = s.queue.peek(10_000).map((r) => r.values.n as number);
      const droppedBefore = s.queue.dropped;
      const probe = openDeviceStorage(new MemFlash(base.length, BS, base), LAYOUT);
      scenario(probe);
      const confirmedByScenario = new Set(pending.filter((n) => !probe.queue.peek(10_000).some((r) => r.values.n === n)));
      counts[`queue ${name}`] = everyCut(base, (fl) => scenario(openDeviceStorage(fl, LAYOUT)), (img, where) => {
        const after = openDeviceStorage(img, LAYOUT);
        const left = after.queue.peek(10_000).map((r) => r.values.n as number);
        for (const n of pending) if (!confirmedByScenario.has(n)) assert.ok(left.includes(n), `${where}: reading ${n} kept (left ${left.join(',')})`);
        assert.deepEqual(left, [...left].sort((a, b) => a - b), `${where}: in order`);
        assert.equal(new Set(left).size, left.length, `${where}: no duplicates`);
        assert.equal(after.queue.dropped, droppedBefore, `${where}: nothing counted as dropped`);
        for (const r of after.queue.peek(10_000)) assert.equal(r.ts, reading(r.values.n as number).ts, `${where}: original ts`);
        // Still usable: a new reading goes in and is found after another reboot.
        after.queue.push(reading(9999));
        assert.ok(openDeviceStorage(img, LAYOUT).queue.peek(10_000).some((r) => r.values.n === 9999), `${where}: usable after the cut`);
      });
    });
  }

  let n = 0;
  const push = (s: ReturnType<typeof openDeviceStorage>, k: number) => {
    for (let i = 0; i < k; i++) s.queue.push(reading(n++));
  };
  const confirm = (s: ReturnType<typeof openDeviceStorage>, k: number) => {
    const b = s.queue.peek(k);
    if (b.length) s.queue.confirm(b.at(-1)!.seq);
  };

  queueCase('append in the tail block', (s) => {
    n = 0;
    push(s, 12);
    confirm(s, 5);
  }, (s) => s.queue.push(reading(500)));

  queueCase('append that opens the next block (erase + header + record)', (s) => {
    n = 0;
    // Fill block 0 exactly until the next reading does not fit.
    for (let i = 0; i < 200 && s.queue.blocks; i++) {
      const before = s.queue.stats.erases;
      push(s, 1);
      if (s.queue.stats.erases > before && i > 0) break;
    }
  }, (s) => {
    // The block just opened: fill it to its end, then the scenario's push opens the next one.
    for (let i = 0; i < 200; i++) {
      const before = s.queue.stats.erases;
      s.queue.push(reading(600 + i));
      if (s.queue.stats.erases > before) break;
    }
  });

  queueCase('append over the oldest block of a wrapped ring (reclaim: erase of confirmed readings)', (s) => {
    n = 0;
    // Go round the ring, confirming as we go, until the tail sits at the end of the last block.
    for (let i = 0; i < 2000; i++) {
      push(s, 1);
      if (i % 7 === 6) confirm(s, 100);
      if (s.queue.stats.erases >= s.queue.blocks + 1) break;
    }
    push(s, 3); // three unconfirmed
  }, (s) => {
    const start = s.queue.stats.erases;
    for (let i = 0; i < 200 && s.queue.stats.erases === start; i++) s.queue.push(reading(700 + i));
  });

  it('queue append into a full ring (drop-oldest): every reading is still queued or counted as dropped, never silently gone', () => {
    const f = new MemFlash(BLOCKS * BS, BS);
    const s = openDeviceStorage(f, LAYOUT);
    let k = 0;
    // Fill the ring with unconfirmed readings until the next push must drop the oldest block.
    for (let i = 0; i < 5000; i++) {
      const before = s.queue.dropped;
      const snap = f.snapshot();
      s.queue.push(reading(k++));
      if (s.queue.dropped > before) {
        // Back to just before the push that dropped: that push is the scenario.
        f.cutAt = undefined;
        const g = new MemFlash(f.byteLength, BS, snap);
        runDrop(g, k - 1);
        return;
      }
    }
    assert.fail('the ring never filled');

    function runDrop(g: MemFlash, next: number) {
      const base = g.snapshot();
      const before = openDeviceStorage(new MemFlash(base.length, BS, base), LAYOUT);
      const all = before.queue.peek(100_000).map((r) => r.values.n as number);
      assert.equal(before.queue.dropped, 0);
      counts['queue append that drops the oldest block'] = everyCut(base, (fl) => openDeviceStorage(fl, LAYOUT).queue.push(reading(next)), (img, where) => {
        const after = openDeviceStorage(img, LAYOUT);
        const left = after.queue.peek(100_000).map((r) => r.values.n as number);
        const lost = all.filter((n) => !left.includes(n));
        assert.equal(after.queue.dropped, lost.length, `${where}: ${lost.length} readings gone, ${after.queue.dropped} counted`);
        assert.deepEqual(lost, all.slice(0, lost.length), `${where}: only the oldest go`);
        assert.ok(lost.length <= 60, `${where}: at most a block's worth (${lost.length})`);
      });
    }
  });

  queueCase('confirmation (mark record)', (s) => {
    n = 0;
    push(s, 20);
    confirm(s, 4);
  }, (s) => confirm(s, 10));
});
