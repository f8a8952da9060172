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
import type { FirmwareImage, FirmwareSlots, FirmwareSlotsOptions, Flash as FlashPartition } from '../../types';
import type { ChecksumAlgorithm, StreamingHash } from '../../../ota/hash';
import { AbFirmwareSlots, checkBootRecord, freshBootRecord } from 'ota/ab-slots';
import type { BootRecord } from 'ota/ab-slots';

export type PlatformSlotsOptions = FirmwareSlotsOptions;

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

class LinFirmwareSlots extends AbFirmwareSlots {
  readonly #path: string;
  readonly #o: PlatformSlotsOptions;

  constructor(options: PlatformSlotsOptions, path: string, slots: [FlashPartition, FlashPartition], maxTrialBoots: number) {
    super(slots, freshBootRecord(options.firmware), maxTrialBoots);
    this.#o = options;
    this.#path = path;
    const stored = this.#load();
    if (stored) this.record = stored;
    this.boot();
  }

  protected override booted(): void {
    const r = this.record;
    const img = r.images[r.active]!;
    this.#o.log.info(`ota (lin stand-in): boot slot ${r.active === 0 ? 'A' : 'B'}: ${img.title} ${img.version}${r.trial ? ` on trial, boot ${r.trialBoots} of ${this.maxTrialBoots}` : ''}`);
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
      return checkBootRecord(JSON.parse(text));
    } catch {
      this.#o.log.warn(`ota (lin stand-in): ${this.#path} unreadable: starting from slot A`);
      return undefined;
    }
  }

  /** Written to a new file and renamed over the old one: old or new after a cut, never neither. */
  protected save(): void {
    const tmp = `${this.#path}.tmp`;
    if (File.exists(tmp)) File.delete(tmp);
    const f = new File(tmp, true);
    try {
      f.write(JSON.stringify(this.record));
    } finally {
      f.close();
    }
    File.rename(tmp, this.#path);
  }
}

export function openFirmwareSlots(options: PlatformSlotsOptions): FirmwareSlots {
  // config keys (strings when set on the mcconfig command line): otaSlotSize, otaTrialBoots
  const c = config as { otaSlotSize?: number | string; otaTrialBoots?: number | string };
  const bytes = Number(c.otaSlotSize ?? 512 * 1024);
  if (!(bytes >= 4096 && bytes % 4096 === 0)) throw new RangeError(`otaSlotSize ${c.otaSlotSize}: a multiple of 4096`);
  const slots: [FlashPartition, FlashPartition] = [partitionFlash(`${options.partition}-ota-a`, bytes), partitionFlash(`${options.partition}-ota-b`, bytes)];
  const path = `${config.file?.root ?? '/tmp/'}flash-${options.partition}-ota-boot.json`;
  return new LinFirmwareSlots(options, path, slots, Number(c.otaTrialBoots ?? 3));
}
