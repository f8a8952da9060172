/*
 * Boot from the credentials record in flash (src/storage): where to connect and how to
 * authenticate. The record was checked when written; it is checked again here, so a damaged or
 * hand-edited one is a clear error at boot rather than a 4.01 or a failed handshake later.
 */
import type { Log } from '../platform/types';
import type { CredentialStore, StoredCredentials } from '../storage/credentials';
import { CredentialsError, parseServerUrl } from '../storage/credentials';
import type { DeviceConfig } from './app';

export type Security = Pick<DeviceConfig, 'server' | 'credentials' | 'dtls' | 'transport' | 'tls'>;

/** DeviceConfig's server, credentials and (D)TLS settings from a (validated) credentials record. */
export function securityFromCredentials(c: StoredCredentials): Security {
  const url = parseServerUrl(c.server);
  if (!url) throw new CredentialsError('invalid', 'credentials: server is not a coap://, coaps://, mqtt:// or mqtts:// URL', 'server');
  const server = { host: url.host, port: url.port };
  const transport = url.mqtt ? { transport: 'mqtt' as const } : {};
  // A device to be provisioned over the network has no token yet: DeviceApp gets one first
  // (DeviceConfig.provisioning) and sends nothing else before.
  const token = c.token ?? (c.provisionKey ? '' : undefined);
  if (!url.secure) {
    if (token === undefined) throw new CredentialsError('invalid', `credentials: ${url.scheme}:// needs a token`, 'token');
    return { server, ...transport, credentials: { kind: 'token', token } };
  }
  // coaps:// takes it as `dtls`, mqtts:// as `tls` (same fields)
  const secure: NonNullable<DeviceConfig['dtls']> = { ca: c.ca ?? '', hostname: c.hostname ?? url.host };
  const wrap = url.mqtt ? { tls: secure } : { dtls: secure };
  if (c.cert && c.key) {
    secure.cert = c.cert;
    secure.key = c.key;
    return { server, ...transport, credentials: { kind: 'x509' }, ...wrap };
  }
  if (token === undefined) throw new CredentialsError('invalid', `credentials: one-way ${url.scheme}:// needs a token`, 'token');
  return { server, ...transport, credentials: { kind: 'token', token }, ...wrap };
}

/**
 * Loads the credentials at boot. Returns the connection settings, or undefined after logging why
 * not (no record: provision the device; corrupt or invalid: which field). Never logs a secret.
 */
export function loadSecurity(store: CredentialStore, log: Log): Security | undefined {
  try {
    const c = store.load();
    const s = securityFromCredentials(c);
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
