/*
 * npm run provision -- --server coap://HOST[:5683] (--token-file FILE | --token-env VAR)
 *                      [--out creds.bin] [--flash .sim/flash.bin]
 * npm run provision -- --server coaps://HOST[:5684] --ca ca.pem (--token-file FILE | --token-env VAR
 *                      | --cert device.pem --key device.key) [--hostname NAME] [--out ...] [--flash ...]
 * Options: --provision-key-env VAR --provision-secret-env VAR (device provisioning),
 *          --blocks N (partition size in 4 KB blocks, default 20 = 80 KB), --block-size B.
 *
 * Writes the credentials record (src/storage/credentials.ts), checked first, with the device's own
 * storage code:
 * - --out FILE: a whole storage-partition image (blank, plus the record) to flash at the
 *   partition's offset, e.g. `esptool.py write_flash 0x3D0000 creds.bin`;
 * - --flash FILE: the simulator's flash image, updated in place (atomic replace; the offline
 *   queue and settings in it are kept), created blank when missing.
 * The token is read from a file or an environment variable, never from the command line (where
 * `ps` and shell history would keep it), and no secret is ever printed.
 */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { parseArgs, num } from '../sim/args';
import { FileFlash } from '../sim/flash';
import { DEFAULT_LAYOUT, openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { CredentialsError, encodeCredentials, validateCredentials } from '../../src/storage/credentials';

export const DEFAULT_BLOCKS = DEFAULT_LAYOUT.kvBlocks + DEFAULT_LAYOUT.queueBlocks;

const USAGE = `usage: npm run provision -- --server coap[s]://HOST[:PORT] (--token-file FILE | --token-env VAR | --cert PEM --key PEM)
         [--ca PEM] [--hostname NAME] [--provision-key-env VAR --provision-secret-env VAR]
         (--out IMAGE.bin | --flash SIM-FLASH.bin) [--blocks 20] [--block-size 4096]`;

export interface ProvisionResult {
  lines: string[];
}

/** Reads a secret from a file (trailing newline removed). */
function secretFile(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what}: no file ${path}`);
  return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
}

function secretEnv(name: string, env: Record<string, string | undefined>, what: string): string {
  const v = env[name];
  if (v === undefined) throw new Error(`${what}: environment variable ${name} is not set`);
  return v;
}

/** The CLI, callable from tests: returns what it would print (never a secret). */
export function provision(argv: string[], env: Record<string, string | undefined> = process.env): ProvisionResult {
  const args = parseArgs(argv);
  const str = (k: string) => (typeof args[k] === 'string' ? (args[k] as string) : undefined);
  if (args.help) return { lines: [USAGE] };
  if (args.token !== undefined) throw new Error('--token on the command line is refused (ps and shell history keep it): use --token-file FILE or --token-env VAR');
  const out = str('out');
  const flashPath = str('flash');
  if (!out && !flashPath) throw new Error(`nothing to write: give --out IMAGE.bin and/or --flash SIM-FLASH.bin\n${USAGE}`);
  const server = str('server');
  if (!server) throw new Error(`--server is required\n${USAGE}`);
  const c: StoredCredentials = { server };
  const tokenFile = str('token-file');
  const tokenEnv = str('token-env');
  if (tokenFile && tokenEnv) throw new Error('--token-file and --token-env: give one');
  if (tokenFile) c.token = secretFile(tokenFile, '--token-file');
  if (tokenEnv) c.token = secretEnv(tokenEnv, env, '--token-env');
  const cert = str('cert');
  const key = str('key');
  if (cert) c.cert = readFileSync(cert, 'utf8');
  if (key) c.key = readFileSync(key, 'utf8');
  const ca = str('ca');
  if (ca) c.ca = readFileSync(ca, 'utf8');
  const hostname = str('hostname');
  if (hostname) c.hostname = hostname;
  const pk = str('provision-key-env');
  const ps = str('provision-secret-env');
  if (pk) c.provisionKey = secretEnv(pk, env, '--provision-key-env');
  if (ps) c.provisionSecret = secretEnv(ps, env, '--provision-secret-env');
  validateCredentials(c); // before touching any file
  const blockSize = num(args['block-size'], 4096);
  const blocks = num(args.blocks, DEFAULT_BLOCKS);
  const size = blocks * blockSize;
  const lines: string[] = [];
  const what = `${c.server} with ${c.cert ? 'an X.509 certificate' : c.token !== undefined ? `an access token (${c.token.length} characters, not shown)` : 'provisioning credentials only'}${c.ca ? ' and a CA' : ''}${c.provisionKey ? ', provisioning key/secret (not shown)' : ''}`;
  if (out) {
    // A fresh image, written beside the target and renamed over it: never half a file.
    const tmp = `${out}.tmp`;
    rmSync(tmp, { force: true });
    const f = new FileFlash(tmp, size, blockSize);
    try {
      openDeviceStorage(f).credentials.save(c);
    } finally {
      f.close();
    }
    renameSync(tmp, out);
    lines.push(`wrote ${out}: ${size / 1024} KB storage partition image (${blocks} blocks of ${blockSize} B), credentials record of ${encodeCredentials(c).length} B: ${what}`);
  }
  if (flashPath) {
    const fresh = !existsSync(flashPath);
    const f = new FileFlash(flashPath, size, blockSize);
    try {
      const storage = openDeviceStorage(f);
      const had = storage.credentials.present;
      storage.credentials.save(c);
      lines.push(`${fresh ? 'created' : 'updated'} simulator flash ${flashPath}: credentials ${had ? 'replaced' : 'written'} (queue: ${storage.queue.length} readings kept): ${what}`);
    } finally {
      f.close();
    }
  }
  return { lines };
}

if (require.main === module) {
  try {
    for (const l of provision(process.argv.slice(2)).lines) console.log(l);
  } catch (e) {
    const err = e as Error;
    console.error(`provision: ${err instanceof CredentialsError ? err.message : err.message}`);
    process.exit(2);
  }
}
