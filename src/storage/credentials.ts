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
   * Network provisioning progress: 'pending' = the device is about to ask (or has asked) the server
   * to provision it with the credentials in this record (`token`, chosen by the device and saved
   * first, or `cert`, registered by its SHA3-256 hash); 'done' = the server confirmed them. A record
   * with a provisioning key and `cert` but no state is still to be provisioned with X509_CERTIFICATE.
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
    if (!c.provisionKey || (c.token === undefined && !c.cert))
      throw new CredentialsError('invalid', 'credentials: provisionState needs the provisioning key and a token or certificate', 'provisionState');
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

// ------------------------------------------------------------------ X.509 certificates (no crypto)

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 (padded) to bytes; the caller checked the alphabet (pemBlocks). */
function base64Decode(s: string): Uint8Array {
  const clean = s.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const v = B64.indexOf(clean[i]!);
    if (v < 0) throw new Error('not base64');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}

/**
 * The certificate as ThingsBoard stores an X509_CERTIFICATE credential (EncryptionUtil.certTrimNewLines):
 * the base64 DER of the first CERTIFICATE block, no BEGIN/END lines, no line breaks. It is the `hash`
 * of a provisioning request; ThingsBoard's credentials id is the SHA3-256 hex of this string.
 */
export function certificateBase64(pem: string): string {
  const blocks = pemBlocks(pem);
  const cert = typeof blocks === 'string' ? undefined : blocks.find((b) => b.label === 'CERTIFICATE');
  if (!cert) throw new CredentialsError('invalid', 'credentials: cert is not a PEM certificate', 'cert');
  return cert.body;
}

export interface CertificateValidity {
  /** Epoch ms of notBefore / notAfter. */
  notBefore: number;
  notAfter: number;
}

/** One DER TLV at `o`: [tag, start of the value, end of the value]; throws when it does not fit. */
function tlv(der: Uint8Array, o: number, end: number): [number, number, number] {
  if (o + 2 > end) throw new Error('truncated');
  const tag = der[o]!;
  let len = der[o + 1]!;
  let p = o + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || p + n > end) throw new Error('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[p + i]!;
    p += n;
  }
  if (p + len > end) throw new Error('truncated');
  return [tag, p, p + len];
}

/** UTCTime (0x17, YYMMDDHHMMSSZ; YY < 50 is 20YY) or GeneralizedTime (0x18, YYYYMMDDHHMMSSZ) as epoch ms. */
function derTime(der: Uint8Array, tag: number, start: number, end: number): number {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(der[i]!);
  const m = tag === 0x17 ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : tag === 0x18 ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null;
  if (!m) throw new Error('bad time');
  let year = Number(m[1]);
  if (tag === 0x17) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** notBefore / notAfter of one DER certificate (Certificate > TBSCertificate > Validity, RFC 5280 §4.1). */
function derValidity(der: Uint8Array): CertificateValidity {
  const [t0, cs, ce] = tlv(der, 0, der.length);
  if (t0 !== 0x30 || ce !== der.length) throw new Error('not one SEQUENCE');
  const [t1, ts, te] = tlv(der, cs, ce);
  if (t1 !== 0x30) throw new Error('no TBSCertificate');
  let o = ts;
  let [tag, , e] = tlv(der, o, te);
  if (tag === 0xa0) [tag, , e] = tlv(der, (o = e), te); // [0] version
  if (tag !== 0x02) throw new Error('no serial number');
  for (const want of [0x30, 0x30]) {
    // signature AlgorithmIdentifier, issuer Name
    [tag, , e] = tlv(der, (o = e), te);
    if (tag !== want) throw new Error('bad structure');
  }
  const [tv, vs, ve] = tlv(der, (o = e), te);
  if (tv !== 0x30) throw new Error('no validity');
  const [nbTag, nbs, nbe] = tlv(der, vs, ve);
  const [naTag, nas, nae] = tlv(der, nbe, ve);
  return { notBefore: derTime(der, nbTag, nbs, nbe), notAfter: derTime(der, naTag, nas, nae) };
}

/**
 * The validity period of each certificate in `pem` (a device certificate, or a CA bundle), read
 * from the DER without any cryptography. CredentialsError 'invalid' naming `field` when a block
 * is not an X.509 certificate (PEM of the right shape around bytes that are not one).
 */
export function certificateValidity(field: 'cert' | 'ca', pem: string): CertificateValidity[] {
  const blocks = pemBlocks(pem);
  if (typeof blocks === 'string') throw new CredentialsError('invalid', `credentials: ${field} is not PEM (${blocks})`, field);
  const out: CertificateValidity[] = [];
  let n = 0;
  for (const b of blocks) {
    if (b.label !== 'CERTIFICATE') continue;
    n++;
    try {
      out.push(derValidity(base64Decode(b.body)));
    } catch (e) {
      const which = field === 'ca' ? ` (certificate ${n})` : '';
      throw new CredentialsError('invalid', `credentials: ${field}${which} is not an X.509 certificate: ${(e as Error).message} in its DER`, field);
    }
  }
  if (!out.length) throw new CredentialsError('invalid', `credentials: ${field} holds no CERTIFICATE block`, field);
  return out;
}

/**
 * Epoch ms below which the device's clock is taken as not set (no RTC, no SNTP yet: it counts from
 * 1970 or from the build): 2020-01-01. Certificate validity is not judged against such a clock.
 */
export const CLOCK_SET_AFTER_MS = Date.UTC(2020, 0, 1);

/** ISO date (day precision) for messages: no secret, and the same on XS and Node. */
export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Why `v` is not valid at `nowMs`, or undefined when it is (or when the clock is not set: see
 * CLOCK_SET_AFTER_MS; the caller checks again once it is).
 */
export function validityProblem(field: 'cert' | 'ca', v: CertificateValidity, nowMs: number): string | undefined {
  if (nowMs < CLOCK_SET_AFTER_MS) return undefined;
  if (nowMs > v.notAfter) return `credentials: the ${field === 'cert' ? 'device certificate' : 'CA certificate'} expired on ${isoDay(v.notAfter)} (today is ${isoDay(nowMs)})`;
  if (nowMs < v.notBefore) return `credentials: the ${field === 'cert' ? 'device certificate' : 'CA certificate'} is not valid before ${isoDay(v.notBefore)} (today is ${isoDay(nowMs)})`;
  return undefined;
}
