/*
 * CoAP (RFC 7252) shapes shared by the codec, the client and the layers above.
 * Names follow the RFCs: Type, Code, Message ID, Token, Option, Observe (RFC 7641),
 * Block1/Block2 (RFC 7959).
 */

export const enum CoapType {
  CON = 0,
  NON = 1,
  ACK = 2,
  RST = 3,
}

/** Code = class << 5 | detail, e.g. 2.05 = 0x45. */
export const Code = Object.freeze({
  EMPTY: 0x00,
  GET: 0x01,
  POST: 0x02,
  PUT: 0x03,
  DELETE: 0x04,
  FETCH: 0x05,
  PATCH: 0x06,
  IPATCH: 0x07,
  CREATED: 0x41, // 2.01
  DELETED: 0x42, // 2.02
  VALID: 0x43, // 2.03
  CHANGED: 0x44, // 2.04
  CONTENT: 0x45, // 2.05
  CONTINUE: 0x5f, // 2.31
  BAD_REQUEST: 0x80, // 4.00
  UNAUTHORIZED: 0x81, // 4.01
  BAD_OPTION: 0x82, // 4.02
  FORBIDDEN: 0x83, // 4.03
  NOT_FOUND: 0x84, // 4.04
  METHOD_NOT_ALLOWED: 0x85, // 4.05
  REQUEST_ENTITY_INCOMPLETE: 0x88, // 4.08
  REQUEST_ENTITY_TOO_LARGE: 0x8d, // 4.13
  INTERNAL_SERVER_ERROR: 0xa0, // 5.00
  SERVICE_UNAVAILABLE: 0xa3, // 5.03
} as const);

export const OptionNumber = Object.freeze({
  IF_MATCH: 1,
  URI_HOST: 3,
  ETAG: 4,
  IF_NONE_MATCH: 5,
  OBSERVE: 6,
  URI_PORT: 7,
  LOCATION_PATH: 8,
  URI_PATH: 11,
  CONTENT_FORMAT: 12,
  MAX_AGE: 14,
  URI_QUERY: 15,
  ACCEPT: 17,
  LOCATION_QUERY: 20,
  BLOCK2: 23,
  BLOCK1: 27,
  SIZE2: 28,
  PROXY_URI: 35,
  PROXY_SCHEME: 39,
  SIZE1: 60,
  NO_RESPONSE: 258,
} as const);

export const ContentFormat = Object.freeze({
  TEXT_PLAIN: 0,
  LINK_FORMAT: 40,
  OCTET_STREAM: 42,
  JSON: 50,
  CBOR: 60,
} as const);

export interface CoapOption {
  number: number;
  value: Uint8Array;
}

export interface CoapMessage {
  type: CoapType;
  code: number;
  messageId: number;
  /** 0..8 bytes. */
  token: Uint8Array;
  /** Sorted by option number on encode (stable for repeated options). */
  options: CoapOption[];
  payload: Uint8Array;
}

/** "2.05" from 0x45. */
export function codeToString(code: number): string {
  const detail = code & 0x1f;
  return `${code >> 5}.${detail < 10 ? '0' : ''}${detail}`;
}

/** Retransmission parameters (RFC 7252 §4.8). */
export interface TransmissionParams {
  /** ms; the first timeout is random in [ackTimeout, ackTimeout * ackRandomFactor]. */
  ackTimeout: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  /** ms to wait for a separate response after an empty ACK, and for a NON request's response. */
  responseTimeout: number;
}

/** RFC 7252 defaults. */
export const RFC7252_TRANSMISSION: Readonly<TransmissionParams> = Object.freeze({
  ackTimeout: 2000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  responseTimeout: 30000,
});

/**
 * NB-IoT profile: first timeout 15 s (nRF Connect SDK's LwM2M NB-IoT recipe; RFC 7252's 2 s is
 * shorter than NB-IoT round trips), fewer retransmissions so a lost window costs less energy.
 */
export const NBIOT_TRANSMISSION: Readonly<TransmissionParams> = Object.freeze({
  ackTimeout: 15000,
  ackRandomFactor: 1.5,
  maxRetransmit: 2,
  responseTimeout: 60000,
});

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'IPATCH';

export interface CoapRequest {
  method: Method;
  /** "/api/v1/TOKEN/telemetry"; split into Uri-Path options on '/'. */
  path: string;
  /** Each entry becomes one Uri-Query option, e.g. ["clientKeys=a,b", "sharedKeys=c"]. */
  query?: string[];
  payload?: Uint8Array;
  contentFormat?: number;
  accept?: number;
  /** Default true (CON). */
  confirmable?: boolean;
  /** Extra options (e.g. No-Response). */
  options?: CoapOption[];
  /** Block size exponent for Block1 (request body) and Block2 (response) : 0..6 (16..1024 bytes). */
  block1Szx?: number;
  block2Szx?: number;
  /**
   * The caller knows the response body is at most this many bytes (a firmware chunk of a given
   * size): when it fits the transport in one message, no early Block2 negotiation (which would
   * split a body that fits into smaller blocks, one more round trip each).
   */
  maxResponseBody?: number;
  /** Per-request override of the client's transmission parameters. */
  transmission?: Partial<TransmissionParams>;
}

export interface CoapResponse {
  code: number;
  /** The whole body: Block2 blocks already reassembled. */
  payload: Uint8Array;
  options: CoapOption[];
  contentFormat?: number;
  /** Observe sequence number of a notification / registration response. */
  observe?: number;
  /** The message type it arrived in (ACK for piggybacked, CON/NON for separate). */
  type: CoapType;
}
