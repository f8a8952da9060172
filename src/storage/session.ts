/*
 * The DTLS session kept across reboots and deep sleep (key 3 of the key/value store), so the next
 * boot resumes with an abbreviated handshake (reference §3: ThingsBoard resumes by session ID)
 * instead of a full one. Stored with a tag of what it belongs to (server, host name, client
 * certificate): a session saved for other credentials or another server is never offered.
 * Written only when the bytes change. The session holds the master secret: as sensitive as the
 * private key next to it in the credentials record.
 */
import type { KvStore } from './kv';
import { crc32 } from './crc32';

export const KEY_DTLS_SESSION = 3;

export class SessionStore {
  #kv: KvStore;

  constructor(kv: KvStore) {
    this.#kv = kv;
  }

  /** The saved session for `tag`, or undefined (none, or saved for something else). */
  load(tag: number): Uint8Array | undefined {
    const v = this.#kv.get(KEY_DTLS_SESSION);
    if (!v || v.length < 5) return undefined;
    const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
    if (view.getUint32(0, true) !== tag >>> 0) return undefined;
    return v.subarray(4);
  }

  /** Saves `session` for `tag` unless the same is stored; true when it wrote. */
  save(tag: number, session: Uint8Array): boolean {
    const cur = this.load(tag);
    if (cur && cur.length === session.length && cur.every((b, i) => b === session[i])) return false;
    const v = new Uint8Array(4 + session.length);
    new DataView(v.buffer).setUint32(0, tag >>> 0, true);
    v.set(session, 4);
    this.#kv.put(KEY_DTLS_SESSION, v);
    return true;
  }

  clear(): void {
    this.#kv.delete(KEY_DTLS_SESSION);
  }
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
