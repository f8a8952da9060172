/*
 * Battery voltage through a resistor divider into an ECMA-419 Analog IO (embedded:io/analog).
 *
 *   volts = raw / (2^resolution - 1) * vref * divider
 *
 * `divider` is (R_top + R_bottom) / R_bottom: 2.0 for two equal resistors. `vref` is the full-scale
 * input voltage of the ADC as configured (on an ESP32 with 11 dB attenuation roughly 3.3 V; calibrate
 * per board). The sample shape is not an ECMA-419 class; it follows the same style:
 * `{ battery: { voltage } }` in volts.
 */
import type { AnalogIo, AnalogIoConstructor } from '../platform/types';

export interface BatterySensorOptions {
  io: AnalogIoConstructor;
  pin: number;
  [key: string]: unknown;
}

export interface BatteryConfiguration {
  /** (R_top + R_bottom) / R_bottom; default 2.0. */
  divider?: number;
  /** ADC full-scale voltage; default 3.3 V. */
  vref?: number;
  onError?: (error: Error) => void;
}

export interface BatteryOptions extends BatteryConfiguration {
  sensor: BatterySensorOptions;
}

export interface BatterySample {
  battery: { voltage: number };
}

const Defaults = Object.freeze({ divider: 2.0, vref: 3.3 });

export function batteryVolts(raw: number, resolution: number, vref: number, divider: number): number {
  return (raw / (2 ** resolution - 1)) * vref * divider;
}

export class Battery {
  #io: AnalogIo;
  #divider: number = Defaults.divider;
  #vref: number = Defaults.vref;
  onError?: (error: Error) => void;

  constructor(options: BatteryOptions) {
    const { io, ...analog } = options.sensor;
    this.#io = new io(analog);
    this.configure(options);
  }

  configure(options: BatteryConfiguration): void {
    if (options.onError !== undefined) this.onError = options.onError;
    if (options.divider !== undefined) {
      if (!(options.divider >= 1)) throw new RangeError(`Battery: divider ratio must be >= 1, not ${options.divider}`);
      this.#divider = options.divider;
    }
    if (options.vref !== undefined) {
      if (!(options.vref > 0)) throw new RangeError(`Battery: vref must be > 0, not ${options.vref}`);
      this.#vref = options.vref;
    }
  }

  /** `{ battery: { voltage } }` in volts, or undefined after onError if the ADC read failed. */
  sample(): BatterySample | undefined {
    let raw: number;
    const io = this.#io;
    try {
      raw = io.read();
    } catch (e) {
      this.onError?.(e instanceof Error ? e : new Error(`Battery: ${String(e)}`));
      return undefined;
    }
    const max = 2 ** io.resolution - 1;
    if (!(raw >= 0 && raw <= max)) {
      this.onError?.(new Error(`Battery: ADC value ${raw} out of range 0..${max}`));
      return undefined;
    }
    return { battery: { voltage: batteryVolts(raw, io.resolution, this.#vref, this.#divider) } };
  }

  close(): void {
    this.#io.close();
  }
}

export default Battery;
