/*
 * npm run provision -- --server coap://HOST[:5683] (--token-file FILE | --token-env VAR)
 *                      [--out creds.bin] [--flash .sim/flash.bin]
 * npm run provision -- --server coaps://HOST[:5684] --ca ca.pem (--token-file FILE | --token-env VAR
 *                      | --cert device.pem --key device.key) [--hostname NAME] [--out ...] [--flash ...]
 * Options: --provision-key-env VAR --provision-secret-env VAR (device provisioning: with a token
 *          or nothing, the device gets an access token at first boot; with --cert/--key it registers
 *          its certificate, credentialsType X509_CERTIFICATE), --blocks N (partition size in 4 KB
 *          blocks, default 20 = 80 KB), --block-size B.
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
import { EXIT, HELP_OPTION, UsageError, flag, helpText, integer, parseCommandLine, runMain } from '../cli/options';
import type { CommandSpec } from '../cli/options';
import { FileFlash } from '../sim/flash';
import { checkDtlsMaterial } from '../sim/config-check';
import { DEFAULT_LAYOUT, openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { CredentialsError, encodeCredentials, validateCredentials } from '../../src/storage/credentials';

export const DEFAULT_BLOCKS = DEFAULT_LAYOUT.kvBlocks + DEFAULT_LAYOUT.queueBlocks;

export const PROVISION_SPEC: CommandSpec = {
  usage: [
    'npm run provision -- --server coap[s]://HOST[:PORT] (--token-file FILE | --token-env VAR | --cert PEM --key PEM) [--ca PEM] [--hostname NAME]',
    '                      [--provision-key-env VAR --provision-secret-env VAR] (--out IMAGE.bin | --flash SIM-FLASH.bin) [--blocks 20] [--block-size 4096]',
  ],
  summary:
    'Writes the device\'s credentials record (checked first) into a storage-partition image to flash (--out) or into the simulator\'s flash image ' +
    '(--flash, updated in place; its queue and settings are kept). Secrets come from files or environment variables, never the command line, and are never printed.',
  options: [
    { name: 'server', type: 'string', value: 'URL', help: 'coap://HOST[:5683], coaps://HOST[:5684], mqtt://HOST[:1883] or mqtts://HOST[:8883] (required)' },
    { name: 'token-file', type: 'string', value: 'FILE', help: 'read the access token from FILE' },
    { name: 'token-env', type: 'string', value: 'VAR', help: 'read the access token from environment variable VAR', default: 'TB_TOKEN when set' },
    { name: 'token', type: 'string', value: 'TOKEN', help: 'refused: ps and shell history keep it (use --token-file or --token-env)' },
    { name: 'ca', type: 'string', value: 'PEM', help: 'coaps: CA root(s) of the server certificate' },
    { name: 'cert', type: 'string', value: 'PEM', help: 'coaps mutual X.509: device certificate (with --key)' },
    { name: 'key', type: 'string', value: 'PEM', help: 'coaps mutual X.509: device private key' },
    { name: 'hostname', type: 'string', value: 'NAME', help: 'name checked against the server certificate', default: 'the host in --server' },
    { name: 'provision-key-env', type: 'string', value: 'VAR', help: 'network provisioning: the profile key from environment variable VAR' },
    { name: 'provision-secret-env', type: 'string', value: 'VAR', help: 'network provisioning: the profile secret from environment variable VAR' },
    { name: 'out', type: 'string', value: 'FILE', help: 'write a whole fresh partition image (written beside, then renamed)' },
    { name: 'flash', type: 'string', value: 'FILE', help: 'update the simulator\'s flash image in place (created blank when missing)' },
    { name: 'blocks', type: 'string', value: 'N', help: 'partition size in blocks', default: `${DEFAULT_LAYOUT.kvBlocks + DEFAULT_LAYOUT.queueBlocks} (80 KB)` },
    { name: 'block-size', type: 'string', value: 'BYTES', help: 'flash erase block size', default: '4096' },
    HELP_OPTION,
  ],
  examples: [
    'npm run provision -- --server coap://tb.example.com:5683 --token-file token.txt --out creds.bin',
    'TB_TOKEN=... npm run provision -- --server coap://127.0.0.1:5683 --flash .sim/flash.bin',
    'npm run provision -- --server coaps://tb.example.com --ca ca.pem --cert device.pem --key device.key --out creds.bin',
    'TB_PK=... TB_PS=... npm run provision -- --server mqtts://tb.example.com --ca ca.pem --cert device.pem --key device.key --provision-key-env TB_PK --provision-secret-env TB_PS --out creds.bin',
  ],
};

const USAGE = helpText(PROVISION_SPEC, 'exit codes: 0 written, 1 runtime failure (a file could not be written), 2 usage or configuration error');

export interface ProvisionResult {
  lines: string[];
}

/** Reads a secret from a file (trailing newline removed). */
function secretFile(path: string, what: string): string {
  if (!existsSync(path)) throw new UsageError(`${what}: no file ${path}`);
  return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
}

