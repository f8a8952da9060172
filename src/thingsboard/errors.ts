/*
 * ThingsBoard response codes as typed errors (reference thingsboard-coap.md §1.3).
 * Messages never contain the access token: paths are reported by feature name only.
 */
import { codeToString } from '../coap/types';

export type TbErrorCode =
  | 'unauthorized' // 4.01: unknown token / unregistered certificate. Stop sending; fix credentials.
  | 'bad-request' // 4.00: payload or path rejected. Do not retry the same payload.
  | 'not-found' // 4.04: e.g. attribute request matched nothing, no OTA package.
  | 'method-not-allowed' // 4.05
  | 'server-error' // 5.xx: transport/rate-limit failure. Back off, then retry.
  | 'timeout' // no response at all (ThingsBoard sends none when its core times out)
  | 'protocol' // an unexpected code or an undecodable body
  | 'security' // DTLS refused the server (unknown CA, hostname, expiry) or our certificate: fail closed
  | 'stopped'; // the client refused to send because an earlier 4.01 or security failure stopped it

export class TbError extends Error {
  // A class field (define semantics), not an assignment to name in the constructor: on Moddable the built-in Error.prototype
  // is frozen after preload, and assigning an inherited read-only property throws there.
  override readonly name: string = 'TbError';
  readonly code: TbErrorCode;
  /** CoAP response code, e.g. "4.01", when one was received. */
  readonly coapCode?: string;
  constructor(code: TbErrorCode, message: string, coapCode?: number) {
    super(message);
    this.code = code;
    if (coapCode !== undefined) this.coapCode = codeToString(coapCode);
  }
}

/** Maps a non-success CoAP response code to a TbError for `feature`. */
export function errorForCode(code: number, feature: string, detail?: string): TbError {
  const c = codeToString(code);
  const tail = detail ? `: ${detail}` : '';
  switch (code) {
    case 0x81:
      return new TbError('unauthorized', `${feature}: 4.01 Unauthorized (unknown access token or unregistered certificate)${tail}`, code);
    case 0x80:
      return new TbError('bad-request', `${feature}: 4.00 Bad Request (payload or path rejected)${tail}`, code);
    case 0x84:
      return new TbError('not-found', `${feature}: 4.04 Not Found${tail}`, code);
    case 0x85:
      return new TbError('method-not-allowed', `${feature}: 4.05 Method Not Allowed${tail}`, code);
    default:
      if (code >> 5 === 5) return new TbError('server-error', `${feature}: ${c} server error (ThingsBoard also answers 5.00 to rate-limited requests)${tail}`, code);
      return new TbError('protocol', `${feature}: unexpected response ${c}${tail}`, code);
  }
}

/** Why an X.509 device cannot update over CoAP. */
export const FIRMWARE_X509_UNSUPPORTED =
  "X.509 device: ThingsBoard's CoAP /fw resource accepts only the access-token path (thingsboard issue #13097); update it over MQTT or give it an access token";
