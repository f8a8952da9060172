/*
 * Boot from the credentials record in flash (src/storage): where to connect and how to
 * authenticate. The record was checked when written; it is checked again here, so a damaged or
 * hand-edited one is a clear error at boot rather than a 4.01 or a failed handshake later:
 * - its shape (validateCredentials: PEM blocks, token characters, fields that go together);
 * - the certificates' DER and validity periods (read in TypeScript, no crypto) against the
 *   device's clock. With no RTC the clock may not be set at boot (epochMs() before 2020): then the
 *   dates are logged, not judged, and the app judges them once the clock is set (certificateValidity);
 * - with the platform's DTLS/TLS engine (mbedTLS on the device and on the XS host, the N-API binding
 *   on Node): CA, certificate and key parsed as the handshake will parse them, and the key checked
 *   against the certificate (mbedtls_pk_check_pair), by creating a client engine and destroying it.
 */
import type { DtlsEngine, DtlsEngineFactory, DtlsError } from '../dtls/engine';
import type { Clock, Log } from '../platform/types';
import type { CertificateValidity, CredentialStore, StoredCredentials } from '../storage/credentials';
import { CLOCK_SET_AFTER_MS, CredentialsError, certificateValidity, isoDay, parseServerUrl, validityProblem } from '../storage/credentials';
import type { DtlsConfig, LinkSecurity } from '../thingsboard/connect';
import { linkFor } from '../thingsboard/connect';

export type Security = LinkSecurity;

/** DeviceConfig's server, credentials and (D)TLS settings from a (validated) credentials record. */
export function securityFromCredentials(c: StoredCredentials): Security {
  const url = parseServerUrl(c.server);
  if (!url) throw new CredentialsError('invalid', 'credentials: server is not a coap://, coaps://, mqtt:// or mqtts:// URL', 'server');
  // A device to be provisioned over the network has no token yet: DeviceApp gets one first
  // (DeviceConfig.provisioning) and sends nothing else before.
  const token = c.token ?? (c.provisionKey ? '' : undefined);
  if (!url.secure) {
    if (token === undefined) throw new CredentialsError('invalid', `credentials: ${url.scheme}:// needs a token`, 'token');
    return linkFor(url, { kind: 'token', token });
  }
  const secure: DtlsConfig = { ca: c.ca ?? '', hostname: c.hostname ?? url.host };
  if (c.cert && c.key) return linkFor(url, { kind: 'x509' }, { ...secure, cert: c.cert, key: c.key });
  if (token === undefined) throw new CredentialsError('invalid', `credentials: one-way ${url.scheme}:// needs a token`, 'token');
  return linkFor(url, { kind: 'token', token }, secure);
}

/** What the boot check uses from the platform (both optional: without them only the shape and the DER are checked). */
export interface BootCheck {
  /** The device's clock: epochMs() judges the certificates' validity once it is after CLOCK_SET_AFTER_MS. */
  clock?: Pick<Clock, 'epochMs'>;
  /** The platform's DTLS/TLS engine factory (Platform.dtls): parses CA, certificate and key, checks the key matches. */
  dtls?: DtlsEngineFactory;
}

const ENGINE_FIELDS: Readonly<Record<string, 'cert' | 'key' | 'ca'>> = Object.freeze({ DTLS_BAD_CERT_FILE: 'cert', DTLS_BAD_KEY_FILE: 'key', DTLS_BAD_CA_FILE: 'ca' });

/**
 * Checks the certificates and key of a (shape-valid) record at boot: CredentialsError 'invalid'
 * naming the field for a certificate that is not DER X.509, a key or certificate mbedTLS refuses, a
 * key that does not match the certificate, a device certificate expired or not yet valid. Returns the
 * device certificate's validity when the clock was not set (to judge later), else undefined.
 */
export function checkCredentialsAtBoot(c: StoredCredentials, check: BootCheck, log: Log): CertificateValidity | undefined {
  const own = c.cert ? certificateValidity('cert', c.cert)[0] : undefined;
  const cas = c.ca ? certificateValidity('ca', c.ca) : [];
  if (check.dtls && (c.ca || c.cert)) {
    const url = parseServerUrl(c.server);
    let engine: DtlsEngine | undefined;
    try {
      engine = check.dtls({
        role: 'client',
        ...(c.ca ? { ca: c.ca } : {}),
        ...(c.cert && c.key ? { cert: c.cert, key: c.key } : {}),
        hostname: c.hostname ?? url?.host ?? 'localhost',
      });
    } catch (e) {
      const field = ENGINE_FIELDS[(e as DtlsError).code];
      if (!field) throw e;
      // The engine's message names the mbedTLS reason (never the key's bytes).
      throw new CredentialsError('invalid', `credentials: ${field} refused by mbedTLS: ${(e as Error).message}`, field);
    } finally {
      engine?.destroy();
    }
  }
  const now = check.clock?.epochMs();
  if (now === undefined) return undefined;
  if (now < CLOCK_SET_AFTER_MS) {
    if (own) log.info(`clock not set yet: the device certificate (valid ${isoDay(own.notBefore)} to ${isoDay(own.notAfter)}) is judged once it is`);
    return own;
  }
  if (own) {
    const problem = validityProblem('cert', own, now);
    if (problem) throw new CredentialsError('invalid', problem, 'cert');
  }
  const bad = cas.map((v) => validityProblem('ca', v, now)).filter((p) => p !== undefined);
  if (cas.length && bad.length === cas.length) throw new CredentialsError('invalid', `${bad[0]}${cas.length > 1 ? ` (and every other CA in the bundle)` : ''}`, 'ca');
  if (bad.length) log.warn(`${bad.length} of ${cas.length} CA certificates are outside their validity period (the others are used)`);
  return undefined;
}

/**
 * Loads the credentials at boot. Returns the connection settings, or undefined after logging why
 * not (no record: provision the device; corrupt or invalid: which field). Never logs a secret.
 * With `check`, also checkCredentialsAtBoot (a deferred validity check comes back as
 * `certificateValidity`).
 */
export function loadSecurity(store: CredentialStore, log: Log, check?: BootCheck): (Security & { certificateValidity?: CertificateValidity }) | undefined {
  try {
    const c = store.load();
    const s: Security & { certificateValidity?: CertificateValidity } = securityFromCredentials(c);
    if (check) {
      const later = checkCredentialsAtBoot(c, check, log);
      if (later) s.certificateValidity = later;
    }
    const how = s.credentials.kind === 'x509' ? 'X.509 certificate' : c.token ? 'access token' : 'no token yet (to be provisioned)';
    const prov = c.provisionKey ? `, provisioning ${c.provisionState === 'done' ? 'done' : 'key present'}` : '';
    log.info(`credentials loaded from flash: ${c.server} with ${how}${prov}`);
    return s;
  } catch (e) {
    if (e instanceof CredentialsError) {
      log.error(`${e.message}${e.code === 'missing' ? '' : ' (credentials in flash rejected at boot)'}`);
      return undefined;
    }
    throw e;
  }
}
