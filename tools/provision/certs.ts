/*
 * Test PKI for DTLS: `npm run certs -- --out DIR` (default .certs).
 *
 * Produces, with the openssl CLI (EC P-256 unless noted):
 *   ca.pem / ca.key                 the test root CA
 *   server.pem / server.key         CN=localhost, SAN DNS:localhost (serverAuth), signed by the CA
 *   server-expired.pem / .key       same name, validity ended yesterday
 *   device.pem / device.key         client certificate CN=device-001 (clientAuth), signed by the CA
 *   device.der / device.key.der     the same in DER
 *   device-rsa.pem / .key           RSA 2048 client certificate
 *   rogue-ca.pem / rogue-ca.key     a second, untrusted CA
 *   rogue-server.pem / .key         CN=localhost signed by the rogue CA
 *   rogue-device.pem / .key         client certificate signed by the rogue CA
 * Idempotent: files that exist are kept (delete DIR to regenerate).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EXIT, HELP_OPTION, UsageError, flag, helpText, parseCommandLine, runMain, str } from '../cli/options';
import type { CommandSpec } from '../cli/options';

export interface TestPki {
  dir: string;
  /** Absolute path of a file in the PKI directory. */
  path(name: string): string;
  /** Contents of a file in the PKI directory. */
  read(name: string): Buffer;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

function ecKey(dir: string, name: string): void {
  if (!existsSync(join(dir, name))) openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name], dir);
}

function rsaKey(dir: string, name: string): void {
  if (!existsSync(join(dir, name))) openssl(['genrsa', '-out', name, '2048'], dir);
}

function selfSigned(dir: string, key: string, out: string, cn: string): void {
  if (existsSync(join(dir, out))) return;
  const ext = `${out}.ext`;
  writeFileSync(
    join(dir, ext),
    '[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  );
  openssl(
    ['req', '-new', '-x509', '-key', key, '-subj', `/CN=${cn}`, '-days', '3650', '-sha256', '-config', ext,
      '-extensions', 'v3', '-out', out],
    dir,
  );
  rmSync(join(dir, ext));
}

function issue(
  dir: string,
  opts: { key: string; out: string; cn: string; caCert: string; caKey: string; usage: 'server' | 'client'; days?: number },
): void {
  if (existsSync(join(dir, opts.out))) return;
  const csr = `${opts.out}.csr`;
  const ext = `${opts.out}.ext`;
  const lines = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];
  if (opts.usage === 'server') {
    lines.push('extendedKeyUsage=serverAuth', `subjectAltName=DNS:${opts.cn}`);
  } else {
    lines.push('extendedKeyUsage=clientAuth');
  }
  writeFileSync(join(dir, ext), lines.join('\n') + '\n');
  openssl(['req', '-new', '-key', opts.key, '-subj', `/CN=${opts.cn}`, '-out', csr], dir);
  openssl(
    ['x509', '-req', '-in', csr, '-CA', opts.caCert, '-CAkey', opts.caKey, '-CAcreateserial', '-sha256',
      '-days', String(opts.days ?? 825), '-extfile', ext, '-out', opts.out],
    dir,
  );
  rmSync(join(dir, csr));
  rmSync(join(dir, ext));
}

/** Creates (or completes) the test PKI in `dir`. */
export function makeCerts(dir: string): TestPki {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true });
  ecKey(abs, 'ca.key');
  selfSigned(abs, 'ca.key', 'ca.pem', 'TB Test Root CA');
  ecKey(abs, 'server.key');
  issue(abs, { key: 'server.key', out: 'server.pem', cn: 'localhost', caCert: 'ca.pem', caKey: 'ca.key', usage: 'server' });
  ecKey(abs, 'server-expired.key');
  issue(abs, {
    key: 'server-expired.key', out: 'server-expired.pem', cn: 'localhost', caCert: 'ca.pem', caKey: 'ca.key',
    usage: 'server', days: -1,
  });
  ecKey(abs, 'device.key');
  issue(abs, { key: 'device.key', out: 'device.pem', cn: 'device-001', caCert: 'ca.pem', caKey: 'ca.key', usage: 'client' });
  if (!existsSync(join(abs, 'device.der'))) openssl(['x509', '-in', 'device.pem', '-outform', 'DER', '-out', 'device.der'], abs);
  if (!existsSync(join(abs, 'device.key.der'))) openssl(['pkey', '-in', 'device.key', '-outform', 'DER', '-out', 'device.key.der'], abs);
  rsaKey(abs, 'device-rsa.key');
  issue(abs, { key: 'device-rsa.key', out: 'device-rsa.pem', cn: 'device-rsa', caCert: 'ca.pem', caKey: 'ca.key', usage: 'client' });
  ecKey(abs, 'rogue-ca.key');
  selfSigned(abs, 'rogue-ca.key', 'rogue-ca.pem', 'Rogue Root CA');
  ecKey(abs, 'rogue-server.key');
  issue(abs, {
    key: 'rogue-server.key', out: 'rogue-server.pem', cn: 'localhost', caCert: 'rogue-ca.pem', caKey: 'rogue-ca.key', usage: 'server',
  });
  ecKey(abs, 'rogue-device.key');
  issue(abs, {
    key: 'rogue-device.key', out: 'rogue-device.pem', cn: 'device-001', caCert: 'rogue-ca.pem', caKey: 'rogue-ca.key', usage: 'client',
  });
  return {
    dir: abs,
    path: (name) => join(abs, name),
    read: (name) => readFileSync(join(abs, name)),
  };
}

/** For tests: one PKI per process run, cached in the OS temp directory. */
export function makeTestPki(dir: string = join(tmpdir(), 'tb-dtls-test-pki')): TestPki {
  return makeCerts(dir);
}

export const CERTS_SPEC: CommandSpec = {
  usage: ['npm run certs -- [--out DIR]'],
  summary:
    'Makes the test PKI for DTLS with the openssl CLI: a root CA, a server certificate for localhost, a device certificate (PEM and DER), ' +
    'an RSA device certificate, an expired server certificate and a rogue CA with its certificates. Files that exist are kept (delete DIR to make new ones).',
  options: [
    { name: 'out', type: 'string', value: 'DIR', help: 'where to write the files', default: '.certs' },
    HELP_OPTION,
  ],
  examples: ['npm run certs', 'npm run certs -- --out /tmp/pki'],
};

function main(argv: string[]): number {
  const p = parseCommandLine(CERTS_SPEC, argv);
  if (flag(p, 'help')) {
    console.log(helpText(CERTS_SPEC, 'exit codes: 0 made, 1 runtime failure (openssl failed), 2 usage error'));
    return EXIT.OK;
  }
  const out = str(p, 'out') ?? '.certs';
  if (!out) throw new UsageError('--out needs a directory');
  const pki = makeCerts(out);
  console.log(`test PKI in ${pki.dir}: ca.pem, server.pem/.key (localhost), device.pem/.key, server-expired.pem, rogue-*.pem`);
  return EXIT.OK;
}

if (require.main === module) runMain('certs', async () => main(process.argv.slice(2)));
