/*
 * `ota/platform` on the Moddable Linux host (mcconfig -p lin): a stand-in for the ESP32's A/B
 * partitions and boot loader, so a lin build runs a firmware update end to end against the local
 * endpoint with the real SDK. Like tools/sim/ota-slots.ts on Node, over the SDK's `file` module:
 *
 *   <root>flash-<partition>-ota-a.bin, -ota-b.bin   the two image slots (NOR semantics: the `flash`
 *                                                   stand-in of lin/flash.ts, 512 KB by default)
 *   <root>flash-<partition>-ota-boot.json           the loader's record: the active slot, the image
 *                                                   in each slot, trial, trial boots, pending switch
 *
 * The code that runs is always this build (mc.so): a "slot" holds the downloaded bytes, and the
 * record names the image each slot holds, which is what running() reports after a switch.
 *
 * The loader (boot()) runs when the slots are opened (every start of the app: a boot) and at
 * restart(). restart() does not end the process (Moddable on lin has no exit for the app): it
 * logs, runs the loader, and calls `onRestart` (src/main.ts stops the app and starts the firmware
 * again from its storage: a reboot in place). The loader works like ESP-IDF's with app rollback,
 * except that it allows `maxTrialBoots` unconfirmed boots (default 3; ESP-IDF: 1).
 *
 * No native digest on lin: `platformHash` is undefined, so src/ota/hash.ts computes the checksums.
 */
import Flash from 'flash';
import { File } from 'file';
import config from 'mc/config';
import type { FirmwareImage, FirmwareSlots, Flash as FlashPartition, Log } from '../../types';
import type { KvStore } from '../../../storage/kv';
import type { ChecksumAlgorithm, StreamingHash } from '../../../ota/hash';

interface SlotImage extends FirmwareImage {
  size: number;
}

interface BootRecord {
  active: 0 | 1;
  images: [SlotImage | null, SlotImage | null];
  trial: boolean;
  trialBoots: number;
  /** Set by activate(): the slot to boot next, on trial. */
  pending: 0 | 1 | null;
  /** Set by rollback(): boot the other slot next. */
  rollback: boolean;
}

export interface PlatformSlotsOptions {
  /** The storage partition's name: the slot and record files are named after it. */
  partition: string;
  /** The image this build is (config.firmware): slot A's at the first boot. */
  firmware: FirmwareImage;
  log: Log;
  /** The storage partition's key/value store (unused on lin: the record is its own file). */
  kv?: KvStore;
  /** Called by restart() after the loader ran: stop the app and start the firmware again. */
  onRestart?: () => void;
}

export const platformHash: ((algorithm: ChecksumAlgorithm) => StreamingHash | undefined) | undefined = undefined;

/** Wraps the lin `flash` stand-in as the platform's Flash. */
function partitionFlash(name: string, byteLength: number): FlashPartition {
  const f = new (Flash as unknown as new (partition: string, byteLength: number) => {
    readonly byteLength: number;
    readonly blockSize: number;
    read(offset: number, byteLength: number): ArrayBuffer;
    write(offset: number, byteLength: number, data: Uint8Array): void;
    erase(block: number): void;
  })(name, byteLength);
  return {
    byteLength: f.byteLength,
    blockSize: f.blockSize,
    read: (offset, length) => new Uint8Array(f.read(offset, length)),
    write: (offset, data) => f.write(offset, data.byteLength, data),
    erase: (block) => f.erase(block),
  };
}

class LinFirmwareSlots implements FirmwareSlots {
  readonly #slots: [FlashPartition, FlashPartition];
  readonly #path: string;
  readonly #o: PlatformSlotsOptions;
  readonly #maxTrialBoots: number;
  #record: BootRecord;

