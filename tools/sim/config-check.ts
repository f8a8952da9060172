/*
 * Checks of the simulator's configuration before the device starts (fail fast, exit 2): the server
 * URL, the access token's source, and the DTLS certificate and key files (parsed with node:crypto:
 * PEM or DER, the key matches the certificate, nothing expired, the CA file holds a certificate).
 * Messages name the option and the file, never a secret or the file's content.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { UsageError, parsePort } from '../cli/options';

export interface ServerUrl {
  scheme: 'coap' | 'coaps';
  host: string;
  port: number;
  secure: boolean;
}

export function parseServerUrl(url: string, what = '--server'): ServerUrl {
  const m = /^(coaps?):\/\/(\[[^\]]+\]|[^:/?#[\]]+)(?::([^/]*))?\/?$/i.exec(url);
  if (!m) throw new UsageError(`${what} must look like coap://HOST:5683 or coaps://HOST:5684 (got '${url}')`);
  const scheme = m[1]!.toLowerCase() as 'coap' | 'coaps';
  const secure = scheme === 'coaps';
  const port = m[3] !== undefined ? parsePort(m[3], `the port in ${what}`) : secure ? 5684 : 5683;
  return { scheme, host: m[2]!.replace(/^\[|\]$/g, ''), port, secure };
}

/**
 * The host mbedTLS (Debian's 2.28) matches the server certificate against DNS names only: an IP
 * address in the URL can never match, whatever the certificate's IP SANs say. Say so at once.
 */
export function checkTlsHostname(server: ServerUrl, hostname: string | undefined): string {
  const name = hostname ?? server.host;
  if (isIP(name)) {
    throw new UsageError(
      `coaps://${server.host.includes(':') ? `[${server.host}]` : server.host}: the certificate check of the host mbedTLS (2.28) matches DNS names only, ` +
        `never an IP address (IP subjectAltNames are not supported), so this handshake would always fail. ` +
        `Use a name the server certificate carries: coaps://localhost:${server.port} for the local endpoint, or keep the address and add --hostname NAME.`,
    );
  }
  return name;
}

/** The server's address, resolved once (a name that does not resolve stops the run with one line). */
export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (e) {
    const code = (e as { code?: string }).code ?? (e as Error).message;
    throw new UsageError(`server host '${host}' does not resolve (${code}): check the name in --server`);
  }
}

const TOKEN_OK = /^[^\s/?#\x00-\x1f\x7f]+$/;

/**
 * The access token, from exactly one of --token, --token-file FILE or the TB_TOKEN environment
 * variable (in that order of precedence only when one is given). Undefined when none is.
 */
export function readToken(opts: { token?: string; tokenFile?: string }, env: Record<string, string | undefined> = process.env): string | undefined {
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new UsageError('--token and --token-file: give one');
  let token: string | undefined;
  let from = '';
  if (opts.tokenFile !== undefined) {
    token = readFile(opts.tokenFile, '--token-file').toString('utf8').replace(/\r?\n$/, '');
    from = `--token-file ${opts.tokenFile}`;
  } else if (opts.token !== undefined) {
    token = opts.token;
    from = '--token';
  } else if (env.TB_TOKEN !== undefined && env.TB_TOKEN !== '') {
    token = env.TB_TOKEN;
    from = 'TB_TOKEN';
  }
  if (token === undefined) return undefined;
  if (!token) throw new UsageError(`the access token from ${from} is empty`);
  if (!TOKEN_OK.test(token)) throw new UsageError(`the access token from ${from} contains a space, a control character or one of / ? # (it goes in the URI path)`);
  return token;
}

function readFile(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new UsageError(`${what}: no such file: ${path}`);
  if (!statSync(path).isFile()) throw new UsageError(`${what}: not a file: ${path}`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`${what}: cannot read ${path}: ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function isPem(data: Buffer): boolean {
  return data.includes('-----BEGIN ');
}

/** The certificates in a PEM (one or more) or DER file. */
function parseCerts(data: Buffer, what: string, path: string): X509Certificate[] {
  const certs: X509Certificate[] = [];
  try {
    if (isPem(data)) {
      const blocks = data.toString('latin1').match(PEM_CERT) ?? [];
      if (!blocks.length) throw new UsageError(`${what} ${path}: a PEM file without a CERTIFICATE block (a key given as the certificate?)`);
      for (const b of blocks) certs.push(new X509Certificate(b));
    } else certs.push(new X509Certificate(data));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${what} ${path}: not a certificate in PEM or DER (${(e as Error).message.split('\n')[0]})`);
  }
  return certs;
}

