/*
 * Flash -> Moddable's `flash` module on a data partition (ESP32: an entry of the partition table,
 * e.g. "storage"; the manifest includes $(MODDABLE)/modules/files/flash/manifest.json on esp32).
 * Moddable's Flash.read() returns an ArrayBuffer; the platform contract is Uint8Array.
 */
import ModdableFlash from 'flash';
import type { Flash } from '../types';

export function moddableFlash(partition = 'storage'): Flash {
  const f = new ModdableFlash(partition);
  return {
    byteLength: f.byteLength,
    blockSize: f.blockSize,
    read: (offset, byteLength) => new Uint8Array(f.read(offset, byteLength) as ArrayBuffer),
    write: (offset, data) => f.write(offset, data.byteLength, data),
    erase: (block) => f.erase(block),
  };
}
