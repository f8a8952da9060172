/*
 * A firmware update end to end, on one screen: the local endpoint (CoAP, or CoAPs with --coaps),
 * a simulated device with A/B image slots and a storage flash, a package uploaded and assigned, and
 * the device downloading, verifying, switching and confirming it, with each fw_state as it happens.
 *
 *   npm start -- --ota [--coaps]      (the same demo with its defaults)
 *   npx tsx tools/sim/ota-demo.ts [--size 65536] [--algorithm SHA256] [--coaps] [--loss 0.2] [--bad-checksum] [--unreachable]
 *
 * --unreachable: the new image cannot reach the server, so the loader rolls it back after 3 boots.
 * Exit 0 when the outcome is what the options asked for (UPDATED, or FAILED for the last two).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isChecksumAlgorithm } from '../../src/ota/hash';
import { makeTestPki } from '../provision/certs';
import { startTbServer } from '../tb-server/server';
import { OtaLibrary, fwStateHistory } from '../tb-server/ota-packages';
import { ScaledClock } from './clock';
import { consoleLog } from './device';
import { MemFlash } from './flash';
import { OtaSimDevice } from './ota-device';
import { SimFirmwareSlots } from './ota-slots';

export async function otaDemo(args: string[] = process.argv.slice(2)): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      size: { type: 'string', default: '65536' },
      algorithm: { type: 'string', default: 'SHA256' },
      coaps: { type: 'boolean', default: false },
      loss: { type: 'string', default: '0' },
      'bad-checksum': { type: 'boolean', default: false },
      unreachable: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npx tsx tools/sim/ota-demo.ts [--size BYTES] [--algorithm MD5|SHA256|SHA384|SHA512|CRC32|MURMUR3_32|MURMUR3_128] [--coaps] [--loss 0..0.5] [--bad-checksum] [--unreachable]');
    return 0;
  }
  const size = Number(values.size);
  const loss = Number(values.loss);
  if (!(size > 0 && size <= 512 * 1024) || !(loss >= 0 && loss <= 0.5) || !isChecksumAlgorithm(values.algorithm)) {
    console.error('--size 1..524288, --loss 0..0.5, --algorithm one of MD5 SHA256 SHA384 SHA512 CRC32 MURMUR3_32 MURMUR3_128');
    return 2;
  }
  const expectFailure = values['bad-checksum'] || values.unreachable;
  const dir = mkdtempSync(join(tmpdir(), 'ota-demo-'));
  const pki = values.coaps ? makeTestPki() : undefined;
  const server = await startTbServer({
    coapPort: 0, httpPort: 0, dataDir: dir, log: () => undefined,
    ...(pki ? { dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } : {}),
  });
  const device = server.store.createDevice('ota-demo');
  const clock = new ScaledClock(10);
  const log = consoleLog('info', clock);
  const slots = new SimFirmwareSlots({ factory: { title: 'demo-fw', version: '1.0.0' }, slotBytes: 512 * 1024 });
  const sim = new OtaSimDevice({
    server: { host: '127.0.0.1', port: pki ? server.coapsPort! : server.coapPort },
    credentials: { kind: 'token', token: device.token },
    ...(pki ? { dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' } } : {}),
    reportingIntervalMs: 600_000,
    clock,
    log,
    flash: new MemFlash(80 * 1024, 4096),
    slots,
    otaOptions: { trialTimeoutMs: 60_000 },
    perImage: (img) => (values.unreachable && img.version === '1.1.0' ? { server: { host: '127.0.0.1', port: 9 } } : {}),
    onBoot: ({ agent, boot, device: d }) => {
      console.log(`--- boot ${boot}: ${slots.history.at(-1)}`);
      if (loss) d.udp.faults = { lossIn: loss, lossOut: loss };
      let shown = -1;
      agent.onEvent = (e) => {
        if (e.type === 'state') console.log(`    fw_state ${e.state}${e.error ? `: ${e.error}` : ''}`);
        if (e.type === 'chunk' && (e.index === e.count - 1 || Math.floor((e.index * 10) / e.count) !== shown)) {
          shown = Math.floor((e.index * 10) / e.count);
          console.log(`    chunk ${e.index + 1}/${e.count}`);
        }
      };
    },
  });
  try {
    await sim.boot();
    const lib = new OtaLibrary(dir);
    const data = randomBytes(size);
    lib.upload({ title: 'demo-fw', version: '1.1.0', data, checksumAlgorithm: values.algorithm, ...(values['bad-checksum'] ? { checksum: '0'.repeat(8) } : {}) });
    const pkg = lib.get('fw', 'demo-fw', '1.1.0')!;
    console.log(`--- package demo-fw 1.1.0: ${size} B, ${pkg.checksumAlgorithm} ${pkg.checksum}; assigned to ota-demo (fw_* shared attributes)`);
    lib.assign(server.store, server.service, server.store.findDevice('ota-demo')!, pkg);
    const end = Date.now() + 180_000;
    const done = () => {
      const t = server.store.latestTelemetry(device.id).fw_state?.value;
      return t === 'UPDATED' || (t === 'FAILED' && (!values.unreachable || slots.running().version === '1.0.0'));
    };
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    console.log('--- fw_state history on the server (tb-server fw-state NAME):');
    for (const h of fwStateHistory(server.store, device.id)) console.log(`    ${new Date(h.ts as number).toISOString()} ${String(h.fw_state)}${h.fw_error ? ` (${String(h.fw_error)})` : ''}${h.current_fw_version ? ` current ${String(h.current_fw_version)}` : ''}`);
    console.log(`--- boots: ${slots.history.join(' | ')}; running ${slots.running().version}`);
    const state = server.store.latestTelemetry(device.id).fw_state?.value;
    return (expectFailure ? state === 'FAILED' : state === 'UPDATED' && Buffer.from(slots.runningImage()).equals(data)) ? 0 : 1;
  } finally {
    sim.stop();
    await new Promise((r) => setTimeout(r, 100));
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  otaDemo().then((code) => process.exit(code), (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