  constructor(options: PlatformSlotsOptions) {
    this.#o = options;
    // config keys (strings when set on the mcconfig command line): otaSlotSize, otaTrialBoots
    const c = config as { otaSlotSize?: number | string; otaTrialBoots?: number | string };
    const bytes = Number(c.otaSlotSize ?? 512 * 1024);
    this.#maxTrialBoots = Number(c.otaTrialBoots ?? 3);
    if (!(bytes >= 4096 && bytes % 4096 === 0)) throw new RangeError(`otaSlotSize ${c.otaSlotSize}: a multiple of 4096`);
    this.#slots = [partitionFlash(`${options.partition}-ota-a`, bytes), partitionFlash(`${options.partition}-ota-b`, bytes)];
    this.#path = `${config.file?.root ?? '/tmp/'}flash-${options.partition}-ota-boot.json`;
    this.#record = this.#load() ?? { active: 0, images: [{ ...options.firmware, size: 0 }, null], trial: false, trialBoots: 0, pending: null, rollback: false };
    this.boot();
  }

  /** The loader: picks the image for this boot. */
  boot(): void {
    const r = this.#record;
    if (r.pending !== null) {
      r.active = r.pending;
      r.pending = null;
      r.trial = true;
      r.trialBoots = 0;
    } else if (r.rollback || (r.trial && r.trialBoots >= this.#maxTrialBoots)) {
      r.active = r.active === 0 ? 1 : 0;
      r.trial = false;
      r.trialBoots = 0;
    }
    r.rollback = false;
    if (r.trial) r.trialBoots++;
    this.#save();
    const img = r.images[r.active]!;
    this.#o.log.info(`ota (lin stand-in): boot slot ${r.active === 0 ? 'A' : 'B'}: ${img.title} ${img.version}${r.trial ? ` on trial, boot ${r.trialBoots} of ${this.#maxTrialBoots}` : ''}`);
  }

  get update(): FlashPartition {
    return this.#slots[this.#record.active === 0 ? 1 : 0];
  }

  running(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const r = this.#record;
    const img = r.images[r.active]!;
    return { title: img.title, version: img.version, trial: r.trial, trialBoots: r.trialBoots };
  }

  activate(size: number, image: FirmwareImage): void {
    const inactive = this.#record.active === 0 ? 1 : 0;
    if (!(size > 0 && size <= this.#slots[inactive].byteLength)) throw new Error(`image of ${size} bytes does not fit the ${this.#slots[inactive].byteLength}-byte slot`);
    this.#record.images[inactive] = { title: image.title, version: image.version, size };
    this.#record.pending = inactive;
    this.#save();
  }

  confirm(): void {
    this.#record.trial = false;
    this.#record.trialBoots = 0;
    this.#save();
  }

  rollback(): void {
    this.#record.rollback = true;
    this.#save();
  }

  restart(): void {
    this.#o.log.warn('ota (lin stand-in): restart: the app stops and the firmware starts again in this process, as after a reset');
    this.boot();
    this.#o.onRestart?.();
  }

  #load(): BootRecord | undefined {
    if (!File.exists(this.#path)) return undefined;
    try {
      const f = new File(this.#path);
      let text: string;
      try {
        text = f.read(String);
      } finally {
        f.close();
      }
      const r = JSON.parse(text) as BootRecord;
      if ((r.active !== 0 && r.active !== 1) || !Array.isArray(r.images) || !r.images[r.active]) return undefined;
      return r;
    } catch {
      this.#o.log.warn(`ota (lin stand-in): ${this.#path} unreadable: starting from slot A`);
      return undefined;
    }
  }

  /** Written to a new file and renamed over the old one: old or new after a cut, never neither. */
  #save(): void {
    const tmp = `${this.#path}.tmp`;
    if (File.exists(tmp)) File.delete(tmp);
    const f = new File(tmp, true);
    try {
      f.write(JSON.stringify(this.#record));
    } finally {
      f.close();
    }
    File.rename(tmp, this.#path);
  }
}

export function openFirmwareSlots(options: PlatformSlotsOptions): FirmwareSlots {
  return new LinFirmwareSlots(options);
}
