/*
 * The device code on XS, the engine it ships on (Moddable XS 13.3 in @agoric/xsnap's
 * xsnap-worker, built from Moddable's C sources at npm install), compared with the same scenario
 * on Node; and the xsmc DTLS binding compiled against the same XS headers. See docs/xs.md.
 *
 * Each test fails (never skips) when xsnap-worker or the XS headers are missing.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decode, encode } from '../../src/coap/codec';
import { CoapType } from '../../src/coap/types';
import { assertWorker, bundle, REPO_ROOT, runOnXs, XS_INCLUDE_DIRS, XsError } from '../../tools/xs/run';
import * as appFixture from './fixtures/app';
import * as bmeFixture from './fixtures/bme280';
import * as clientFixture from './fixtures/client';
import * as codecFixture from './fixtures/codec';
import * as envFixture from './fixtures/env';
import type { Outcome } from './fixtures/harness';

const FIXTURES = path.join(__dirname, 'fixtures');

/** Bundles a fixture, runs it on XS, fails with the XS error (and its stack) if it threw there. */
async function onXs<T>(fixture: string): Promise<T> {
  assertWorker();
  const { code } = await bundle(path.join(FIXTURES, fixture));
  const run = await runOnXs<Outcome<T>>(code, { timeoutMs: 30000 });
  const out = run.value;
  if (!out.ok) assert.fail(`${fixture} threw on XS: ${out.error?.name}: ${out.error?.message}\n${out.error?.stack ?? ''}\n${run.output}`);
  return out.value as T;
}

/** JSON round trip of the Node result, so both sides are compared in the same shape. */
function asJson<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

