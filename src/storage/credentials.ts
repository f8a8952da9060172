/*
 * The credentials record: server URL, access token, X.509 client certificate and key, CA,
 * provisioning key/secret. One value in the key/value store, so it is replaced atomically (the
 * old or the new record, never neither). Checked when written and again when loaded at boot, so
 * an empty token or a PEM of the wrong shape is a clear error at once, not a 4.01 or a failed
 * handshake later. No message ever contains a secret: fields are named, values never shown.
 */
import { decodeUtf8, encodeUtf8 } from '../coap/utf8';
import type { KvStore } from './kv';
import { StorageError } from './errors';

export const KEY_CREDENTIALS = 1;

export interface StoredCredentials {
  /** coap://host[:port] or coaps://host[:port]. */
  server: string;
  /** ThingsBoard access token (in the URI path). */
  token?: string;
  /** X.509 client certificate (PEM) and its private key (PEM), for mutual DTLS. */
  cert?: string;
  key?: string;
  /** CA certificate(s) (PEM) that signed the server's certificate: required for coaps://. */
  ca?: string;
  /** Name checked against the server certificate, when it differs from the URL's host. */
  hostname?: string;
  /** Device provisioning (ThingsBoard device profile key and secret). */
  provisionKey?: string;
  provisionSecret?: string;
  /**
   * Network provisioning progress: 'pending' = `token` was chosen by the device and saved before it
   * asked the server to provision it with that token; 'done' = the server confirmed it.
   */
  provisionState?: 'pending' | 'done';
}

export type CredentialsErrorCode = 'missing' | 'invalid' | 'corrupt';

