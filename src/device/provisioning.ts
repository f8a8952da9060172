/*
 * Device provisioning over the network (ThingsBoard POST /api/v1/provision, MQTT /provision/request;
 * reference §1.3 and MQTT §1.8), made safe against power cuts and lost responses: the credentials the
 * server will know are in flash BEFORE the device asks for them.
 *
 * Access token (the record holds a provisioning key/secret and no certificate):
 * 1. No token yet: draw a random one and save it with provisionState 'pending' (atomic replace).
 * 2. Ask {deviceName, provisionDeviceKey, provisionDeviceSecret, credentialsType ACCESS_TOKEN, token}.
 *    SUCCESS: save the issued token (normally ours) with state 'done'.
 *
 * X.509 (the record holds cert + key + provisioning key/secret):
 * 1. Save provisionState 'pending' (the certificate is already in the record).
 * 2. Ask {..., credentialsType X509_CERTIFICATE, hash: the certificate's base64 DER} (ThingsBoard
 *    stores it and registers SHA3-256 hex of it as the credentials id). SUCCESS with our certificate
 *    back: save 'done'. The device then handshakes IN FULL with its certificate: ThingsBoard maps a
 *    certificate to its device only while verifying it (CoAP: at a full DTLS handshake; MQTT: at
 *    CONNECT), so a session opened before the registration would keep getting 4.01.
 *
 * Either way:
 * 3. FAILURE while the state was already 'pending' (X.509: any FAILURE): an earlier attempt may have
 *    succeeded and lost its response (or the power went before 'done' was saved), and ThingsBoard
 *    refuses to provision the same device twice; a certificate may also have been registered by an
 *    administrator. Use the saved credentials ('unverified'): the caller marks them 'done' when the
 *    server accepts them (confirmProvisioned); a 4.01 / CONNACK refusal then means provisioning
 *    failed, and the caller backs off as for 4.
 * 4. NOT_FOUND (unknown key/secret) and FAILURE otherwise (name taken, certificate registered to
 *    another device) are 'refused': reported clearly, and tried again only after a back-off that
 *    doubles from `retryMs.first` to `retryMs.max` (the profile may be created or fixed later; a
 *    device in the field has nobody to restart it). No answer is 'retry', at the next reading.
 * Neither the token, the secret nor the key appears in a log line.
 */
import type { Log, Random } from '../platform/types';
import type { CredentialStore, StoredCredentials } from '../storage/credentials';
import { certificateBase64 } from '../storage/credentials';
import type { ThingsBoardDeviceApi } from '../thingsboard/api';
import type { Credentials } from '../thingsboard/client';
import type { ProvisionResult } from '../thingsboard/payload';
import { TbError } from '../thingsboard/errors';

export interface ProvisioningConfig {
  /** Where the credentials live; the record holds provisionKey/provisionSecret. */
  store: CredentialStore;
  /** The device name to register (ThingsBoard generates one when empty). */
  deviceName: string;
  /** Back-off after a refusal (NOT_FOUND / FAILURE), ms: first wait, doubled up to max (default 60 s .. 1 h). */
  retryMs?: { first?: number; max?: number };
}

export type ProvisionOutcome =
  /** The server confirmed: use `credentials` (X.509: after a full handshake). `token`: the token, '' for X.509. */
  | { kind: 'done'; credentials: Credentials; token: string }
  /** Use `credentials` and mark them done once the server accepts them (see 3. above). */
  | { kind: 'unverified'; credentials: Credentials; token: string }
  /** No answer (server unreachable): try again later. */
  | { kind: 'retry'; reason: string }
  /** Refused (wrong key/secret, name or certificate taken, ...): try again after a back-off. */
  | { kind: 'refused'; reason: string };

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export const PROVISION_RETRY_FIRST_MS = 60_000;
export const PROVISION_RETRY_MAX_MS = 3_600_000;

/** A 20-character access token (119 bits) from the platform's random source. */
export function randomToken(random: Random): string {
  const bytes = new Uint8Array(20);
  random.fill(bytes);
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += ALPHABET[bytes[i]! % 62];
  return s;
}

/** True when the stored record asks for network provisioning that is not done yet. */
export function needsProvisioning(c: StoredCredentials): boolean {
  if (!c.provisionKey || !c.provisionSecret || c.provisionState === 'done') return false;
  // X.509: the certificate is the identity to register.
  if (c.cert) return true;
  // A token written by the user next to the key (no state) is already known to the server.
  return !(c.token && c.provisionState === undefined);
}

/** The credentials `c` authenticates with once provisioned. */
function credentialsOf(c: StoredCredentials, token: string | undefined): Credentials {
  return c.cert ? { kind: 'x509' } : { kind: 'token', token: token ?? '' };
}

