/* Typed CoAP errors. Each has a stable `code` string for the layers above to switch on. */
import type { CoapResponse } from './types';

export class CoapError extends Error {
  // A class field (define semantics), not an assignment to name in the constructor: on Moddable the built-in Error.prototype
  // is frozen after preload, and assigning an inherited read-only property throws there.
  override readonly name: string = 'CoapError';
  readonly code: string;
  /** The response that caused the error, when there is one (e.g. an observation ended by 4.04). */
  readonly response?: CoapResponse;
  constructor(message: string, code = 'coap', response?: CoapResponse) {
    super(message);
    this.code = code;
    if (response) this.response = response;
  }
}

/** No ACK after the last retransmission, or no response within responseTimeout. */
export class CoapTimeoutError extends CoapError {
  override readonly name: string = 'CoapTimeoutError';
  constructor(message = 'CoAP exchange timed out') {
    super(message, 'timeout');
  }
}

/** The peer answered our message with RST. */
export class CoapResetError extends CoapError {
  override readonly name: string = 'CoapResetError';
  constructor(message = 'CoAP message reset by peer') {
    super(message, 'reset');
  }
}

/** The client was closed while the exchange was pending. */
export class CoapClosedError extends CoapError {
  override readonly name: string = 'CoapClosedError';
  constructor(message = 'CoAP client closed') {
    super(message, 'closed');
  }
}

/** A datagram is not a well-formed CoAP message (RFC 7252 §3), or a message cannot be encoded. */
export class CoapFormatError extends CoapError {
  override readonly name: string = 'CoapFormatError';
  /** 'version' | 'token-length' | 'reserved-delta' | 'reserved-length' | 'truncated-option' | ... */
  readonly reason: string;
  constructor(reason: string, message?: string) {
    super(message ?? `malformed CoAP message: ${reason}`, 'format');
    this.reason = reason;
  }
}

/**
 * The transport could not send the request's datagram at all: it is larger than one datagram of
 * the transport (over DTLS: one record, DtlsDatagram.mtu). Failed at once, never retransmitted; a
 * smaller payload, or smaller blocks (block1Szx), may go.
 */
export class CoapTooLargeError extends CoapError {
  override readonly name: string = 'CoapTooLargeError';
  /** Bytes of the datagram that was refused. */
  readonly size: number;
  /** The largest datagram the transport took at that moment. */
  readonly mtu: number;
  constructor(size: number, mtu: number) {
    super(`request datagram of ${size} bytes is larger than the transport carries (${mtu} bytes)`, 'too-large');
    this.size = size;
    this.mtu = mtu;
  }
}