describe('device code on XS (xsnap-worker)', function () {
  this.timeout(90000);

  it('bundles src for XS and refuses Node built-ins and npm packages', async () => {
    assertWorker();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'xs-bundle-'));
    try {
      for (const [spec, needle] of [
        ['node:fs', 'Node built-in "node:fs"'],
        ['events', 'Node built-in "events"'],
        ['coap-packet', 'bare import "coap-packet"'],
      ] as const) {
        const entry = path.join(dir, `bad-${spec.replace(/\W/g, '_')}.ts`);
        writeFileSync(entry, `import * as m from '${spec}';\nexport const x = m;\n`);
        await assert.rejects(bundle(entry), (e: Error) => e instanceof XsError && e.message.includes(needle), spec);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Every src module except the Moddable glue, which imports `timer`, `embedded:io/*`, `board/sensors`...:
    // the files the root tsconfig.json excludes (src/main.ts, src/platform/moddable/**, src/board/{esp32,lin}.ts;
    // they run in the XS host instead: test/xs/firmware-e2e.test.ts), bundles without Node and loads on XS.
    const excludes = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { exclude: string[] }).exclude;
    const glue = (p: string) => {
      const rel = path.relative(REPO_ROOT, p).split(path.sep).join('/');
      return excludes.some((e) => (e.endsWith('/**') ? rel === e.slice(0, -3) || rel.startsWith(e.slice(0, -2)) : rel === e));
    };
    const modules: string[] = [];
    const walk = (d: string): void => {
      for (const f of readdirSync(d)) {
        const p = path.join(d, f);
        if (glue(p)) continue;
        if (statSync(p).isDirectory()) walk(p);
        else if (f.endsWith('.ts') && !f.endsWith('.d.ts')) modules.push(p);
      }
    };
    walk(path.join(REPO_ROOT, 'src'));
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'xs-all-'));
    try {
      const entry = path.join(tmp, 'all.ts');
      writeFileSync(
        entry,
        [
          `import { runOnXsIfHere } from ${JSON.stringify(path.join(FIXTURES, 'harness'))};`,
          ...modules.map((m, i) => `import * as m${i} from ${JSON.stringify(m.replace(/\.ts$/, ''))};`),
          `runOnXsIfHere(() => [${modules.map((_, i) => `Object.keys(m${i}).length`).join(', ')}]);`,
        ].join('\n'),
      );
      const { code, inputs } = await bundle(entry);
      assert.ok(inputs.length > modules.length, 'bundle holds the src modules');
      const run = await runOnXs<Outcome<number[]>>(code, { timeoutMs: 30000 });
      assert.ok(run.value.ok, `src modules failed to load on XS: ${JSON.stringify(run.value.error)}`);
      assert.equal(run.value.value!.length, modules.length);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the worker has no console, setTimeout, queueMicrotask, Intl: src needs none of them', async () => {
    const xs = await onXs<ReturnType<typeof envFixture.scenario>>('env.ts');
    for (const absent of ['console', 'setTimeout', 'queueMicrotask', 'structuredClone', 'Intl', 'URL', 'atob']) {
      assert.equal(xs.globals[absent], 'undefined', `${absent} on XS`);
    }
    for (const present of ['BigInt', 'TextEncoder', 'WeakRef', 'print', 'issueCommand']) assert.equal(xs.globals[present], 'function', present);
    assert.equal(xs.features.privateFields, true, 'class private fields and #x in o');
    assert.equal(xs.features.errorCause, 'c', 'Error cause');
    // Without Intl, XS formats numbers without grouping: device code must not rely on toLocaleString.
    assert.equal(xs.features.toLocaleString, '1234.5');
    assert.equal(xs.features.jsonNumber, envFixture.scenario().features.jsonNumber, 'JSON number formatting as on Node');
  });

  it('CoAP codec: encodings byte for byte as on Node, round trips, every malformed case a CoapFormatError with its reason', async () => {
    const xs = await onXs<ReturnType<typeof codecFixture.scenario>>('codec.ts');
    // Byte for byte against the same src/coap/codec.ts encoding on Node.
    const node = codecFixture.messages();
    assert.equal(xs.encoded.length, node.length);
    node.forEach(([name, m], i) => {
      assert.equal(xs.encoded[i]!.name, name);
      assert.equal(xs.encoded[i]!.hex, Buffer.from(encode(m)).toString('hex'), `${name}: XS and Node encode differently`);
      assert.equal(xs.encoded[i]!.reencoded, true, `${name}: decode(encode(m)) re-encodes to the same bytes on XS`);
    });
    // Spot checks by hand: tokens of 0 and 8 bytes, an empty ACK; option numbers and lengths across the 13/14 extensions.
    assert.equal(xs.encoded[0]!.hex, '40011200');
    assert.equal(xs.encoded[8]!.hex, '48011208080f161d242b3239');
    assert.equal(xs.encoded.find((e) => e.name === 'ack-empty')!.hex, '6000fffe');
    const ext = xs.encoded.find((e) => e.name === 'extended-delta-length')!;
    const decoded = decode(Buffer.from(ext.hex, 'hex'));
    assert.equal(decoded.type, CoapType.NON);
    assert.deepEqual(decoded.options.map((o) => [o.number, o.value.length]), [[6, 3], [11, 12], [11, 13], [23, 1], [35, 268], [258, 1], [2000, 269], [65000, 300]]);
    // Malformed input: CoapFormatError (instanceof on XS) with the reason decode() documents.
    for (const c of [...xs.malformed, ...xs.unencodable]) {
      assert.equal(c.thrown, 'CoapFormatError', `${JSON.stringify(c)}`);
      assert.equal(c.formatError, true, `instanceof CoapFormatError on XS: ${JSON.stringify(c)}`);
      assert.equal(c.code, 'format');
      assert.equal(c.reason, c.expected, `${'hex' in c ? c.hex : ''}: reason`);
    }
    assert.equal(xs.malformed.length, codecFixture.MALFORMED.length);
    // And the whole result is what Node computes.
    assert.deepEqual(xs, asJson(codecFixture.scenario()));
  });

  it('CoAP client: retransmission at 0, 2, 6, 14, 30 s and timeout at 62 s (jitter 0); empty ACK then a separate CON response, ACKed', async () => {
    const xs = await onXs<Awaited<ReturnType<typeof clientFixture.scenario>>>('client.ts');
    const r = xs.retransmission;
    assert.deepEqual(r.sends.map((s) => s.at), [0, 2000, 6000, 14000, 30000]);
    const gaps = r.sends.slice(1).map((s, i) => s.at - r.sends[i]!.at);
    assert.deepEqual(gaps, [2000, 4000, 8000, 16000]);
    assert.ok(r.sends.every((s) => s.hex === r.sends[0]!.hex), 'each retransmission is the same datagram (same MID, token)');
    assert.equal(r.beforeTimeout, true, 'not failed at 61 999 ms');
    assert.equal(r.failedAt, 62000);
    assert.deepEqual(r.error, { name: 'CoapTimeoutError', code: 'timeout' });
    assert.equal(r.retransmissions, 4);
    assert.equal(r.pendingTimers, 0);

    const s = xs.separate;
    assert.deepEqual(s.afterEmptyAck, { sends: 1, response: false }, 'the empty ACK stops retransmission but does not resolve');
    assert.equal(s.sends.length, 2);
    assert.deepEqual({ type: s.sends[1]!.type, code: s.sends[1]!.code, mid: s.sends[1]!.mid, hex: s.sends[1]!.hex }, { type: CoapType.ACK, code: 0, mid: 0x7001, hex: '60007001' });
    assert.deepEqual(s.response, { code: 0x45, type: CoapType.CON, payload: '{"shared":{"reportingInterval":5}}', at: 1500 });
    assert.equal(s.retransmissions, 0);
    assert.equal(s.pendingTimers, 0);

    assert.deepEqual(xs, asJson(await clientFixture.scenario()));
  });

  it('DeviceApp on a tiny ThingsBoard: telemetry with ts, reportingInterval 5 s from the shared attribute, RPC getState answered', async () => {
    const xs = await onXs<Awaited<ReturnType<typeof appFixture.scenario>>>('app.ts');
    const tok = 'api/v1/A1_TEST_TOKEN';
    const requests = xs.seen.filter((s) => s.code !== 0);
    assert.deepEqual(
      requests.slice(0, 3).map((s) => [s.path, s.code, s.observe]),
      [[`${tok}/attributes`, 2, undefined], [`${tok}/attributes`, 1, 0], [`${tok}/rpc`, 1, 0]],
    );
    assert.deepEqual(JSON.parse(requests[0]!.payload), { reportingInterval: 60 });
    const telemetry = requests.filter((s) => s.path === `${tok}/telemetry`);
    const values = { temperature: 21.5, humidity: 40.25, status: 'ok' };
    assert.deepEqual(
      telemetry.map((t) => [t.at, JSON.parse(t.payload)]),
      [0, 5000, 10000].map((at) => [at, { ts: 1_700_000_000_000 + at, values }]),
    );
    assert.equal(telemetry[0]!.payload, '{"ts":1700000000000,"values":{"temperature":21.5,"humidity":40.25,"status":"ok"}}');
    assert.equal(xs.intervalAfterStart, 5000);
    assert.equal(xs.intervalMs, 5000);
    assert.ok(xs.events.some((e) => e.type === 'interval' && e.ms === 5000));
    const reply = requests.find((s) => s.path === `${tok}/rpc/7`);
    assert.ok(reply, 'RPC 7 answered');
    assert.deepEqual(JSON.parse(reply.payload), { reportingInterval: 5, uptimeMs: 12000, reports: 3, failures: 0, queued: 0, dropped: 0, stopped: null });
    assert.ok(xs.seen.some((s) => s.type === CoapType.ACK && s.at === 12000), 'the CON RPC notification is ACKed');
    assert.equal(xs.closed, true);
    assert.deepEqual(xs, asJson(await appFixture.scenario()));
  });

  it('BME280 compensation (Math.imul int32, BigInt int64) gives the datasheet values', async () => {
    const xs = await onXs<ReturnType<typeof bmeFixture.scenario>>('bme280.ts');
    assert.equal(xs.tFine, 128422);
    assert.equal(xs.t, 2508, '25.08 °C');
    assert.equal(xs.p, 25767233, '100653.254 Pa in Q24.8');
    assert.deepEqual(xs.bigint, { asUintN: '4294967295', shift: '16384', div: '-3' });
    assert.deepEqual({ h4: xs.cal.digH4, h5: xs.cal.digH5, h6: xs.cal.digH6 }, { h4: -310, h5: -120, h6: -30 });
    assert.deepEqual(xs, asJson(bmeFixture.scenario()));
  });

  it('hardware/dtls/xs_binding.c and dtls_core.c compile against the XS headers (xsmc.h) with a generated mc.xs.h', () => {
    assertWorker();
    for (const dir of XS_INCLUDE_DIRS) assert.ok(existsSync(dir), `XS include dir missing: ${dir} (reinstall @agoric/xsnap)`);
    for (const h of ['includes/xs.h', 'includes/xsmc.h', 'platforms/xsHost.h']) {
      assert.ok(existsSync(path.join(XS_INCLUDE_DIRS[0]!, '..', h)), `XS header missing: ${h}`);
    }
    const cc = process.env.CC ?? 'cc';
    const version = spawnSync(cc, ['--version'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(version.status, 0, `no C compiler (${cc}): the compile check needs one (apt-get install gcc)`);
    const dtls = path.join(REPO_ROOT, 'hardware', 'dtls');
    const binding = readFileSync(path.join(dtls, 'xs_binding.c'), 'utf8');
    // mcconfig/xsc generate mc.xs.h with one xsID_* per property name the C code uses.
    const ids = [...new Set(binding.match(/\bxsID_[A-Za-z_$][A-Za-z0-9_$]*/g) ?? [])].sort();
    assert.ok(ids.includes('xsID_onSend'), 'xs_binding.c uses xsID_* names');
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'xs-cc-'));
    try {
      writeFileSync(
        path.join(tmp, 'mc.xs.h'),
        `/* stub of the mc.xs.h generated by the Moddable build */\n#include "xs.h"\n${ids.map((id, i) => `#define ${id} ((xsIdentifier)${i})`).join('\n')}\n`,
      );
      const flags = ['-std=gnu11', '-Wall', '-Werror=implicit-function-declaration', '-Werror=incompatible-pointer-types', '-Werror=int-conversion', '-Werror=return-type'];
      const includes = [`-I${tmp}`, ...XS_INCLUDE_DIRS.map((d) => `-I${d}`), `-I${dtls}`];
      const failures: string[] = [];
      for (const file of ['xs_binding.c', 'dtls_core.c']) {
        const r = spawnSync(cc, ['-c', '-o', '/dev/null', ...flags, ...includes, path.join(dtls, file)], { encoding: 'utf8', timeout: 60000 });
        if (r.status !== 0) failures.push(`${cc} ${file} (exit ${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
        else if (r.stderr.trim()) console.log(`      ${file} warnings:\n${r.stderr}`);
      }
      assert.equal(failures.length, 0, `the xsmc DTLS binding does not compile against XS 13.3 headers:\n${failures.join('\n')}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
