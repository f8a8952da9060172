/*
 * Runs the firmware (manifest.json -> src/main.ts) on the XS host against a local endpoint, the
 * way a Moddable user configures a build: a manifest that includes the repository's manifest.json
 * and adds the device's config (server, token, dtls) and resources (certificates).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertHost, buildFirmware, ROOT, startFirmware } from '../../tools/xs/firmware';
import type { RunningFirmware, XsStats } from '../../tools/xs/firmware';

export interface XsDeviceOptions {
  port: number;
  /** 'coap' (default: coap://, coaps:// with dtls) or 'mqtt' (mqtt://, mqtts:// with dtls as the TLS block) */
  scheme?: 'coap' | 'mqtt';
  token?: string;
  /** file paths; they become resources named by their base names */
  dtls?: { ca: string; hostname: string; cert?: string; key?: string };
  reportingInterval?: number;
  speed?: number;
  durationMs?: number;
  statsEveryMs?: number;
  creation?: Record<string, unknown>;
  /** extra config entries */
  config?: Record<string, unknown>;
  /** extra "modules" of the wrapper manifest (paths absolute) */
  modules?: Record<string, string>;
  wallLimitMs?: number;
  /** each host line (stderr) as it arrives */
  onHost?: (line: string) => void;
  /** reuse the directory of an earlier run (its build and its files: the flash image survives, as on a device) */
  dir?: string;
}

export interface XsDevice extends RunningFirmware {
  trace: string[];
  host: string[];
  stats: XsStats[];
  dir: string;
  /** every trace and host line so far, for assertion messages */
  output(): string;
}

const base = (p: string) => p.split('/').pop()!;

/** Writes the wrapper manifest, builds the plan and starts the host; `cleanup` stops it and removes the files. */
export function startXsDevice(o: XsDeviceOptions): XsDevice {
  assertHost();
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'xs-device-'));
  // as on mcconfig's command line (values are strings): server, token, reportingInterval
  const overrides: Record<string, string> = {
    server: `${o.scheme ?? 'coap'}${o.dtls ? 's' : ''}://127.0.0.1:${o.port}`,
    token: o.token ?? '',
    reportingInterval: String(o.reportingInterval ?? 60),
  };
  // and what needs objects or resources, in the wrapper manifest
  const config: Record<string, unknown> = { ...o.config };
  const resources: string[] = [];
  if (o.dtls) {
    const d: Record<string, string> = { hostname: o.dtls.hostname, ca: base(o.dtls.ca) };
    resources.push(o.dtls.ca);
    if (o.dtls.cert && o.dtls.key) {
      d.cert = base(o.dtls.cert);
      d.key = base(o.dtls.key);
      resources.push(o.dtls.cert, o.dtls.key);
    }
    config.dtls = d;
  }
  const manifest = {
    include: [join(ROOT, 'manifest.json')],
    config,
    ...(o.modules ? { modules: o.modules } : {}),
    ...(resources.length ? { resources: { '*': resources } } : {}),
    ...(o.creation ? { creation: o.creation } : {}),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build'), overrides });
  const running = startFirmware({
    plan,
    speed: o.speed ?? 1,
    durationMs: o.durationMs,
    statsEveryMs: o.statsEveryMs,
    wallLimitMs: o.wallLimitMs ?? 60000,
    onHost: (l) => {
      if (process.env.XS_HOST_VERBOSE) console.error(l);
      o.onHost?.(l);
    },
    onTrace: process.env.XS_HOST_VERBOSE ? (l) => console.log(l) : undefined,
  });
  const device: XsDevice = {
    done: running.done,
    live: running.live,
    stop: running.stop,
    trace: running.live.trace,
    host: running.live.host,
    stats: running.live.stats,
    dir,
    output: () => [...device.trace, ...device.host].join('\n'),
  };
  return device;
}

/** Tracks the devices a describe() starts and stops them (and removes their files) after each test. */
export function useXsDevices(): { start(o: XsDeviceOptions): XsDevice } {
  let devices: XsDevice[] = [];
  afterEach(async () => {
    for (const d of devices) {
      d.stop();
      await d.done;
    }
    for (const d of devices) {
      rmSync(d.dir, { recursive: true, force: true });
    }
    devices = [];
  });
  return {
    start(o) {
      const d = startXsDevice(o);
      devices.push(d);
      return d;
    },
  };
}
