/* Typed MQTT errors: a stable `code` for the layers above to switch on, and the CONNACK code. */
import { AUTH_FAILURES } from '../dtls/engine';

export type MqttErrorCode =
  | 'refused' // CONNACK with a non-zero return code (see returnCode)
  | 'malformed' // the server sent bytes that are not a valid MQTT 3.1.1 packet
  | 'too-large' // a packet over the configured (or protocol) size limit
  | 'protocol' // a valid packet that makes no sense here (CONNACK twice, PUBLISH before CONNACK, ...)
  | 'timeout' // no CONNACK, no PINGRESP, or no PUBACK in time
  | 'closed' // the server closed the connection
  | 'socket' // the transport reported an error (refused, reset, TLS failure: see cause)
  | 'overflow' // too many messages in flight or subscriptions: try later
  | 'state'; // a call that is not allowed now (client closed, id out of range)

/** CONNACK return codes that retrying with the same configuration cannot fix. */
const FATAL_CONNACK = Object.freeze([1, 2, 4, 5]);

const CONNACK_TEXT = Object.freeze([
  'accepted',
  'unacceptable protocol version',
  'identifier rejected',
  'server unavailable',
  'bad user name or password',
  'not authorized (unknown access token or certificate)',
]);

export class MqttError extends Error {
  // A class field (define semantics), not an assignment to name in the constructor: on Moddable the built-in Error.prototype
  // is frozen after preload, and assigning an inherited read-only property throws there.
  override readonly name: string = 'MqttError';
  readonly code: MqttErrorCode;
  /** CONNACK return code when code is 'refused'. */
  readonly returnCode?: number;
  /** The transport's error for 'socket' (e.g. a DtlsError-style TLS error with its own code). */
  override readonly cause?: Error;
  constructor(code: MqttErrorCode, message: string, extra?: { returnCode?: number; cause?: Error }) {
    super(message);
    this.code = code;
    if (extra?.returnCode !== undefined) this.returnCode = extra.returnCode;
    if (extra?.cause) this.cause = extra.cause;
  }

  /**
   * True when reconnecting cannot help: bad credentials, identifier or protocol refused, or the
   * TLS layer rejected the server's certificate (or our own configuration).
   */
  get fatal(): boolean {
    if (this.code === 'refused') return FATAL_CONNACK.includes(this.returnCode ?? -1);
    const cause = (this.cause as (Error & { code?: unknown }) | undefined)?.code;
    return this.code === 'socket' && typeof cause === 'string' && AUTH_FAILURES.includes(cause);
  }
}

export function connackError(returnCode: number): MqttError {
  const text = CONNACK_TEXT[returnCode] ?? 'reserved code';
  return new MqttError('refused', `server refused the MQTT connection: CONNACK ${returnCode} (${text})`, { returnCode });
}