function secretEnv(name: string, env: Record<string, string | undefined>, what: string): string {
  const v = env[name];
  if (v === undefined) throw new UsageError(`${what}: environment variable ${name} is not set`);
  return v;
}

/** The CLI, callable from tests: returns what it would print (never a secret). */
export function provision(argv: string[], env: Record<string, string | undefined> = process.env): ProvisionResult {
  const args = parseCommandLine(PROVISION_SPEC, argv);
  const str = (k: string) => (typeof args.values[k] === 'string' ? (args.values[k] as string) : undefined);
  if (flag(args, 'help')) return { lines: [USAGE] };
  if (args.values.token !== undefined) throw new UsageError('--token on the command line is refused (ps and shell history keep it): use --token-file FILE or --token-env VAR');
  const out = str('out');
  const flashPath = str('flash');
  if (!out && !flashPath) throw new UsageError('nothing to write: give --out IMAGE.bin and/or --flash SIM-FLASH.bin; see --help');
  const server = str('server');
  if (!server) throw new UsageError('--server is required; see --help');
  const c: StoredCredentials = { server };
  const tokenFile = str('token-file');
  const tokenEnv = str('token-env');
  if (tokenFile && tokenEnv) throw new Error('--token-file and --token-env: give one');
  if (tokenFile) c.token = secretFile(tokenFile, '--token-file');
  if (tokenEnv) c.token = secretEnv(tokenEnv, env, '--token-env');
  else if (!tokenFile && !str('cert') && env.TB_TOKEN) c.token = env.TB_TOKEN;
  const cert = str('cert');
  const key = str('key');
  const pem = (f: string, what: string): string => {
    if (!existsSync(f)) throw new UsageError(`${what}: no file ${f}`);
    return readFileSync(f, 'utf8');
  };
  if (cert) c.cert = pem(cert, '--cert');
  if (key) c.key = pem(key, '--key');
  const ca = str('ca');
  if (ca) c.ca = pem(ca, '--ca');
  const hostname = str('hostname');
  if (hostname) c.hostname = hostname;
  const pk = str('provision-key-env');
  const ps = str('provision-secret-env');
  if (pk) c.provisionKey = secretEnv(pk, env, '--provision-key-env');
  if (ps) c.provisionSecret = secretEnv(ps, env, '--provision-secret-env');
  validateCredentials(c); // before touching any file
  // The device checks these again at boot (src/device/provisioned.ts); here node:crypto does, so a
  // key that does not match its certificate, an expired certificate or a CA that is none never
  // reaches a flash image.
  if (c.ca) checkDtlsMaterial({ ca: Buffer.from(c.ca), ...(c.cert && c.key ? { cert: Buffer.from(c.cert), key: Buffer.from(c.key) } : {}) }, { ca: ca!, ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
  const blockSize = integer(args, 'block-size', 4096, 256)!;
  const blocks = integer(args, 'blocks', DEFAULT_BLOCKS, 1)!;
  const size = blocks * blockSize;
  const lines: string[] = [];
  const what =
    `${c.server} with ${c.cert ? 'an X.509 certificate' : c.token !== undefined ? `an access token (${c.token.length} characters, not shown)` : 'provisioning credentials only'}${c.ca ? ' and a CA' : ''}` +
    `${c.provisionKey ? `, provisioning key/secret (not shown)${c.cert ? ': registers the certificate (X509_CERTIFICATE) at first boot' : c.token === undefined ? ': gets an access token at first boot' : ''}` : ''}`;
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
  runMain('provision', async () => {
    try {
      for (const l of provision(process.argv.slice(2)).lines) console.log(l);
      return EXIT.OK;
    } catch (e) {
      // A credentials record that does not pass its checks is a configuration error.
      if (e instanceof CredentialsError) throw new UsageError(e.message);
      throw e;
    }
  });
}
