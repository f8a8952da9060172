/*
 * `ota/platform` on ESP32: the firmware's A/B update over ESP-IDF's two OTA app partitions
 * (hardware/esp32/partitions.csv: otadata, ota_0, ota_1) with app rollback
 * (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y: hardware/esp32/sdkconfig/sdkconfig.defaults).
 *
 * - update: the `nextota` partition (esp_ota_get_next_update_partition) through the SDK's `flash`
 *   module, written raw (erase a 4 KB block, program, read back): a download goes on after a
 *   reboot where it stopped. Moddable's `embedded:update` is not used: its open() calls
 *   esp_ota_begin(), which erases the partition (all of it, or sector by sector from 0), so it
 *   cannot resume.
 * - activate(): esp_ota_set_boot_partition(nextota) (hardware/ota/ota_esp32.c), which checks the
 *   image (header, segments, appended SHA-256) before it writes otadata; a bad image throws, and
 *   the agent reports FAILED.
 * - running().trial: the running partition's state is ESP_OTA_IMG_PENDING_VERIFY. ESP-IDF's
 *   bootloader gives a new image one boot: reset before confirm() and it boots the previous image
 *   (ESP_OTA_IMG_ABORTED). So trialBoots is 1 on trial, and the agent's trial timer bounds it.
 * - confirm(): esp_ota_mark_app_valid_cancel_rollback(); rollback():
 *   esp_ota_mark_app_invalid_rollback_and_reboot(); restart(): esp_restart().
 * - running() title/version: what activate() recorded for that partition in the storage
 *   partition's key/value store (KEY_OTA_SLOTS), when the image in it is still the one recorded
 *   (the ELF SHA-256 of its esp_app_desc_t: a USB flash over it is another image); else the build's
 *   config.firmware.
 *
 * platformHash: MD5, SHA-256/384/512 through the SDK's `crypt` Digest (native C); CRC32 and
 * MURMUR3 have none there, so src/ota/hash.ts computes those.
 */
import Flash from 'flash';
import { Digest } from 'crypt';
import { activate as nativeActivate, confirm as nativeConfirm, imageHash, restart as nativeRestart, rollback as nativeRollback, state as nativeState } from 'ota/native';
import type { FirmwareImage, FirmwareSlots, FirmwareSlotsOptions, Flash as FlashPartition } from '../../types';
import type { ChecksumAlgorithm, StreamingHash } from '../../../ota/hash';

/** Key of the per-partition image names in the storage key/value store (src/ota/store.ts lists the keys). */
const KEY_OTA_SLOTS = 19;

export type PlatformSlotsOptions = FirmwareSlotsOptions;

interface SlotName extends FirmwareImage {
  /** Hex of the image's ELF SHA-256 (esp_app_desc_t.app_elf_sha256). */
  sha: string;
}

function hex(buffer: ArrayBuffer | Uint8Array): string {
  const b = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

function fromLatin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

class NativeDigest implements StreamingHash {
  readonly #d: Digest;

  constructor(name: 'MD5' | 'SHA256' | 'SHA384' | 'SHA512') {
    this.#d = new Digest(name);
  }

  update(bytes: Uint8Array, start = 0, end = bytes.length): void {
    // crypt's write() takes any buffer source (xsmcGetBufferReadable); its typings say ArrayBuffer.
    this.#d.write((start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end)) as unknown as ArrayBuffer);
  }

  digestHex(): string {
    return hex(this.#d.close());
  }
}

export function platformHash(algorithm: ChecksumAlgorithm): StreamingHash | undefined {
  switch (algorithm) {
    case 'MD5':
    case 'SHA256':
    case 'SHA384':
    case 'SHA512':
      return new NativeDigest(algorithm);
    default:
      return undefined;
  }
}

class Esp32FirmwareSlots implements FirmwareSlots {
  readonly update: FlashPartition;
  readonly #o: PlatformSlotsOptions;

  constructor(options: PlatformSlotsOptions) {
    this.#o = options;
    const f = new Flash('nextota');
    this.update = {
      byteLength: f.byteLength,
      blockSize: f.blockSize,
      read: (offset, byteLength) => new Uint8Array(f.read(offset, byteLength) as ArrayBuffer),
      write: (offset, data) => f.write(offset, data.byteLength, data),
      erase: (block) => f.erase(block),
    };
    const s = nativeState();
    options.log.info(`ota: running ${s.running}${s.trial ? ' on trial (ESP_OTA_IMG_PENDING_VERIFY)' : ''}, updates go to ${s.next ?? 'nothing'} (${f.byteLength} bytes)`);
  }

  #names(): { [label: string]: SlotName } {
    const b = this.#o.kv?.get(KEY_OTA_SLOTS);
    if (!b) return {};
    try {
      const v = JSON.parse(fromLatin1(b)) as { [label: string]: SlotName };
      return v && typeof v === 'object' ? v : {};
    } catch {
      return {};
    }
  }

  running(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const s = nativeState();
    const name = this.#names()[s.running];
    const sha = imageHash(false);
    const image = name && sha && name.sha === hex(sha) ? name : this.#o.firmware;
    return { title: image.title, version: image.version, trial: s.trial, trialBoots: s.trial ? 1 : 0 };
  }

  activate(_size: number, image: FirmwareImage): void {
    const s = nativeState();
    const sha = imageHash(true);
    if (!s.next || !sha) throw new Error('the update partition holds no app image (no esp_app_desc_t)');
    // The name first, the switch second: a name without a switch is never read (the image it
    // names does not run); esp_ota_set_boot_partition() checks the image and throws if it is bad.
    if (this.#o.kv) {
      const names = this.#names();
      names[s.next] = { title: image.title, version: image.version, sha: hex(sha) };
      // ASCII only (\u escapes), so one byte per character both ways.
      const json = JSON.stringify(names).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
      this.#o.kv.put(KEY_OTA_SLOTS, latin1(json));
    }
    nativeActivate();
  }

  confirm(): void {
    nativeConfirm();
  }

  rollback(): void {
    nativeRollback();
  }

  restart(): void {
    this.#o.log.info('ota: restarting (esp_restart)');
    nativeRestart();
  }
}

export function openFirmwareSlots(options: PlatformSlotsOptions): FirmwareSlots {
  return new Esp32FirmwareSlots(options);
}
