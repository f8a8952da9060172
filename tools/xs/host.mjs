/*
 * Child-process host for one XS run through the @agoric/xsnap JS API.
 *
 * @agoric/xsnap's Node side is built on Endo (@endo/errors needs SES's globals), so it runs in
 * its own Node process under `@endo/init` (SES lockdown) instead of inside mocha's process.
 *
 * usage: node tools/xs/host.mjs <script.js>
 * stdout: one JSON line {reports: [...], output: "...", meter: {...}, error?: "..."}
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import * as os from 'node:os';

// SES lockdown first (@endo/init, a dependency of @agoric/xsnap, resolved from there), then xsnap.
const fromXsnap = createRequire(createRequire(import.meta.url).resolve('@agoric/xsnap/package.json'));
await import(pathToFileURL(fromXsnap.resolve('@endo/init')).href);
const { xsnap } = await import('@agoric/xsnap');

const file = process.argv[2];
const reports = [];
let output = '';
/** xsnap's meter for the evaluate: compute (XS meter units), allocate, currentHeapCount (slots). */
let meter;
const decoder = new TextDecoder();

const capture = (bin, args, opts) => {
  const child = spawn(bin, args, opts);
  child.stdout?.on('data', (d) => (output += d.toString('utf8')));
  child.stderr?.on('data', (d) => (output += d.toString('utf8')));
  return child;
};

async function main() {
  const code = await fs.readFile(file, 'utf8');
  const worker = await xsnap({
    os: os.type(),
    spawn: capture,
    fs: { ...fs, createReadStream },
    name: 'xs-device-test',
    stdout: 'pipe',
    stderr: 'pipe',
    meteringLimit: 0,
    async handleCommand(message) {
      const text = decoder.decode(message);
      try {
        reports.push(JSON.parse(text));
      } catch {
        reports.push({ unparsed: text });
      }
      return new Uint8Array(0);
    },
  });
  let error;
  try {
    ({ meterUsage: meter } = await worker.evaluate(code));
  } catch (e) {
    error = String(e?.message ?? e);
  }
  await worker.close().catch(() => worker.terminate());
  // Let the last stdout/stderr chunks of the worker arrive.
  await new Promise((r) => setTimeout(r, 20));
  return error;
}

main().then(
  (error) => {
    process.stdout.write(JSON.stringify({ reports, output, meter, ...(error ? { error } : {}) }) + '\n');
    process.exit(0);
  },
  (e) => {
    process.stdout.write(JSON.stringify({ reports, output, error: `host: ${e?.stack ?? e}` }) + '\n');
    process.exit(0);
  },
);