function checkValidity(c: X509Certificate, what: string, path: string, now: number): void {
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  if (Number.isFinite(to) && to < now) throw new UsageError(`${what} ${path}: the certificate expired on ${new Date(to).toISOString()}`);
  if (Number.isFinite(from) && from > now) throw new UsageError(`${what} ${path}: the certificate is not valid before ${new Date(from).toISOString()}`);
}

function parseKey(data: Buffer, path: string): KeyObject {
  if (isPem(data)) {
    const text = data.toString('latin1');
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text))
      throw new UsageError(`--key ${path}: the key is encrypted with a passphrase; the device needs it unencrypted (openssl pkey -in KEY -out plain.key)`);
    if (/-----BEGIN CERTIFICATE-----/.test(text) && !/PRIVATE KEY-----/.test(text))
      throw new UsageError(`--key ${path}: holds a certificate, not a private key`);
    try {
      return createPrivateKey({ key: text, format: 'pem' });
    } catch (e) {
      throw new UsageError(`--key ${path}: not a private key in PEM or DER (${(e as Error).message.split('\n')[0]})`);
    }
  }
  for (const type of ['pkcs8', 'sec1', 'pkcs1'] as const) {
    try {
      return createPrivateKey({ key: data, format: 'der', type });
    } catch {
      /* next form */
    }
  }
  throw new UsageError(`--key ${path}: not a private key in PEM or DER (PKCS#8, SEC1 or PKCS#1)`);
}

export interface DtlsFiles {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads and checks --ca, --cert and --key before anything is sent. */
export function loadDtlsFiles(paths: { ca: string; cert?: string; key?: string }, now = Date.now()): DtlsFiles {
  if (!!paths.cert !== !!paths.key) throw new UsageError('--cert and --key go together (mutual X.509)');
  const ca = readFile(paths.ca, '--ca');
  const cert = paths.cert ? readFile(paths.cert, '--cert') : undefined;
  const key = paths.key ? readFile(paths.key, '--key') : undefined;
  return checkDtlsMaterial({ ca, ...(cert && key ? { cert, key } : {}) }, { ca: paths.ca, cert: paths.cert, key: paths.key }, now);
}

/**
 * Checks CA, certificate and key contents (from files, or a credentials record in flash): `names`
 * say where each came from in the messages.
 */
export function checkDtlsMaterial(m: { ca: Buffer; cert?: Buffer; key?: Buffer }, names: { ca: string; cert?: string; key?: string }, now = Date.now()): DtlsFiles {
  const paths = names;
  const ca = m.ca;
  const cas = parseCerts(ca, '--ca', paths.ca);
  const usable = cas.filter((c) => {
    const to = Date.parse(c.validTo);
    return !(Number.isFinite(to) && to < now);
  });
  if (!usable.length) checkValidity(cas[0]!, '--ca', paths.ca, now);
  if (!cas.some((c) => c.ca || c.checkIssued(c)))
    throw new UsageError(`--ca ${paths.ca}: not a CA certificate (no basicConstraints CA:TRUE and not self-signed): give the root CA that signed the server's certificate`);
  if (!m.cert || !m.key) return { ca };
  const cert = m.cert;
  const key = m.key;
  const leaf = parseCerts(cert, '--cert', paths.cert ?? '')[0]!;
  checkValidity(leaf, '--cert', paths.cert ?? '', now);
  const k = parseKey(key, paths.key ?? '');
  let match = false;
  try {
    match = leaf.checkPrivateKey(k);
  } catch {
    match = false;
  }
  if (!match) throw new UsageError(`--key ${paths.key} does not belong to --cert ${paths.cert} (the key does not match the certificate's public key)`);
  return { ca, cert, key };
}
