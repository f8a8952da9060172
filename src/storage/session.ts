/*
 * The DTLS session kept across reboots and deep sleep (key 3 of the key/value store), so the next
 * boot resumes with an abbreviated handshake (reference §3: ThingsBoard resumes by session ID)
 * instead of a full one. Stored with a tag of what it belongs to (server, host name, client
 * certificate): a session saved for other credentials or another server is never offered.
 * Written only when the bytes change. The session holds the master secret: as sensitive as the
 * private key next to it in the credentials record.
 *
 * Beside it (key 4), the whole DTLS connection saved before deep sleep (DtlsDatagram.saveContext():
 * keys, record sequence numbers, session), with the same tag: the cheapest way back (no handshake).
 * It is written at every sleep and must be loaded at most once (a second load would repeat record
 * sequence numbers, i.e. AEAD nonces): clearContext() before the restored connection sends anything
 * (DtlsDatagram's onRestore), so a reboot after that finds no context and resumes the session.
 * Flash cost per wake with the 217-byte context of mbedTLS 2.28: one 240-byte record (16-byte header,
 * 4-byte tag, 16-byte alignment) and one 16-byte tombstone.
 */
import type { KvStore } from './kv';
import { crc32 } from './crc32';

export const KEY_DTLS_SESSION = 3;
export const KEY_DTLS_CONTEXT = 4;

export class SessionStore {
  #kv: KvStore;

  constructor(kv: KvStore) {
    this.#kv = kv;
  }

  /** The saved session for `tag`, or undefined (none, or saved for something else). */
  load(tag: number): Uint8Array | undefined {
    return tagged(this.#kv.get(KEY_DTLS_SESSION), tag);
  }

  /** The connection saved before sleep for `tag`, or undefined. Load it once: see clearContext(). */
  loadContext(tag: number): Uint8Array | undefined {
    return tagged(this.#kv.get(KEY_DTLS_CONTEXT), tag);
  }

  /** Saves the connection handed out by DtlsDatagram.saveContext() (every sleep: it always changes). */
  saveContext(tag: number, context: Uint8Array): void {
    this.#kv.put(KEY_DTLS_CONTEXT, withTag(tag, context));
  }

  /**
   * Invalidates the saved connection (a tombstone; nothing is written when there is none). Call it
   * before a loaded connection sends anything. True when it wrote.
   */
  clearContext(): boolean {
    if (!this.#kv.has(KEY_DTLS_CONTEXT)) return false;
    this.#kv.delete(KEY_DTLS_CONTEXT);
    return true;
  }

  /** Saves `session` for `tag` unless the same is stored; true when it wrote. */
  save(tag: number, session: Uint8Array): boolean {
    const cur = this.load(tag);
    if (cur && cur.length === session.length && cur.every((b, i) => b === session[i])) return false;
    this.#kv.put(KEY_DTLS_SESSION, withTag(tag, session));
    return true;
  }

  /** Forgets the session and the saved connection. */
  clear(): void {
    this.#kv.delete(KEY_DTLS_SESSION);
    this.clearContext();
  }
}

function tagged(v: Uint8Array | undefined, tag: number): Uint8Array | undefined {
  if (!v || v.length < 5) return undefined;
  const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (view.getUint32(0, true) !== tag >>> 0) return undefined;
  return v.subarray(4);
}

function withTag(tag: number, bytes: Uint8Array): Uint8Array {
  const v = new Uint8Array(4 + bytes.length);
  new DataView(v.buffer).setUint32(0, tag >>> 0, true);
  v.set(bytes, 4);
  return v;
}

/** The tag of a session: CRC-32 over what it was negotiated for. */
export function sessionTag(parts: readonly (string | Uint8Array | undefined)[]): number {
  let crc = 0;
  const enc = (s: string) => {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
    return b;
  };
  for (const p of parts) {
    const b = p === undefined ? new Uint8Array(0) : typeof p === 'string' ? enc(p) : p;
    crc = crc32(b, crc);
    crc = crc32(new Uint8Array([0x1f]), crc);
  }
  return crc;
}
