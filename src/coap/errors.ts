/* Typed CoAP errors. Each has a stable `code` string for the layers above to switch on. */
import type { CoapResponse } from './types';

export class CoapError extends Error {
  readonly code: string;
  /** The response that caused the error, when there is one (e.g. an observation ended by 4.04). */
  readonly response?: CoapResponse;
  constructor(message: string, code = 'coap', response?: CoapResponse) {
    super(message);
    this.name = 'CoapError';
    this.code = code;
    if (response) this.response = response;
  }
}

/** No ACK after the last retransmission, or no response within responseTimeout. */
export class CoapTimeoutError extends CoapError {
  constructor(message = 'CoAP exchange timed out') {
    super(message, 'timeout');
    this.name = 'CoapTimeoutError';
  }
}

/** The peer answered our message with RST. */
export class CoapResetError extends CoapError {
  constructor(message = 'CoAP message reset by peer') {
    super(message, 'reset');
    this.name = 'CoapResetError';
  }
}

/** The client was closed while the exchange was pending. */
export class CoapClosedError extends CoapError {
  constructor(message = 'CoAP client closed') {
    super(message, 'closed');
    this.name = 'CoapClosedError';
  }
}

/** A datagram is not a well-formed CoAP message (RFC 7252 §3), or a message cannot be encoded. */
export class CoapFormatError extends CoapError {
  /** 'version' | 'token-length' | 'reserved-delta' | 'reserved-length' | 'truncated-option' | ... */
  readonly reason: string;
  constructor(reason: string, message?: string) {
    super(message ?? `malformed CoAP message: ${reason}`, 'format');
    this.name = 'CoapFormatError';
    this.reason = reason;
  }
}
