/* Runs the command-line tools as a user would (a child process), capturing every output stream. */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');

export const TOOLS = {
  start: join(ROOT, 'tools/sim/start.ts'),
  sim: join(ROOT, 'tools/sim/cli.ts'),
  tbServer: join(ROOT, 'tools/tb-server/cli.ts'),
  certs: join(ROOT, 'tools/provision/certs.ts'),
  provision: join(ROOT, 'tools/provision/provision.ts'),
};

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx SCRIPT ARGS`, bounded (killed after timeoutMs of wall time). */
export function runTool(script: string, args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', script, ...args], { timeout: opts.timeoutMs ?? 60000, cwd: opts.cwd ?? ROOT, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : e.killed ? -1 : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs jobs at most `n` at a time (two busy cores). */
export async function limited<T>(n: number, jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  }));
  return out;
}
