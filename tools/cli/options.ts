/*
 * Command lines of every tool (npm start, npm run sim, tb-server, certs, provision) on node's
 * util.parseArgs: one table of options per command gives the parser, the validation and the --help
 * text (each option with its default), so the three cannot drift apart.
 *
 * Exit codes, the same for every command:
 *   0  done: for a device run, every reading taken was delivered
 *   1  runtime failure: nothing, or not everything, was delivered (or the server refused)
 *   2  usage or configuration error: a bad option or value, an unreadable or invalid file
 */
import { parseArgs } from 'node:util';

export const EXIT = Object.freeze({ OK: 0, RUNTIME: 1, USAGE: 2 });

/** A mistake on the command line or in a configuration file: exit 2, one line naming it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT.USAGE;
}

export interface OptionSpec {
  name: string;
  type: 'string' | 'boolean';
  /** Placeholder shown in help: `--interval DURATION`. */
  value?: string;
  /** Shown as "(default: ...)". */
  default?: string;
  help: string;
  short?: string;
}

export interface CommandSpec {
  /** "npm run sim --" etc. */
  usage: string[];
  summary: string;
  options: OptionSpec[];
  examples: string[];
  /** Extra paragraphs after the options. */
  notes?: string[];
  positionals?: boolean;
}

export const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', type: 'boolean', help: 'print this help and exit' };

const EXIT_HELP = 'exit codes: 0 done (every reading delivered), 1 runtime failure (nothing or not everything delivered), 2 usage or configuration error';

export function helpText(spec: CommandSpec, exitHelp = EXIT_HELP): string {
  const lines: string[] = [];
  lines.push(...spec.usage.map((u, i) => `${i ? '       ' : 'usage: '}${u}`), '', ...wrap(spec.summary, 100), '', 'options:');
  const left = spec.options.map((o) => `  ${o.short ? `-${o.short}, ` : ''}--${o.name}${o.value ? ` ${o.value}` : ''}`);
  const width = Math.min(34, Math.max(...left.map((l) => l.length)) + 2);
  spec.options.forEach((o, i) => {
    const text = wrap(`${o.help}${o.default !== undefined ? ` (default: ${o.default})` : ''}`, 100 - width);
    const l = left[i]!;
    if (l.length >= width) lines.push(l);
    text.forEach((t, j) => lines.push(`${(j === 0 && l.length < width ? l : '').padEnd(width)}${t}`));
  });
  if (spec.notes?.length) lines.push('', ...spec.notes.flatMap((n) => wrap(n, 100)));
  lines.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`), '', exitHelp);
  return lines.join('\n');
}

/** Splits text into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Closest option name, for "did you mean". */
function suggest(name: string, spec: CommandSpec): string {
  let best = '';
  let bestD = 3;
  for (const o of spec.options) {
    const d = distance(name, o.name);
    if (d < bestD) {
      best = o.name;
      bestD = d;
    }
  }
  return best ? ` (did you mean --${best}?)` : '';
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** Parses argv strictly against the spec; every problem is a UsageError naming the option. */
export function parseCommandLine(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const o of spec.options) options[o.name] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: spec.positionals ?? false });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    const msg = err.message.split('\n')[0]!;
    let m: RegExpExecArray | null;
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && (m = /'(-{1,2})([^']*)'/.exec(msg)))
      throw new UsageError(`unknown option ${m[1]}${m[2]}${suggest(m[2]!, spec)}; see --help`);
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && (m = /'([^']*)'/.exec(msg)))
      throw new UsageError(`unexpected argument '${m[1]}': options start with --; see --help`);
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && (m = /'(--?[^' ]+)/.exec(msg))) {
      if (/does not take an argument/.test(msg)) throw new UsageError(`option ${m[1]} takes no value`);
      if (/ambiguous/.test(msg)) throw new UsageError(`option ${m[1]} needs a value (the next argument starts with -; write ${m[1]}=VALUE if that is meant)`);
      throw new UsageError(`option ${m[1]} needs a value`);
    }
    throw new UsageError(msg);
  }
}

// ---- values ----

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** A TCP/UDP port: 1-65535 (0 too with allowZero: any free port, for listeners). */
export function port(p: Parsed, name: string, dflt: number, allowZero = false): number {
  const v = str(p, name);
  if (v === undefined) return dflt;
  return parsePort(v, `--${name}`, allowZero);
}

export function parsePort(v: string, what: string, allowZero = false): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535 || (Number(v) === 0 && !allowZero))
    throw new UsageError(`${what} must be a port number 1-65535${allowZero ? ' (or 0: any free port)' : ''} (got '${v}')`);
  return Number(v);
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration: a number with a unit (500ms, 30s, 15m, 1h, 1d, or combined: 1h30m); a bare number is
 * seconds. Returns milliseconds.
 */
export function parseDuration(v: string, what: string): number {
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|min|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (!s || end !== s.length) throw new UsageError(`${what} must be a duration such as 30s, 15m, 1h or 1h30m (a bare number is seconds) (got '${v}')`);
  return total;
}

/** A duration option in ms; `min` (ms) bounds it below (0 allowed only when min is 0). */
export function duration(p: Parsed, name: string, dfltMs: number, opts: { minMs?: number; maxMs?: number } = {}): number {
  const v = str(p, name);
  if (v === undefined) return dfltMs;
  const ms = parseDuration(v, `--${name}`);
  const min = opts.minMs ?? 1;
  if (min > 0 && ms <= 0) throw new UsageError(`--${name} must be greater than 0 (got '${v}')`);
  if (ms < min) throw new UsageError(`--${name} must be at least ${fmtMs(min)} (got '${v}')`);
  if (opts.maxMs !== undefined && ms > opts.maxMs) throw new UsageError(`--${name} must be at most ${fmtMs(opts.maxMs)} (got '${v}')`);
  return ms;
}

/** A plain positive number (e.g. --speed). */
export function positive(p: Parsed, name: string, dflt: number, max = Infinity): number {
  const v = str(p, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\s*\d*\.?\d+(e[+-]?\d+)?\s*$/i.test(v) || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number greater than 0 (got '${v}')`);
  if (n > max) throw new UsageError(`--${name} must be at most ${max} (got '${v}')`);
  return n;
}

/** A non-negative integer (counts, milliseconds). */
export function integer(p: Parsed, name: string, dflt?: number, min = 0): number | undefined {
  const v = str(p, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be a whole number${min > 0 ? ` of at least ${min}` : ''} (got '${v}')`);
  return Number(v);
}

export function choice<T extends string>(p: Parsed, name: string, choices: readonly T[], dflt: T): T {
  const v = str(p, name);
  if (v === undefined) return dflt;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join(', ')} (got '${v}')`);
  return v as T;
}

export function fmtMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Runs a CLI's main: usage errors exit 2 with "<prog>: message" on stderr, anything else exits 1.
 * `main` resolves with the exit code.
 */
export function runMain(prog: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const err = e as Error;
      process.stderr.write(`${prog}: ${err.message}\n`);
      process.exit(err instanceof UsageError ? EXIT.USAGE : EXIT.RUNTIME);
    },
  );
}
