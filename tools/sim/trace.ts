/*
 * Live view of what the simulated device sends and receives: each datagram decoded with the
 * device's own codec and printed on one line, with the access token redacted.
 */
import { decode, getObserve, getOptions } from '../../src/coap/codec';
import { codeToString, OptionNumber } from '../../src/coap/types';
import { decodeUtf8 } from '../../src/coap/utf8';

const TYPES = ['CON', 'NON', 'ACK', 'RST'];
const METHODS = ['EMPTY', 'GET', 'POST', 'PUT', 'DELETE', 'FETCH', 'PATCH', 'iPATCH'];

/** `/api/v1/<token>/telemetry` -> `/api/v1/***\/telemetry`; `/fw/<token>` -> `/fw/***`. */
export function redactPath(segments: string[]): string {
  const s = segments.slice();
  if (s[0] === 'api' && s[1] === 'v1' && s.length > 3 && s[2] !== 'provision') s[2] = '***';
  if ((s[0] === 'fw' || s[0] === 'sw') && s.length > 1) s[1] = '***';
  return '/' + s.join('/');
}

const DTLS_TYPES: Record<number, string> = { 20: 'ChangeCipherSpec', 21: 'Alert', 22: 'Handshake', 23: 'ApplicationData' };

/** A DTLS 1.2 record header (content type, version FEFD) rather than CoAP (version 1)? */
export function isDtlsRecord(data: Uint8Array): boolean {
  return data.length >= 13 && DTLS_TYPES[data[0]!] !== undefined && data[1] === 0xfe && data[2] === 0xfd;
}

/** JSON fields that carry secrets: provisioning secret, issued credentials, claim key, passwords. */
const SECRET_FIELDS = /"(provisionDeviceSecret|credentialsValue|token|password|secretKey|accessToken)"\s*:\s*"(?:[^"\\]|\\.)*"/g;

/** The payload text with secret-bearing JSON fields masked. */
export function redactPayload(text: string): string {
  return text.replace(SECRET_FIELDS, '"$1":"***"');
}

/**
 * Renders a binary (application/octet-stream, Content-Format 42) payload, e.g. a Protobuf message
 * decoded with the device profile's codec (proto-trace.ts); undefined: print it as text.
 */
export type PayloadDescriber = (payload: Uint8Array, path: string[], direction: 'request' | 'response') => string | undefined;

export function describeDatagram(data: Uint8Array, describePayload?: PayloadDescriber): string {
  if (isDtlsRecord(data)) {
    const types: string[] = [];
    for (let i = 0; i + 13 <= data.length; ) {
      const len = (data[i + 11]! << 8) | data[i + 12]!;
      types.push(DTLS_TYPES[data[i]!] ?? `type ${data[i]}`);
      i += 13 + len;
    }
    return `DTLS ${types.join('+')} (${data.length} B)`;
  }
  let msg;
  try {
    msg = decode(data);
  } catch (e) {
    return `malformed (${data.length} B): ${(e as Error).message}`;
  }
  const type = TYPES[msg.type] ?? '?';
  const code = msg.code < 32 ? METHODS[msg.code] ?? `0.${msg.code}` : codeToString(msg.code);
  const path = getOptions(msg, OptionNumber.URI_PATH).map((o) => decodeUtf8(o.value));
  const query = getOptions(msg, OptionNumber.URI_QUERY).map((o) => decodeUtf8(o.value));
  const observe = getObserve(msg);
  let line = `${type} ${code} mid=${msg.messageId}`;
  if (path.length) line += ` ${redactPath(path)}${query.length ? '?' + query.join('&') : ''}`;
  if (observe !== undefined) line += ` obs=${observe}`;
  if (msg.payload.length) {
    const binary = describePayload && getOptions(msg, OptionNumber.CONTENT_FORMAT).some((o) => o.value.length === 1 && o.value[0] === 42);
    let text = (binary ? describePayload(msg.payload, path, msg.code < 32 ? 'request' : 'response') : undefined) ?? redactPayload(decodeUtf8(msg.payload));
    if (text.length > 120) text = text.slice(0, 117) + '...';
    line += ` ${text}`;
  }
  return `${line} (${data.length} B)`;
}