export class CredentialsError extends Error {
  override readonly name: string = 'CredentialsError';
  readonly code: CredentialsErrorCode;
  /** The field at fault, when one is. */
  readonly field: string | undefined;
  constructor(code: CredentialsErrorCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

const FIELDS = Object.freeze(['server', 'token', 'cert', 'key', 'ca', 'hostname', 'provisionKey', 'provisionSecret', 'provisionState'] as const);
type Field = (typeof FIELDS)[number];
const VERSION = 1;

export type ServerScheme = 'coap' | 'coaps' | 'mqtt' | 'mqtts';
export const DEFAULT_PORTS: Readonly<Record<ServerScheme, number>> = Object.freeze({ coap: 5683, coaps: 5684, mqtt: 1883, mqtts: 8883 });

export interface ServerAddress {
  scheme: ServerScheme;
  /** coaps:// or mqtts:// */
  secure: boolean;
  /** mqtt:// or mqtts:// */
  mqtt: boolean;
  host: string;
  port: number;
}

/** coap://, coaps://, mqtt:// or mqtts:// host[:port] (IPv6 literals in brackets); undefined if not one. */
export function parseServerUrl(url: string): ServerAddress | undefined {
  const m = /^(coaps?|mqtts?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(url);
  if (!m) return undefined;
  const scheme = m[1] as ServerScheme;
  const port = m[3] ? Number(m[3]) : DEFAULT_PORTS[scheme];
  if (!(port > 0 && port < 65536)) return undefined;
  return { scheme, secure: scheme === 'coaps' || scheme === 'mqtts', mqtt: scheme === 'mqtt' || scheme === 'mqtts', host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

interface PemBlock {
  label: string;
  /** Base64 body, line breaks removed. */
  body: string;
}

/** PEM blocks of `text`, or a reason why it is not PEM. Only the shape is checked, not the DER. */
export function pemBlocks(text: string): PemBlock[] | string {
  const lines = text.replace(/\r/g, '').split('\n');
  const blocks: PemBlock[] = [];
  let open: { label: string; body: string[] } | undefined;
  for (const raw of lines) {
    const line = raw.trim();
    if (!line) continue;
    const begin = /^-----BEGIN ([A-Z0-9 ]+)-----$/.exec(line);
    const end = /^-----END ([A-Z0-9 ]+)-----$/.exec(line);
    if (begin) {
      if (open) return `BEGIN ${begin[1]} inside ${open.label}`;
      open = { label: begin[1]!, body: [] };
    } else if (end) {
      if (!open || open.label !== end[1]) return `END ${end[1]} without its BEGIN`;
      const body = open.body.join('');
      if (!body.length || body.length % 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return `${open.label}: the body is not base64`;
      blocks.push({ label: open.label, body });
      open = undefined;
    } else if (open) {
      if (/^[A-Za-z0-9+/=]+$/.test(line)) open.body.push(line);
      else if (!/^[A-Za-z-]+:/.test(line)) return `${open.label}: the body is not base64`;
    } else return 'text outside BEGIN/END lines';
  }
  if (open) return `${open.label}: no END line`;
  if (!blocks.length) return 'no BEGIN line';
  return blocks;
}

/** A DER SEQUENCE (what certificates and keys are) starts 0x30: base64 "M". */
function derSequence(b: PemBlock): boolean {
  return b.body.startsWith('M');
}

function checkPem(field: Field, text: string, labels: string[], many: boolean): void {
  const blocks = pemBlocks(text);
  const what = field === 'key' ? 'a PEM private key' : many ? 'PEM certificates' : 'a PEM certificate';
  if (typeof blocks === 'string') throw new CredentialsError('invalid', `credentials: ${field} is not ${what} (${blocks})`, field);
  const main = blocks.filter((b) => b.label !== 'EC PARAMETERS');
  if (!main.length || (!many && main.length > 1)) throw new CredentialsError('invalid', `credentials: ${field} must hold ${many ? 'one or more blocks' : 'exactly one block'} of ${labels.join(' / ')}`, field);
  for (const b of main) {
    if (b.label === 'ENCRYPTED PRIVATE KEY') throw new CredentialsError('invalid', `credentials: ${field} is encrypted; the device needs it unencrypted`, field);
    if (!labels.includes(b.label)) throw new CredentialsError('invalid', `credentials: ${field} holds ${b.label}, expected ${labels.join(' / ')}`, field);
    if (!derSequence(b)) throw new CredentialsError('invalid', `credentials: ${field} (${b.label}) is not DER inside`, field);
  }
}

/** Throws CredentialsError 'invalid' naming the first bad field; never shows a value. */
export function validateCredentials(c: StoredCredentials): void {
  const server = typeof c.server === 'string' ? parseServerUrl(c.server) : undefined;
  if (!server) throw new CredentialsError('invalid', 'credentials: server must look like coap://, coaps://, mqtt:// or mqtts:// host[:port]', 'server');
  for (const f of FIELDS) {
    const v = c[f];
    if (v !== undefined && typeof v !== 'string') throw new CredentialsError('invalid', `credentials: ${f} must be a string`, f);
  }
  if (c.token !== undefined) {
    if (!c.token.length) throw new CredentialsError('invalid', 'credentials: token is empty', 'token');
    if (c.token.length > 256) throw new CredentialsError('invalid', 'credentials: token is longer than 256 characters', 'token');
    if (!/^[\x21-\x7e]+$/.test(c.token) || /[/?#]/.test(c.token))
      throw new CredentialsError('invalid', 'credentials: token has a space, a control character, a non-ASCII character or one of / ? # (it goes in the URI path)', 'token');
  }
  if (!!c.cert !== !!c.key) throw new CredentialsError('invalid', 'credentials: cert and key go together (mutual X.509)', c.cert ? 'key' : 'cert');
  if (c.cert !== undefined) checkPem('cert', c.cert, ['CERTIFICATE'], false);
  if (c.key !== undefined) checkPem('key', c.key, ['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY'], false);
  if (c.ca !== undefined) checkPem('ca', c.ca, ['CERTIFICATE'], true);
  if (c.hostname !== undefined && !/^[A-Za-z0-9.-]+$/.test(c.hostname)) throw new CredentialsError('invalid', 'credentials: hostname is not a host name', 'hostname');
  if (!!c.provisionKey !== !!c.provisionSecret)
    throw new CredentialsError('invalid', 'credentials: provisionKey and provisionSecret go together', c.provisionKey ? 'provisionSecret' : 'provisionKey');
  if (c.provisionState !== undefined) {
    if (c.provisionState !== 'pending' && c.provisionState !== 'done') throw new CredentialsError('invalid', "credentials: provisionState is 'pending' or 'done'", 'provisionState');
    if (!c.provisionKey || c.token === undefined) throw new CredentialsError('invalid', 'credentials: provisionState needs the provisioning key and a token', 'provisionState');
  }
  if (server.secure && !c.ca) throw new CredentialsError('invalid', 'credentials: coaps:// needs ca (the server certificate is always verified)', 'ca');
  if (!server.secure && c.cert) throw new CredentialsError('invalid', 'credentials: an X.509 certificate needs a coaps:// server', 'server');
  if (c.token === undefined && !c.cert && !c.provisionKey)
    throw new CredentialsError('invalid', 'credentials: no token, no cert/key and no provisioning key: the device could not authenticate', 'token');
}

/** Version byte, then per present field: tag u8, length u16 LE, UTF-8 bytes. */
export function encodeCredentials(c: StoredCredentials): Uint8Array {
  const parts: [number, Uint8Array][] = [];
  let total = 1;
  FIELDS.forEach((f, i) => {
    const v = c[f];
    if (v === undefined) return;
    const bytes = encodeUtf8(v);
    if (bytes.length > 0xffff) throw new CredentialsError('invalid', `credentials: ${f} is too long`, f);
    parts.push([i, bytes]);
    total += 3 + bytes.length;
  });
  const out = new Uint8Array(total);
  out[0] = VERSION;
  let o = 1;
  for (const [tag, bytes] of parts) {
    out[o] = tag;
    out[o + 1] = bytes.length & 0xff;
    out[o + 2] = bytes.length >> 8;
    out.set(bytes, o + 3);
    o += 3 + bytes.length;
  }
  return out;
}

export function decodeCredentials(bytes: Uint8Array): StoredCredentials {
  if (bytes[0] !== VERSION) throw new CredentialsError('corrupt', `credentials record: unknown version ${bytes[0]}`);
  const out: Partial<Record<Field, string>> = {};
  let o = 1;
  for (let n = 0; o < bytes.length && n < FIELDS.length; n++) {
    if (o + 3 > bytes.length) throw new CredentialsError('corrupt', 'credentials record: truncated');
    const tag = bytes[o]!;
    const len = bytes[o + 1]! | (bytes[o + 2]! << 8);
    const f = FIELDS[tag];
    if (!f || o + 3 + len > bytes.length) throw new CredentialsError('corrupt', 'credentials record: bad field');
    out[f] = decodeUtf8(bytes, o + 3, o + 3 + len);
    o += 3 + len;
  }
  if (o !== bytes.length || out.server === undefined) throw new CredentialsError('corrupt', 'credentials record: bad layout');
  return out as StoredCredentials;
}

export class CredentialStore {
  #kv: KvStore;

  constructor(kv: KvStore) {
    this.#kv = kv;
  }

  get present(): boolean {
    return this.#kv.has(KEY_CREDENTIALS);
  }

  /** The stored credentials, checked; CredentialsError 'missing' / 'corrupt' / 'invalid' otherwise. */
  load(): StoredCredentials {
    const bytes = this.#kv.get(KEY_CREDENTIALS);
    if (!bytes) throw new CredentialsError('missing', 'no credentials in flash: provision the device (npm run provision)');
    const c = decodeCredentials(bytes);
    validateCredentials(c);
    return c;
  }

  /** Checks, then replaces the stored record atomically. StorageError when the flash is full. */
  save(c: StoredCredentials): void {
    validateCredentials(c);
    const bytes = encodeCredentials(c);
    try {
      this.#kv.put(KEY_CREDENTIALS, bytes);
    } catch (e) {
      if (e instanceof StorageError) throw new StorageError(e.code, `credentials not saved: ${e.message}`);
      throw e;
    }
  }

  clear(): void {
    this.#kv.delete(KEY_CREDENTIALS);
  }
}
