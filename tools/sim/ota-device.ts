/*
 * A simulated device with firmware updates: the unchanged firmware (DeviceApp + src/ota OtaAgent)
 * over a storage flash and two image slots (ota-slots.ts), rebooted by the simulator whenever the
 * firmware restarts (after a switch, a rollback, a trial timeout) or a test cuts the power.
 */
import type { OtaOptions } from '../../src/ota/agent';
import { OtaAgent } from '../../src/ota/agent';
import { OtaStore } from '../../src/ota/store';
import type { Flash } from '../../src/platform/types';
import type { SimDevice, SimDeviceOptions } from './device';
import { createSimDevice } from './device';
import type { SimFirmwareSlots } from './ota-slots';

export interface OtaSimOptions extends SimDeviceOptions {
  flash: Flash;
  slots: SimFirmwareSlots;
  otaOptions?: Partial<OtaOptions>;
  /** Per-boot changes to the device options (e.g. an image that cannot reach the server). */
  perImage?: (image: { title: string; version: string }) => Partial<SimDeviceOptions>;
  /** Called after every boot with the new device and agent (to hook events, faults). */
  onBoot?: (booted: { device: SimDevice; agent: OtaAgent; boot: number }) => void;
}

export class OtaSimDevice {
  device!: SimDevice;
  agent!: OtaAgent;
  boots = 0;
  readonly #o: OtaSimOptions;
  #closed = false;
  #rebooting: Promise<void> | undefined;

  constructor(options: OtaSimOptions) {
    this.#o = options;
    options.slots.onRestart = () => {
      // The firmware asked for a reset: reboot from a fresh job (never inside the firmware's call).
      this.#rebooting = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => this.reboot())
        .catch((e: Error) => {
          if (!this.#closed) this.#o.log?.error(`simulated reboot: ${e.message}`);
        });
    };
  }

  /** Boots (the loader picks the image) and starts the firmware. */
  async boot(): Promise<void> {
    if (this.#closed) return;
    const o = this.#o;
    const image = o.slots.boot();
    this.boots++;
    const agent = new OtaAgent({ slots: o.slots, clock: o.clock!, log: o.log!, ...o.otaOptions });
    const device = createSimDevice({ ...o, firmware: { title: image.title, version: image.version }, ota: agent, ...(o.perImage?.(image) ?? {}) });
    agent.useStore(new OtaStore(device.storage!.kv));
    this.device = device;
    this.agent = agent;
    o.onBoot?.({ device, agent, boot: this.boots });
    await device.app.start();
  }

  /** A reset (power cycle or restart): the running firmware is gone, RAM lost, flash kept. */
  async reboot(): Promise<void> {
    this.device?.app.stop();
    await this.boot();
  }

  /** Waits for a reboot the firmware asked for, if one is under way. */
  async settled(): Promise<void> {
    await this.#rebooting;
  }

  stop(): void {
    this.#closed = true;
    this.device?.app.stop();
  }
}
