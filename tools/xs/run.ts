/*
 * Runs device code on Moddable's XS engine, on the host.
 *
 * 1. bundle(entry): esbuild bundles a TypeScript entry (a test/xs/fixtures/*.ts script) and the
 *    src/ modules it imports into ONE plain script (IIFE, target es2022). Only relative imports are
 *    allowed: a `node:` import, a Node built-in or an npm package fails the bundle, which enforces
 *    the device-code rule (src/ runs on XS, where there is no Node).
 * 2. runOnXs(script): evaluates it in an `xsnap-worker` (XS 13.3, from @agoric/xsnap, built from
 *    Moddable's C sources at npm install) and returns what the script reported: the script calls
 *    the worker's synchronous `issueCommand(ArrayBuffer)` with UTF-8 JSON (test/xs/fixtures/harness.ts
 *    does this), which arrives here in `handleCommand`.
 *
 * The worker has `print`, `issueCommand`, `setImmediate`, TextEncoder/TextDecoder; it has no
 * console and no setTimeout. Fixtures inject what the device code needs (Clock, Datagram, Random)
 * the way src/platform does; nothing is polyfilled into src.
 *
 * CLI: npx tsx tools/xs/run.ts test/xs/fixtures/codec.ts   (prints the reported JSON)
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { builtinModules } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const XSNAP_DIR = path.join(REPO_ROOT, 'node_modules', '@agoric', 'xsnap');
export const XSNAP_WORKER = path.join(XSNAP_DIR, 'xsnap-native', 'xsnap', 'build', 'bin', 'lin', 'release', 'xsnap-worker');
/** XS headers shipped by @agoric/xsnap (Moddable xs/includes + xs/sources + xs/platforms). */
export const XS_INCLUDE_DIRS = ['includes', 'sources', 'platforms'].map((d) => path.join(XSNAP_DIR, 'moddable', 'xs', d));

export class XsError extends Error {
  constructor(
    message: string,
    readonly output = '',
  ) {
    super(output ? `${message}\n--- worker output ---\n${output}` : message);
    this.name = 'XsError';
  }
}

/** Throws a clear error when the XS worker binary is not there (install not run, or build failed). */
export function assertWorker(): string {
  if (os.platform() !== 'linux') throw new XsError(`XS runs need Linux here (xsnap-worker is built for lin); this is ${os.platform()}`);
  if (!existsSync(XSNAP_WORKER)) {
    throw new XsError(
      `xsnap-worker missing at ${XSNAP_WORKER}: run \`npm install\` (the @agoric/xsnap install script builds it with make and a C compiler; ` +
        '`npm rebuild @agoric/xsnap` retries)',
    );
  }
  return XSNAP_WORKER;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Fails the bundle on anything but a relative import: no Node built-ins, no npm packages on the device. */
const deviceOnly: Plugin = {
  name: 'device-only',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      const p = args.path;
      if (p.startsWith('node:') || BUILTINS.has(p)) {
        return { errors: [{ text: `Node built-in "${p}" imported by ${path.relative(REPO_ROOT, args.importer)}: device code runs on XS, which has no Node modules` }] };
      }
      if (!p.startsWith('.') && !p.startsWith('/')) {
        return { errors: [{ text: `bare import "${p}" in ${path.relative(REPO_ROOT, args.importer)}: only relative imports are bundled for XS` }] };
      }
      return undefined;
    });
  },
};

export interface BundleResult {
  code: string;
  /** Source files in the bundle, relative to the repo root. */
  inputs: string[];
}

/** Bundles `entry` and what it imports into one ES2022 IIFE script for XS. */
export async function bundle(entry: string): Promise<BundleResult> {
  const result = await build({
    entryPoints: [path.resolve(REPO_ROOT, entry)],
    absWorkingDir: REPO_ROOT,
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    charset: 'utf8',
    legalComments: 'none',
    sourcemap: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [deviceOnly],
  }).catch((e: { errors?: { text: string }[]; message?: string }) => {
    const text = e.errors?.map((m) => m.text).join('\n') ?? e.message;
    throw new XsError(`bundle of ${entry} failed:\n${text}`);
  });
  const out = result.outputFiles[0];
  if (!out) throw new XsError(`bundle of ${entry} produced no output`);
  return { code: out.text, inputs: Object.keys(result.metafile.inputs) };
}

export interface RunOptions {
  /** Wall-clock bound on the whole run (spawn + evaluate + promise queue). Default 20 s. */
  timeoutMs?: number;
}

export interface RunResult<T = unknown> {
  /** The JSON the script passed to issueCommand (the last one when it reported several times). */
  value: T;
  /** Every report, in order. */
  reports: unknown[];
  /** What the script printed (XS `print`) and the worker wrote to stderr. */
  output: string;
  /** xsnap's meter for the evaluate (compute units, allocate bytes, currentHeapCount slots), when reported. */
  meter?: Record<string, unknown>;
}

/** Evaluates `code` in a fresh xsnap-worker; resolves with what it reported through issueCommand. */
export async function runOnXs<T = unknown>(code: string, options: RunOptions = {}): Promise<RunResult<T>> {
  assertWorker();
  const timeoutMs = options.timeoutMs ?? 20000;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xs-run-'));
  const file = path.join(dir, 'script.js');
  await fs.writeFile(file, code);
  try {
    // The @agoric/xsnap API needs SES (lockdown): it runs in a child Node process, tools/xs/host.mjs.
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = nodeSpawn(process.execPath, [path.join(__dirname, 'host.mjs'), file], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Own process group, so a timeout kills the host and its xsnap-worker together (a worker
        // stuck in a loop does not notice its pipes closing).
        detached: true,
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
        reject(new XsError(`XS run exceeded ${timeoutMs} ms`, err));
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new XsError(`cannot start tools/xs/host.mjs: ${e.message}`));
      });
      child.on('close', (codeOrNull) => {
        clearTimeout(timer);
        if (codeOrNull !== 0) reject(new XsError(`tools/xs/host.mjs exited with ${codeOrNull}`, err + out));
        else resolve(out);
      });
    });
    const line = stdout.trim().split('\n').pop() ?? '';
    let parsed: { reports: unknown[]; output: string; meter?: Record<string, unknown>; error?: string };
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new XsError('tools/xs/host.mjs printed no result', stdout);
    }
    if (parsed.error) throw new XsError(`XS run failed: ${parsed.error}`, parsed.output);
    if (!parsed.reports.length) {
      throw new XsError(
        'the script reported nothing: it threw before reporting, or a promise it awaited never settled (the worker ran its job queue to idle)',
        parsed.output,
      );
    }
    return { value: parsed.reports[parsed.reports.length - 1] as T, reports: parsed.reports, output: parsed.output, ...(parsed.meter ? { meter: parsed.meter } : {}) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** bundle() + runOnXs(). */
export async function runEntryOnXs<T = unknown>(entry: string, options: RunOptions = {}): Promise<RunResult<T>> {
  assertWorker();
  const { code } = await bundle(entry);
  return runOnXs<T>(code, options);
}

if (require.main === module) {
  const entry = process.argv[2];
  if (!entry) {
    console.error('usage: tsx tools/xs/run.ts <entry.ts>');
    process.exit(2);
  }
  runEntryOnXs(entry).then(
    (r) => {
      if (r.output) process.stderr.write(r.output);
      if (r.meter) process.stderr.write(`meter: ${JSON.stringify(r.meter)}\n`);
      console.log(JSON.stringify(r.value, null, 2));
    },
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
