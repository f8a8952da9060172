/*
 * `npm run sim -- --engine xs ...`: the firmware itself (manifest.json -> src/main.ts) on the XS host
 * instead of the app wired to Node in tools/sim. The sim's options become the build's config, as
 * `mcconfig ... key=value` and a manifest's "config"/"resources" would set them:
 *   --server URL -> server=URL          --token T -> token=T         --interval S -> reportingInterval=S
 *   --nbiot -> transmission=nbiot       --observe-refresh S -> observeRefresh=S
 *   --ca/--cert/--key FILE, --hostname NAME -> config.dtls {ca, cert, key, hostname} + resources
 *   --speed N, --duration S -> the host's clock speed-up and run length (device time)
 * The datagram trace of the Node engine is not available; the firmware's own log (trace) is shown.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { buildFirmware, ROOT, startFirmware } from './firmware';

type SimArgs = Record<string, string | boolean | string[]>;

export async function runSimOnXs(args: SimArgs): Promise<number> {
  const str = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  for (const k of ['non', 'no-response'])
    if (args[k]) throw new Error(`--${k} is not a config entry of the firmware (src/main.ts); run it with --engine node`);
  const overrides: Record<string, string> = {};
  if (str('server')) overrides.server = str('server')!;
  if (str('token')) overrides.token = str('token')!;
  if (str('interval')) overrides.reportingInterval = str('interval')!;
  if (args.nbiot) overrides.transmission = 'nbiot';
  if (str('observe-refresh')) overrides.observeRefresh = str('observe-refresh')!;
  const config: Record<string, unknown> = {};
  const resources: string[] = [];
  if (str('ca')) {
    const dtls: Record<string, string> = { ca: basename(str('ca')!) };
    resources.push(resolve(str('ca')!));
    if (str('hostname')) dtls.hostname = str('hostname')!;
    if (!!str('cert') !== !!str('key')) throw new Error('--cert and --key go together (mutual X.509)');
    if (str('cert') && str('key')) {
      dtls.cert = basename(str('cert')!);
      dtls.key = basename(str('key')!);
      resources.push(resolve(str('cert')!), resolve(str('key')!));
    }
    config.dtls = dtls;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sim-xs-'));
  try {
    writeFileSync(
      join(dir, 'manifest.json'),
      JSON.stringify({ include: [join(ROOT, 'manifest.json')], config, ...(resources.length ? { resources: { '*': resources } } : {}) }, null, 2),
    );
    const plan = buildFirmware({ manifest: join(dir, 'manifest.json'), outDir: join(dir, 'build'), overrides });
    const speed = str('speed') ? Number(str('speed')) : 1;
    const duration = str('duration') ? Number(str('duration')) : undefined;
    console.error(`sim: engine xs: ${plan.modules.size} modules, ${plan.preloads.length} preloaded, creation.stack ${plan.creation.stack} slots, speed ${speed}x`);
    const running = startFirmware({
      plan,
      speed,
      durationMs: duration !== undefined ? duration * 1000 : undefined,
      onTrace: (l) => console.log(l),
      onHost: (l) => console.error(l),
      wallLimitMs: 2 ** 31 - 1,
    });
    const stop = () => running.stop();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const r = await running.done;
    return r.code ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
