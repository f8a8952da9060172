/*
 * Runs the firmware (manifest.json -> src/main.ts) on the XS host (node_modules/.cache/xs-host/xshost, built at
 * `npm install` by tools/xs/host/Makefile), the way a Moddable lin build runs it.
 *
 *   npx tsx tools/xs/firmware.ts [--manifest manifest.json] [--speed N] [--duration S]
 *        [--stats-every S] [--flash DIR] [--out DIR] [--quiet] [key=value ...]
 *
 * key=value overrides config entries as mcconfig's command line does (string values). To set object
 * entries (server, dtls) or add resources, write a manifest that includes manifest.json and adds a
 * "config"/"resources" section, and pass it with --manifest (tests do that: test/helpers/xs-host.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { buildFirmware, HOST_BINARY, parseConfigArgs, ROOT } from './manifest';
import type { Plan } from './manifest';

export { buildFirmware, HOST_BINARY, ROOT };
export type { Plan };

/** Fails naming the fix when the host binary was not built. */
export function assertHost(): void {
  if (!existsSync(HOST_BINARY))
    throw new Error(
      `XS host not built: ${HOST_BINARY} is missing. Run \`npm install\` (its postinstall runs \`make -C tools/xs/host\`; needs make, a C compiler and libmbedtls-dev) or \`make -C tools/xs/host -j2\`.`,
    );
}

/** One line of the host's `xs-host:stats {...}` output. Slot counts are in slots, sizes in bytes. */
export interface XsStats {
  when: 'baseline' | 'preloaded' | 'interval' | 'end';
  deviceMs: number;
  slotBytes: number;
  slots: number;
  slotsPeak: number;
  slotsAllocated: number;
  chunks: number;
  chunksPeak: number;
  chunksAllocated: number;
  stackPeak: number;
  stack: number;
  hostBytes: number;
  hostBytesPeak: number;
  /** C heap in use besides the machine's blocks (mbedTLS, bindings, host modules; malloc overhead included) */
  nativeBytes: number;
  gc: number;
}

export interface RunOptions {
  plan: Plan;
  /** device clock speed-up (Time.ticks, Date.now, timers); default 1 */
  speed?: number;
  /** stop after this many device milliseconds (else when no timer or socket is left) */
  durationMs?: number;
  statsEveryMs?: number;
  flashDir?: string;
  /** each line of trace() output (stdout) */
  onTrace?: (line: string) => void;
  /** each host line on stderr (xs-host: ...), stats lines included */
  onHost?: (line: string) => void;
  /** kill after this many wall-clock ms (a bound, not a timing assertion); default 120 s */
  wallLimitMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  trace: string[];
  host: string[];
  stats: XsStats[];
}

export interface RunningFirmware {
  done: Promise<RunResult>;
  /** the output so far (the same arrays `done` resolves with) */
  live: RunResult;
  stop(): void;
}

export function startFirmware(options: RunOptions): RunningFirmware {
  assertHost();
  const args: string[] = [];
  if (options.speed) args.push('--speed', String(options.speed));
  if (options.durationMs !== undefined) args.push('--duration-ms', String(options.durationMs));
  if (options.statsEveryMs) args.push('--stats-every-ms', String(options.statsEveryMs));
  const flashDir = options.flashDir ?? join(options.plan.dir, 'flash');
  mkdirSync(flashDir, { recursive: true });
  args.push('--resources', options.plan.resourcesDir, '--flash', flashDir, options.plan.planPath);
  const child = spawn(HOST_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const result: RunResult = { code: null, signal: null, trace: [], host: [], stats: [] };
  createInterface({ input: child.stdout }).on('line', (line) => {
    result.trace.push(line);
    options.onTrace?.(line);
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    result.host.push(line);
    const m = /^xs-host:stats (\{.*\})$/.exec(line);
    if (m) result.stats.push(JSON.parse(m[1]!) as XsStats);
    options.onHost?.(line);
  });
  const limit = setTimeout(() => {
    result.host.push(`xs-host: killed after the wall-clock bound of ${options.wallLimitMs ?? 120000} ms`);
    child.kill('SIGKILL');
  }, options.wallLimitMs ?? 120000);
  const done = new Promise<RunResult>((resolveDone) => {
    let exited = 0;
    const finish = () => {
      if (++exited < 3) return;
      clearTimeout(limit);
      resolveDone(result);
    };
    child.stdout.on('close', finish);
    child.stderr.on('close', finish);
    child.on('exit', (code, signal) => {
      result.code = code;
      result.signal = signal;
      finish();
    });
  });
  return { done, live: result, stop: () => child.kill('SIGTERM') };
}

export function runFirmware(options: RunOptions): Promise<RunResult> {
  return startFirmware(options).done;
}

/** Figures for a 32-bit device: a slot is 16 bytes there (32 here); chunks are counted as they are. */
export function scaleTo32Bit(s: XsStats): { slotsBytes: number; chunksBytes: number; total: number } {
  const slotsBytes = s.slots * 16;
  return { slotsBytes, chunksBytes: s.chunks, total: slotsBytes + s.chunks };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts: Record<string, string | boolean> = {};
  const overrides: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quiet') opts.quiet = true;
    else if (a.startsWith('--')) opts[a.slice(2)] = argv[++i] ?? '';
    else overrides.push(a);
  }
  const out = typeof opts.out === 'string' ? resolve(opts.out) : mkdtempSync(join(tmpdir(), 'xs-firmware-'));
  const plan = buildFirmware({
    manifest: typeof opts.manifest === 'string' ? opts.manifest : join(ROOT, 'manifest.json'),
    outDir: out,
    overrides: parseConfigArgs(overrides),
  });
  const num = (k: string) => (typeof opts[k] === 'string' ? Number(opts[k]) : undefined);
  const running = startFirmware({
    plan,
    speed: num('speed'),
    durationMs: num('duration') !== undefined ? num('duration')! * 1000 : undefined,
    statsEveryMs: num('stats-every') !== undefined ? num('stats-every')! * 1000 : undefined,
    flashDir: typeof opts.flash === 'string' ? opts.flash : undefined,
    onTrace: opts.quiet ? undefined : (l) => console.log(l),
    onHost: (l) => console.error(l),
    wallLimitMs: 2 ** 31 - 1,
  });
  process.on('SIGINT', () => running.stop());
  const r = await running.done;
  process.exit(r.code ?? 1);
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(e.message);
    process.exit(2);
  });
}
