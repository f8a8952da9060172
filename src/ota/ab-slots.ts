/*
 * Two firmware image slots (A/B) and a boot loader with rollback, over any storage for the boot
 * record: the stand-ins for the ESP32's OTA partitions and bootloader on hosts that have none (the
 * simulator, tools/sim/ota-slots.ts; the Moddable Linux build, src/platform/moddable/lin/ota.ts).
 *
 * The loader (boot(), at every reset) works as ESP-IDF's with app rollback on, except that it
 * allows `maxTrialBoots` unconfirmed boots instead of one: an image switched to by activate()
 * boots on trial; confirm() keeps it; after `maxTrialBoots` boots without confirm() the loader
 * boots the previous image again (and so does rollback()).
 *
 * Device code: no Node APIs.
 */
import type { FirmwareImage, FirmwareSlots, Flash } from '../platform/types';

export interface SlotImage extends FirmwareImage {
  size: number;
}

export interface BootRecord {
  active: 0 | 1;
  images: [SlotImage | null, SlotImage | null];
  trial: boolean;
  trialBoots: number;
  /** Set by activate(): the slot to boot next, on trial. */
  pending: 0 | 1 | null;
  /** Set by rollback(): boot the other slot next. */
  rollback: boolean;
}

/** The record of a device that never updated: `factory` in slot A. */
export function freshBootRecord(factory: FirmwareImage): BootRecord {
  return { active: 0, images: [{ title: factory.title, version: factory.version, size: 0 }, null], trial: false, trialBoots: 0, pending: null, rollback: false };
}

/** A record read back from storage, or undefined when it is not one. */
export function checkBootRecord(r: unknown): BootRecord | undefined {
  const b = r as BootRecord | null;
  if (!b || typeof b !== 'object' || (b.active !== 0 && b.active !== 1) || !Array.isArray(b.images) || !b.images[b.active]) return undefined;
  return b;
}

export abstract class AbFirmwareSlots implements FirmwareSlots {
  readonly slots: [Flash, Flash];
  readonly maxTrialBoots: number;
  protected record: BootRecord;

  constructor(slots: [Flash, Flash], record: BootRecord, maxTrialBoots: number) {
    this.slots = slots;
    this.record = record;
    this.maxTrialBoots = maxTrialBoots;
  }

  /** Keeps the record so that a cut leaves the old or the new one. */
  protected abstract save(): void;

  abstract restart(): void;

  /** The loader: picks the image for this boot. Once per reset, before the firmware starts. */
  boot(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const r = this.record;
    if (r.pending !== null) {
      r.active = r.pending;
      r.pending = null;
      r.trial = true;
      r.trialBoots = 0;
    } else if (r.rollback || (r.trial && r.trialBoots >= this.maxTrialBoots)) {
      r.active = r.active === 0 ? 1 : 0;
      r.trial = false;
      r.trialBoots = 0;
    }
    r.rollback = false;
    if (r.trial) r.trialBoots++;
    this.booted();
    this.save();
    return this.running();
  }

  /** After the loader picked this boot's image, before the record is saved. */
  protected booted(): void {}

  /** The slot that does not run: where a download goes. */
  get update(): Flash {
    return this.slots[this.record.active === 0 ? 1 : 0];
  }

  running(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const r = this.record;
    const img = r.images[r.active]!;
    return { title: img.title, version: img.version, trial: r.trial, trialBoots: r.trialBoots };
  }

  activate(size: number, image: FirmwareImage): void {
    const inactive = this.record.active === 0 ? 1 : 0;
    const room = this.slots[inactive].byteLength;
    if (!(size > 0 && size <= room)) throw new Error(`image of ${size} bytes does not fit the ${room}-byte slot`);
    this.record.images[inactive] = { title: image.title, version: image.version, size };
    this.record.pending = inactive;
    this.save();
  }

  confirm(): void {
    this.record.trial = false;
    this.record.trialBoots = 0;
    this.save();
  }

  rollback(): void {
    this.record.rollback = true;
    this.save();
  }
}
