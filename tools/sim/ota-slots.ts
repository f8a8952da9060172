/*
 * Two firmware image slots (A/B) and a boot loader with rollback, for the simulator: the host side
 * of src/platform FirmwareSlots. Each slot is a NOR flash (MemFlash, or FileFlash under `dir`, with
 * power-cut injection), and a boot record says which slot boots, and whether it is on trial.
 *
 * The loader is src/ota/ab-slots.ts (shared with the Moddable Linux build's stand-in); boot() is
 * called at every simulated reset.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FirmwareImage } from '../../src/platform/types';
import { AbFirmwareSlots, checkBootRecord, freshBootRecord } from '../../src/ota/ab-slots';
import type { BootRecord } from '../../src/ota/ab-slots';
import { FileFlash, MemFlash } from './flash';

interface SimBootRecord extends BootRecord {
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

export class SimFirmwareSlots extends AbFirmwareSlots {
  declare readonly slots: [MemFlash, MemFlash];
  declare protected record: SimBootRecord;
  /** Called by restart(): the simulator stops the device and boots it again. */
  onRestart?: () => void;
  #file: string | undefined;

  constructor(options: SimSlotsOptions) {
    const bytes = options.slotBytes ?? 512 * 1024;
    const block = options.blockSize ?? 4096;
    const slots: [MemFlash, MemFlash] = options.dir
      ? [new FileFlash(join(options.dir, 'slot-a.bin'), bytes, block), new FileFlash(join(options.dir, 'slot-b.bin'), bytes, block)]
      : [new MemFlash(bytes, block), new MemFlash(bytes, block)];
    const file = options.dir ? join(options.dir, 'boot.json') : undefined;
    const stored = file && existsSync(file) ? (checkBootRecord(JSON.parse(readFileSync(file, 'utf8'))) as SimBootRecord | undefined) : undefined;
    super(slots, stored ?? { ...freshBootRecord(options.factory), history: [] }, options.maxTrialBoots ?? 3);
    this.#file = file;
  }

  protected override booted(): void {
    const r = this.record;
    const img = r.images[r.active]!;
    r.history.push(`${r.active === 0 ? 'A' : 'B'} ${img.version}${r.trial ? ` trial ${r.trialBoots}` : ''}`);
  }

  get history(): readonly string[] {
    return this.record.history;
  }

  /** The bytes of the image that boots now (tests compare them with the package). */
  runningImage(): Uint8Array {
    const r = this.record;
    return this.slots[r.active].read(0, r.images[r.active]!.size);
  }

  restart(): void {
    this.onRestart?.();
  }

  close(): void {
    for (const s of this.slots) s.close();
  }

  protected save(): void {
    if (!this.#file) return;
    writeFileSync(`${this.#file}.tmp`, JSON.stringify(this.record));
    renameSync(`${this.#file}.tmp`, this.#file);
  }
}
