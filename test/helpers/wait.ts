/* Shared test helpers: bounded polling and an in-memory Log. */
import type { Log } from '../../src/platform/types';

/** Polls `probe` every 20 ms until it returns a truthy value; fails after timeoutMs. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Log that keeps every line as "<level> <message>". */
export function memoryLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const push = (l: string) => (m: string) => lines.push(`${l} ${m}`);
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}