export async function provision(tb: Pick<ThingsBoardDeviceApi, 'provision'>, cfg: ProvisioningConfig, random: Random, log: Log): Promise<ProvisionOutcome> {
  let c = cfg.store.load();
  if (!needsProvisioning(c)) return { kind: 'done', credentials: credentialsOf(c, c.token), token: c.token ?? '' };
  const x509 = !!c.cert;
  const wasPending = c.provisionState === 'pending' && (x509 || !!c.token);
  if (!wasPending) {
    c = x509 ? { ...c, provisionState: 'pending' } : { ...c, token: randomToken(random), provisionState: 'pending' };
    cfg.store.save(c);
  }
  const hash = x509 ? certificateBase64(c.cert!) : undefined;
  const what = x509 ? 'X.509 certificate' : 'access token';
  let res: ProvisionResult;
  try {
    res = await tb.provision({
      provisionDeviceKey: c.provisionKey!,
      provisionDeviceSecret: c.provisionSecret!,
      ...(cfg.deviceName ? { deviceName: cfg.deviceName } : {}),
      ...(x509 ? { credentialsType: 'X509_CERTIFICATE' as const, hash } : { credentialsType: 'ACCESS_TOKEN' as const, token: c.token! }),
    });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof TbError && err.code === 'bad-request' && /NOT_FOUND/.test(err.message))
      return { kind: 'refused', reason: 'provisioning refused: the server does not know this provisioning key/secret (NOT_FOUND)' };
    // X.509: whatever the attempt, a FAILURE may mean the certificate is registered already (by an
    // earlier attempt whose answer was lost, or by an administrator): ThingsBoard authenticates by
    // it, so try it. A token chosen at random can only be known if our own earlier attempt got through.
    if (err instanceof TbError && err.code === 'bad-request' && (wasPending || x509)) {
      log.warn(`provisioning: the server refuses to provision (${x509 ? 'FAILURE' : 'again'}); trying the ${what} saved ${x509 ? 'in flash (registered earlier?)' : 'by an earlier attempt'}`);
      return { kind: 'unverified', credentials: credentialsOf(c, c.token), token: x509 ? '' : c.token! };
    }
    if (err instanceof TbError && err.code === 'bad-request' && /FAILURE/.test(err.message))
      return {
        kind: 'refused',
        reason: `provisioning refused: FAILURE (the device name is taken${x509 ? ', the certificate is registered to another device' : ''}, or the device is not pre-provisioned)`,
      };
    // A 4.xx the server will repeat (4.00 with no status: a field it could not read; 4.05 ...).
    if (err instanceof TbError && (err.code === 'bad-request' || err.code === 'method-not-allowed' || err.code === 'not-found'))
      return { kind: 'refused', reason: `provisioning failed: ${err.message}` };
    // No answer, 5.xx, a dropped connection, a TLS failure: the next reading tries again.
    return { kind: 'retry', reason: `provisioning: ${err.message}` };
  }
  // Outside the try: a flash failure saving the outcome is the caller's error, not a 'retry'.
  if (x509) {
    // ThingsBoard answers with the stored credential: our certificate's base64 (line breaks removed).
    if (res.credentialsType !== 'X509_CERTIFICATE')
      return { kind: 'refused', reason: `provisioning: the server issued ${res.credentialsType} credentials for this device, not the certificate (a device pre-provisioned with other credentials?)` };
    if (res.credentialsValue.replace(/[\r\n]/g, '') !== hash) return { kind: 'refused', reason: 'provisioning: the server registered another certificate for this device' };
    cfg.store.save({ ...c, provisionState: 'done' });
  } else {
    if (res.credentialsType !== 'ACCESS_TOKEN' || !res.credentialsValue) return { kind: 'refused', reason: `provisioning: the server issued ${res.credentialsType} credentials, expected an access token` };
    cfg.store.save({ ...c, token: res.credentialsValue, provisionState: 'done' });
  }
  log.info(`provisioned${cfg.deviceName ? ` as ${cfg.deviceName}` : ''}: ${x509 ? 'X.509 certificate registered, state' : 'access token'} saved in flash (not shown)`);
  const token = x509 ? '' : res.credentialsValue;
  return { kind: 'done', credentials: credentialsOf(c, token), token };
}

/** Records that the server accepted the credentials from an 'unverified' outcome. */
export function confirmProvisioned(cfg: ProvisioningConfig, log: Log): void {
  const c = cfg.store.load();
  if (c.provisionState === 'done') return;
  cfg.store.save({ ...c, provisionState: 'done' });
  log.info(`provisioning confirmed: the server accepts the saved ${c.cert ? 'certificate' : 'token'}`);
}

/**
 * When the next provisioning attempt may start after refusals: doubles from `first` to `max`.
 * A success or a plain 'retry' (no answer) resets nothing but the refusal count; the owner keeps one.
 */
export class ProvisionBackoff {
  #first: number;
  #max: number;
  #refusals = 0;
  #notBefore = 0;

  constructor(retryMs: ProvisioningConfig['retryMs']) {
    this.#first = Math.max(1, retryMs?.first ?? PROVISION_RETRY_FIRST_MS);
    this.#max = Math.max(this.#first, retryMs?.max ?? PROVISION_RETRY_MAX_MS);
  }

  /** True while waiting after a refusal. */
  waiting(nowMs: number): boolean {
    return nowMs < this.#notBefore;
  }

  /** A refusal at `nowMs`: returns the wait before the next attempt. */
  refused(nowMs: number): number {
    const wait = Math.min(this.#max, this.#first * 2 ** Math.min(this.#refusals, 30));
    this.#refusals++;
    this.#notBefore = nowMs + wait;
    return wait;
  }

  get refusals(): number {
    return this.#refusals;
  }
}
