/*
 * Settings the server gave the device (today: the reporting interval from the shared attribute
 * `reportingInterval` or RPC setInterval), kept so they apply from the first cycle after a
 * reboot, before the Observe notification comes back. Written only when the value changes.
 */
import { decodeUtf8, encodeUtf8 } from '../coap/utf8';
import type { KvStore } from './kv';

export const KEY_SETTINGS = 2;

export interface StoredSettings {
  /** Seconds. */
  reportingInterval?: number;
  /** Where it came from: 'shared-attribute' or 'rpc'. */
  source?: string;
}

export class SettingsStore {
  #kv: KvStore;
  #cache: StoredSettings | undefined;
  /** Set when the stored record did not decode (it is then ignored). */
  corrupt = false;

  constructor(kv: KvStore) {
    this.#kv = kv;
  }

  load(): StoredSettings {
    if (this.#cache) return this.#cache;
    let s: StoredSettings = {};
    const bytes = this.#kv.get(KEY_SETTINGS);
    if (bytes) {
      try {
        const v = JSON.parse(decodeUtf8(bytes)) as StoredSettings;
        if (v && typeof v === 'object') {
          if (typeof v.reportingInterval === 'number' && v.reportingInterval > 0) s.reportingInterval = v.reportingInterval;
          if (typeof v.source === 'string') s.source = v.source;
        }
      } catch {
        this.corrupt = true;
        s = {};
      }
    }
    this.#cache = s;
    return s;
  }

  /** Stores `next` when it differs from what is stored; true when it wrote. */
  save(next: StoredSettings): boolean {
    const cur = this.load();
    if (cur.reportingInterval === next.reportingInterval && cur.source === next.source) return false;
    const s: StoredSettings = {};
    if (next.reportingInterval !== undefined) s.reportingInterval = next.reportingInterval;
    if (next.source !== undefined) s.source = next.source;
    if (s.reportingInterval === undefined) this.#kv.delete(KEY_SETTINGS);
    else this.#kv.put(KEY_SETTINGS, encodeUtf8(JSON.stringify(s)));
    this.#cache = s;
    return true;
  }
}
