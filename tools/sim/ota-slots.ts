/*
 * Two firmware image slots (A/B) and a boot loader with rollback, for the simulator: the host side
 * of src/platform FirmwareSlots. Each slot is a NOR flash (MemFlash, or FileFlash under `dir`, with
 * power-cut injection), and a boot record says which slot boots, and whether it is on trial.
 *
 * The loader (boot(), called at every simulated reset) works as ESP-IDF's with app rollback on,
 * except that it allows `maxTrialBoots` unconfirmed boots instead of one: an image switched to by
 * activate() boots on trial; confirm() keeps it; after `maxTrialBoots` boots without confirm() the
 * loader boots the previous image again (and so does rollback()).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FirmwareImage, FirmwareSlots, Flash } from '../../src/platform/types';
import { FileFlash, MemFlash } from './flash';

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
  /** Every boot, for tests and the live view: "A 1.0.0", "B 1.1.0 trial 1". */
  history: string[];
}

export interface SimSlotsOptions {
  /** The image in slot A at first boot. */
  factory: FirmwareImage;
  slotBytes?: number;
  blockSize?: number;
  maxTrialBoots?: number;
  /** Keep the slots and the boot record in files here (slot-a.bin, slot-b.bin, boot.json). */
  dir?: string;
}

export class SimFirmwareSlots implements FirmwareSlots {
  readonly slots: [MemFlash, MemFlash];
  readonly maxTrialBoots: number;
  /** Called by restart(): the simulator stops the device and boots it again. */
  onRestart?: () => void;
  #record: BootRecord;
  #file: string | undefined;

  constructor(options: SimSlotsOptions) {
    const bytes = options.slotBytes ?? 512 * 1024;
    const block = options.blockSize ?? 4096;
    this.maxTrialBoots = options.maxTrialBoots ?? 3;
    this.slots = options.dir
      ? [new FileFlash(join(options.dir, 'slot-a.bin'), bytes, block), new FileFlash(join(options.dir, 'slot-b.bin'), bytes, block)]
      : [new MemFlash(bytes, block), new MemFlash(bytes, block)];
    this.#file = options.dir ? join(options.dir, 'boot.json') : undefined;
    const fresh: BootRecord = { active: 0, images: [{ ...options.factory, size: 0 }, null], trial: false, trialBoots: 0, pending: null, rollback: false, history: [] };
    this.#record = this.#file && existsSync(this.#file) ? (JSON.parse(readFileSync(this.#file, 'utf8')) as BootRecord) : fresh;
  }

  /** The loader: picks the image for this boot. Call once per simulated reset, before the firmware starts. */
  boot(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const r = this.#record;
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
    const img = r.images[r.active]!;
    r.history.push(`${r.active === 0 ? 'A' : 'B'} ${img.version}${r.trial ? ` trial ${r.trialBoots}` : ''}`);
    this.#save();
    return this.running();
  }

  get update(): Flash {
    return this.slots[this.#record.active === 0 ? 1 : 0];
  }

  get history(): readonly string[] {
    return this.#record.history;
  }

  running(): FirmwareImage & { trial: boolean; trialBoots: number } {
    const r = this.#record;
    const img = r.images[r.active]!;
    return { title: img.title, version: img.version, trial: r.trial, trialBoots: r.trialBoots };
  }

  /** The bytes of the image that boots now (tests compare them with the package). */
  runningImage(): Uint8Array {
    const r = this.#record;
    return this.slots[r.active].read(0, r.images[r.active]!.size);
  }

  activate(size: number, image: FirmwareImage): void {
    const inactive = this.#record.active === 0 ? 1 : 0;
    if (!(size > 0 && size <= this.slots[inactive].byteLength)) throw new Error(`image of ${size} bytes does not fit the slot`);
    this.#record.images[inactive] = { ...image, size };
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
    this.onRestart?.();
  }

  close(): void {
    for (const s of this.slots) s.close();
  }

  #save(): void {
    if (!this.#file) return;
    writeFileSync(`${this.#file}.tmp`, JSON.stringify(this.#record));
    renameSync(`${this.#file}.tmp`, this.#file);
  }
}
