/*
 * The device's storage partition, laid out as:
 *
 *   blocks [0, kvBlocks)           key/value store (credentials, settings): sectors of sectorBlocks
 *   blocks [kvBlocks, end)         offline queue ring
 *
 * Defaults: 4 blocks of settings (two 8 KB sectors, so a CA + certificate + key of up to ~8 KB
 * fit one record) and 16 blocks (64 KB) of queue: an 80 KB partition of 4 KB blocks on ESP32.
 */
import type { Flash } from '../platform/types';
import { CredentialStore } from './credentials';
import { StorageError } from './errors';
import { KvStore } from './kv';
import { FlashQueue } from './queue';
import { FlashRegion } from './region';
import { SettingsStore } from './settings';
import { SessionStore } from './session';

export { CredentialStore, CredentialsError, validateCredentials, parseServerUrl } from './credentials';
export type { StoredCredentials } from './credentials';
export { StorageError } from './errors';
export { KvStore } from './kv';
export { FlashQueue, RamQueue } from './queue';
export type { Reading, QueuedReading, ReadingQueue } from './queue';
export { FlashRegion } from './region';
export { SettingsStore } from './settings';
export { SessionStore, sessionTag } from './session';

export interface StorageLayout {
  /** Erase blocks for the key/value store (default 4). */
  kvBlocks?: number;
  /** Erase blocks per key/value sector (default 2). */
  sectorBlocks?: number;
  /** Program granularity (default 4 B, ESP32). */
  writeSize?: number;
}

export const DEFAULT_LAYOUT = Object.freeze({ kvBlocks: 4, sectorBlocks: 2, writeSize: 4, queueBlocks: 16 });

export interface DeviceStorage {
  kv: KvStore;
  queue: FlashQueue;
  credentials: CredentialStore;
  settings: SettingsStore;
  session: SessionStore;
}

/** Opens (reads, never writes) the stores of a storage partition. */
export function openDeviceStorage(flash: Flash, layout: StorageLayout = {}): DeviceStorage {
  const kvBlocks = layout.kvBlocks ?? DEFAULT_LAYOUT.kvBlocks;
  const writeSize = layout.writeSize ?? DEFAULT_LAYOUT.writeSize;
  const total = flash.byteLength / flash.blockSize;
  if (total - kvBlocks < 2) throw new StorageError('layout', `storage partition of ${total} blocks: needs ${kvBlocks} for settings and at least 2 for the queue`);
  const kv = new KvStore(new FlashRegion(flash, 0, kvBlocks), { sectorBlocks: layout.sectorBlocks ?? DEFAULT_LAYOUT.sectorBlocks, writeSize });
  const queue = new FlashQueue(new FlashRegion(flash, kvBlocks, total - kvBlocks), { writeSize });
  return { kv, queue, credentials: new CredentialStore(kv), settings: new SettingsStore(kv), session: new SessionStore(kv) };
}
