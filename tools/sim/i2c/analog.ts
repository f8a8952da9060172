/*
 * Simulated ADC for ECMA-419 Analog IO (embedded:io/analog): pins connected to voltage sources,
 * read() returns round(v / vref * (2^resolution - 1)) clamped to the range.
 * createSimAnalog(board) returns a class for `options.sensor.io` of the battery driver.
 */
import type { AnalogIo, AnalogIoConstructor, AnalogOptions } from '../../../src/platform/types';

export interface SimAnalogOptions {
  /** Bits; default 12 (ESP32). */
  resolution?: number;
  /** Full-scale input voltage; default 3.3 V. */
  vref?: number;
}

export class SimAnalog {
  readonly resolution: number;
  readonly vref: number;
  /** Reads that throw (ADC busy / driver error), counted down; Infinity = always. */
  failReads = 0;
  #pins = new Map<number, () => number>();

  constructor(options: SimAnalogOptions = {}) {
    this.resolution = options.resolution ?? 12;
    this.vref = options.vref ?? 3.3;
  }

  /** Connects a pin to a voltage source (volts at the pin, after any divider). */
  connect(pin: number, volts: () => number): this {
    this.#pins.set(pin, volts);
    return this;
  }

  has(pin: number): boolean {
    return this.#pins.has(pin);
  }

  read(pin: number): number {
    if (this.failReads > 0) {
      this.failReads--;
      throw new Error(`analog read failed on pin ${pin}`);
    }
    const source = this.#pins.get(pin);
    if (!source) throw new Error(`analog pin ${pin} not connected`);
    const max = 2 ** this.resolution - 1;
    const raw = Math.round((source() / this.vref) * max);
    return raw < 0 ? 0 : raw > max ? max : raw;
  }
}

export function createSimAnalog(adc: SimAnalog): AnalogIoConstructor {
  return class SimAnalogIo implements AnalogIo {
    readonly #pin: number;
    #closed = false;

    constructor(options: AnalogOptions) {
      if (!adc.has(options.pin)) throw new Error(`invalid pin ${options.pin}`);
      this.#pin = options.pin;
    }

    get resolution(): number {
      return adc.resolution;
    }

    read(): number {
      if (this.#closed) throw new Error('closed');
      return adc.read(this.#pin);
    }

    close(): void {
      this.#closed = true;
    }
  };
}
