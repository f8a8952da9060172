/*
 * Device provisioning over the network (ThingsBoard POST /api/v1/provision, reference §1.3), made
 * safe against power cuts and lost responses by choosing the access token on the device:
 *
 * 1. No token yet: draw a random one and save it in the credentials record with provisionState
 *    'pending' (atomic replace) BEFORE asking the server, so the token the server will know is
 *    never only in RAM.
 * 2. POST provision {deviceName, provisionDeviceKey, provisionDeviceSecret, credentialsType
 *    ACCESS_TOKEN, token}. 2.01 SUCCESS: save the issued token (normally ours) with state 'done'.
 * 3. 4.00 FAILURE while our token was already pending: an earlier attempt may have succeeded and
 *    lost its response (or the power went before 'done' was saved), and ThingsBoard refuses to
 *    provision twice. Try the pending token: the caller marks it 'done' when the server accepts
 *    it, and a 4.01 then means provisioning really failed (e.g. the name was taken).
 *    NOT_FOUND (wrong key/secret) stops; no answer is retried at the next reading.
 * Neither the token nor the secret appears in a log line.
 */
import type { Log, Random } from '../platform/types';
import type { CredentialStore, StoredCredentials } from '../storage/credentials';
import type { ThingsBoardDeviceApi } from '../thingsboard/mqtt-client';
import { TbError } from '../thingsboard/errors';

export interface ProvisioningConfig {
  /** Where the credentials live; the record holds provisionKey/provisionSecret. */
  store: CredentialStore;
  /** The device name to register (ThingsBoard generates one when empty). */
  deviceName: string;
}

export type ProvisionOutcome =
  /** The server confirmed: use `token`. */
  | { kind: 'done'; token: string }
  /** Use `token` and mark it done once the server accepts it (see 3. above). */
  | { kind: 'unverified'; token: string }
  /** No answer (server unreachable): try again later. */
  | { kind: 'retry'; reason: string }
  /** Refused for good (wrong key/secret, ...): stop. */
  | { kind: 'refused'; reason: string };

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

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
  return !!c.provisionKey && !!c.provisionSecret && !c.cert && c.provisionState !== 'done' && !(c.token && c.provisionState === undefined);
}

export async function provision(tb: Pick<ThingsBoardDeviceApi, 'provision'>, cfg: ProvisioningConfig, random: Random, log: Log): Promise<ProvisionOutcome> {
  let c = cfg.store.load();
  if (!needsProvisioning(c)) return { kind: 'done', token: c.token ?? '' };
  const wasPending = c.provisionState === 'pending' && !!c.token;
  if (!wasPending) {
    c = { ...c, token: randomToken(random), provisionState: 'pending' };
    cfg.store.save(c);
  }
  const token = c.token!;
  try {
    const res = await tb.provision({
      provisionDeviceKey: c.provisionKey!,
      provisionDeviceSecret: c.provisionSecret!,
      ...(cfg.deviceName ? { deviceName: cfg.deviceName } : {}),
      credentialsType: 'ACCESS_TOKEN',
      token,
    });
    if (res.credentialsType !== 'ACCESS_TOKEN' || !res.credentialsValue) return { kind: 'refused', reason: `provisioning: the server issued ${res.credentialsType} credentials, expected an access token` };
    cfg.store.save({ ...c, token: res.credentialsValue, provisionState: 'done' });
    log.info(`provisioned${cfg.deviceName ? ` as ${cfg.deviceName}` : ''}: access token saved in flash (not shown)`);
    return { kind: 'done', token: res.credentialsValue };
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof TbError && err.code === 'bad-request' && /NOT_FOUND/.test(err.message))
      return { kind: 'refused', reason: 'provisioning refused: the server does not know this provisioning key/secret (NOT_FOUND)' };
    if (err instanceof TbError && err.code === 'bad-request' && wasPending) {
      log.warn('provisioning: the server refuses to provision again; trying the token saved by an earlier attempt');
      return { kind: 'unverified', token };
    }
    if (err instanceof TbError && err.code !== 'server-error') return { kind: 'refused', reason: `provisioning failed: ${err.message}` };
    return { kind: 'retry', reason: `provisioning: ${err.message}` };
  }
}

/** Records that the server accepted a token from an 'unverified' outcome. */
export function confirmProvisioned(cfg: ProvisioningConfig, log: Log): void {
  const c = cfg.store.load();
  if (c.provisionState === 'done') return;
  cfg.store.save({ ...c, provisionState: 'done' });
  log.info('provisioning confirmed: the server accepts the saved token');
}
