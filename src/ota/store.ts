/*
 * OTA progress in the storage partition's key/value store (src/storage/kv.ts: each put is an atomic
 * replace, old or new after a power cut, never neither):
 *
 *   KEY_OTA        the target package and the phase (JSON), written when a download starts, when
 *                  the switch is about to happen, and when an update failed
 *   KEY_OTA_CHUNK  u32 next chunk | u32 tag: written after each chunk is in the update slot and read
 *                  back equal. The tag is a CRC-32 of the target's identity, so a counter left over
 *                  from another package (a cut between the two puts) counts as 0, never as progress.
 *   KEY_OTA_STATES fw_state reports the server has not confirmed yet (JSON: [{ts, values}], oldest
 *                  first, at most MAX_PENDING_STATES): sent again, with their own ts, after the next
 *                  connect, so the state history survives an outage, a reboot or a power cut.
 *   KEY_OTA_SLOTS  (src/platform/moddable/esp32/ota.ts) the title/version of the image activate()
 *                  put in each app partition, with that image's ELF SHA-256 to recognise it.
 */
import { decodeUtf8, encodeUtf8 } from '../coap/utf8';
import type { KvStore } from '../storage/kv';
import { crc32 } from '../storage/crc32';
import type { ChecksumAlgorithm } from './hash';
import { isChecksumAlgorithm } from './hash';

export const KEY_OTA = 16;
export const KEY_OTA_CHUNK = 17;
export const KEY_OTA_STATES = 18;
export const KEY_OTA_SLOTS = 19;
/** Unconfirmed fw_state reports kept in flash (one update makes at most 6; older ones are dropped first). */
export const MAX_PENDING_STATES = 8;
/** Bytes of the pending-state record at most (the key/value sector also holds credentials). */
const MAX_PENDING_BYTES = 1536;

/** One fw_state report: the telemetry values and the device's timestamp. */
export interface PendingState {
  ts: number;
  values: { [key: string]: string };
}

/** What ThingsBoard assigned (the fw_* shared attributes). */
export interface OtaTarget {
  title: string;
  version: string;
  size: number;
  checksum: string;
  algorithm: ChecksumAlgorithm;
}

export interface OtaRecord extends OtaTarget {
  /** Bytes per chunk for this download (fixed once it started: the offsets depend on it). */
  chunkSize: number;
  /**
   * 'downloading': chunks go to the update slot; 'updating': verified and switched, the device is
   * booting the new image on trial; 'failed': this package failed (`error`), not tried again until
   * ThingsBoard assigns another one.
   */
  phase: 'downloading' | 'updating' | 'failed';
  /** The image that ran before the switch (to tell a rollback from a success). */
  fromTitle?: string;
  fromVersion?: string;
  /** Boots the new image made on trial (written by the new image at each boot): 0 / absent = it never booted. */
  trialBoots?: number;
  /** The switch was made again after a restart that found the new image never booted (made once only). */
  reswitched?: boolean;
  error?: string;
}

export function sameTarget(a: OtaTarget, b: OtaTarget): boolean {
  return a.title === b.title && a.version === b.version && a.size === b.size && a.checksum.toLowerCase() === b.checksum.toLowerCase() && a.algorithm === b.algorithm;
}

export function targetTag(t: OtaTarget): number {
  return crc32(encodeUtf8(`${t.title}\u0000${t.version}\u0000${t.size}\u0000${t.checksum.toLowerCase()}\u0000${t.algorithm}`));
}

export class OtaStore {
  readonly #kv: KvStore;

  constructor(kv: KvStore) {
    this.#kv = kv;
  }

  load(): OtaRecord | undefined {
    const bytes = this.#kv.get(KEY_OTA);
    if (!bytes) return undefined;
    try {
      const v = JSON.parse(decodeUtf8(bytes)) as OtaRecord;
      if (!v || typeof v.title !== 'string' || typeof v.version !== 'string' || !(v.size >= 0) || typeof v.checksum !== 'string' || !isChecksumAlgorithm(v.algorithm)) return undefined;
      if (!(v.chunkSize > 0) || (v.phase !== 'downloading' && v.phase !== 'updating' && v.phase !== 'failed')) return undefined;
      return v;
    } catch {
      return undefined;
    }
  }

  save(record: OtaRecord): void {
    this.#kv.put(KEY_OTA, encodeUtf8(JSON.stringify(record)));
  }

  /** The next chunk to download for `target` (0 when the counter belongs to another package). */
  nextChunk(target: OtaTarget): number {
    const b = this.#kv.get(KEY_OTA_CHUNK);
    if (!b || b.length !== 8) return 0;
    const v = new DataView(b.buffer, b.byteOffset, 8);
    return v.getUint32(4, true) === targetTag(target) ? v.getUint32(0, true) : 0;
  }

  setNextChunk(target: OtaTarget, next: number): void {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, next, true);
    v.setUint32(4, targetTag(target), true);
    this.#kv.put(KEY_OTA_CHUNK, b);
  }

  clear(): void {
    if (this.#kv.has(KEY_OTA_CHUNK)) this.#kv.delete(KEY_OTA_CHUNK);
    if (this.#kv.has(KEY_OTA)) this.#kv.delete(KEY_OTA);
  }

  /** fw_state reports not confirmed by the server, oldest first. */
  pendingStates(): PendingState[] {
    const bytes = this.#kv.get(KEY_OTA_STATES);
    if (!bytes) return [];
    try {
      const v = JSON.parse(decodeUtf8(bytes)) as PendingState[];
      if (!Array.isArray(v)) return [];
      return v.filter((p) => p && typeof p.ts === 'number' && p.values && typeof p.values.fw_state === 'string');
    } catch {
      return [];
    }
  }

  /**
   * Replaces the unconfirmed reports (an empty list deletes the record). Keeps the newest
   * MAX_PENDING_STATES within MAX_PENDING_BYTES; returns how many older ones were dropped.
   */
  setPendingStates(states: PendingState[]): number {
    let keep = states.slice(-MAX_PENDING_STATES);
    let bytes = encodeUtf8(JSON.stringify(keep));
    while (keep.length > 1 && bytes.length > MAX_PENDING_BYTES) {
      keep = keep.slice(1);
      bytes = encodeUtf8(JSON.stringify(keep));
    }
    if (!keep.length || bytes.length > MAX_PENDING_BYTES) {
      if (this.#kv.has(KEY_OTA_STATES)) this.#kv.delete(KEY_OTA_STATES);
      return states.length;
    }
    this.#kv.put(KEY_OTA_STATES, bytes);
    return states.length - keep.length;
  }
}
