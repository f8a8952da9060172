/* Tiny argv parser for the CLIs: --key value, --flag, positional. */
export interface Args {
  _: string[];
  [key: string]: string | boolean | string[];
}

export function parseArgs(argv: string[]): Args {
  const out: Args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[a.slice(2)] = argv[++i]!;
      else out[a.slice(2)] = true;
    } else out._.push(a);
  }
  return out;
}

export function num(v: string | boolean | string[] | undefined, dflt: number): number {
  if (typeof v !== 'string') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`);
  return n;
}
