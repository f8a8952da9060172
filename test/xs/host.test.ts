/*
 * What the XS host does like a Moddable build, each shown by a run that fails when it should:
 * a module the manifest does not name is not there (even if its file is next to the importer), a
 * module that throws at top level fails the run naming it, built-in prototypes are frozen after the
 * preload phase (this.name = ... in an Error subclass throws, a class field does not), and the JS
 * stack is creation.stack slots. Fixtures: test/xs/fixtures/host (a tiny app on manifest_base).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFirmware, ROOT, runFirmware } from '../../tools/xs/firmware';
import type { RunResult } from '../../tools/xs/firmware';
import { ManifestError } from '../../tools/xs/manifest';
import { useEndpoint } from '../helpers/e2e';
import { startXsDevice } from './host-helpers';

const FIXTURE = join(ROOT, 'test/xs/fixtures/host/manifest.json');

/** Builds a wrapper manifest (include + extra sections) and runs it to its end on the host. */
async function runFixture(extra: Record<string, unknown>, include = FIXTURE): Promise<RunResult & { output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'xs-host-test-'));
  try {
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ include: [include], ...extra }));
    const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build') });
    const r = await runFirmware({ plan, wallLimitMs: 30000 });
    return { ...r, output: [...r.trace, ...r.host].join('\n') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('XS host: a Moddable build, not a bundle', function () {
  this.timeout(30000);

  it('runs preloads, then freezes the built-ins, then the main module (control run)', async () => {
    const r = await runFixture({ config: { scenario: 'none' } });
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.trace, ['early: EarlyError', 'helper loaded', 'main done']);
  });

  it('a module imported but missing from the manifest fails the run, naming it and its importer', async () => {
    const r = await runFixture({ creation: { main: 'main-missing' } });
    assert.equal(r.code, 1, r.output);
    assert.ok(!r.trace.some((l) => l.includes('should never load')), 'the file next to main.js was not loaded');
    assert.match(r.output, /module "not-in-manifest" \(imported as "\.\/not-in-manifest" by "main-missing"\) is not in the manifest/);
    assert.match(r.output, /main module "main-missing" failed/);
  });

  it('the real firmware fails the same way when a module it imports is taken out of the manifest', async () => {
    // board/sensors comes from the lin platform section; a manifest that maps it to a file importing
    // an unlisted module must fail at boot
    const dir = mkdtempSync(join(tmpdir(), 'xs-host-test-'));
    try {
      writeFileSync(join(dir, 'unlisted.js'), 'export const x = 1;\n');
      writeFileSync(join(dir, 'board.js'), 'import { x } from "./unlisted";\nexport const openBoard = () => ({ description: "x", sources: [] });\n');
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ include: [join(ROOT, 'manifest.json')], modules: { 'board/sensors': './board' }, config: { token: 't' } }));
      const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build') });
      const r = await runFirmware({ plan, wallLimitMs: 30000 });
      const output = [...r.trace, ...r.host].join('\n');
      assert.equal(r.code, 1, output);
      assert.match(output, /module "board\/unlisted" \(imported as "\.\/unlisted" by "board\/sensors"\) is not in the manifest/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a module that throws at top level fails the run with its error', async () => {
    const r = await runFixture({ creation: { main: 'main-throws' } });
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /main module "main-throws" failed/);
    assert.match(r.output, /RangeError: thrower: boom at top level/);
    assert.match(r.output, /at .*fixture\/thrower\.js:2\)/, 'location: module file and line');
    assert.ok(!r.trace.some((l) => l.startsWith('value')), 'the importer did not run');
  });

  it('after the preload phase, this.name = ... in an Error subclass throws; a class field is fine', async () => {
    const r = await runFixture({ config: { scenario: 'freeze' } });
    assert.equal(r.code, 0, r.output);
    assert.ok(r.trace.includes('early: EarlyError'), 'the same assignment worked during preload');
    assert.ok(r.trace.includes('field: FieldError'), r.output);
    const late = r.trace.find((l) => l.startsWith('late:'));
    assert.match(late ?? '', /^late: TypeError: .*name.*not writable/, r.output);
    assert.ok(r.trace.includes('Error.prototype frozen: true'));
    assert.ok(r.trace.includes('Array.prototype frozen: true'));
  });

  it('the JS stack is creation.stack slots: enough runs, too small aborts with "stack overflow"', async () => {
    const ok = await runFixture({ config: { scenario: 'stack', depth: 40 }, creation: { stack: 1024 } });
    assert.equal(ok.code, 0, ok.output);
    assert.ok(ok.trace.includes('depth 40'), ok.output);
    const small = await runFixture({ config: { scenario: 'stack', depth: 40 }, creation: { stack: 160 } });
    assert.equal(small.code, 3, small.output);
    assert.match(small.output, /abort: stack overflow \(creation\.stack 160 slots/);
    assert.ok(!small.trace.includes('depth 40'));
  });

  it('a manifest including an SDK manifest the host does not provide is refused, naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xs-host-test-'));
    try {
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ include: ['$(MODDABLE)/modules/io/i2c/manifest.json'] }));
      assert.throws(() => buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build') }), (e: Error) => {
        assert.ok(e instanceof ManifestError);
        assert.match(e.message, /\$\(MODDABLE\)\/modules\/io\/i2c\/manifest\.json, which the XS host does not provide/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('XS host: the firmware with a too small creation.stack', function () {
  this.timeout(30000);
  const e2e = useEndpoint();

  it('aborts with "stack overflow" and the JS frames, instead of running', async () => {
    const dev = e2e.server.store.createDevice('xs-stack');
    const d = startXsDevice({ port: e2e.server.coapPort, token: dev.token, creation: { stack: 200 }, durationMs: 5000 });
    const r = await d.done;
    rmSync(d.dir, { recursive: true, force: true });
    assert.equal(r.code, 3, d.output());
    assert.match(d.output(), /abort: stack overflow \(creation\.stack 200 slots/);
    assert.match(d.output(), /xs-host: {3}at .*\(.*:\d+\)/);
  });
});
