/*
 * Sensirion SHT3x-DIS humidity and temperature sensor, ECMA-419 Sensor Class Pattern.
 *
 * Single-shot measurement without clock stretching (command 0x2400 for high repeatability):
 * the part NACKs its read header until the conversion is done, so the driver waits through the
 * injected `delay` (see docs/sensors.md) and then reads 6 bytes: T msb, T lsb, CRC, RH msb, RH lsb,
 * CRC. Every 16-bit word is checked with CRC-8 (poly 0x31, init 0xFF, datasheet section 4.12).
 *
 * A failed sample (NACK, bus error, CRC mismatch) is retried once; if the retry also fails the
 * driver calls onError and sample() returns undefined. It never returns a value it could not verify.
 */
import type { I2CIo, I2CSensorOptions } from '../platform/types';

/** Command codes, datasheet table 9 onwards. Sent MSB first. */
export const Sht3xCommand = Object.freeze({
  SINGLE_SHOT_HIGH: 0x2400, // high repeatability, clock stretching disabled
  SINGLE_SHOT_MEDIUM: 0x240b,
  SINGLE_SHOT_LOW: 0x2416,
  READ_STATUS: 0xf32d,
  CLEAR_STATUS: 0x3041,
  SOFT_RESET: 0x30a2,
  HEATER_ENABLE: 0x306d,
  HEATER_DISABLE: 0x3066,
});

/** Maximum measurement duration in ms per repeatability (datasheet table 4), rounded up. */
const MeasurementMs = Object.freeze({ high: 16, medium: 7, low: 5 });

/** Soft reset time, datasheet table 4: 1.5 ms max. */
const SOFT_RESET_MS = 2;

/** Status register bits, datasheet table 17. */
export const Sht3xStatus = Object.freeze({
  ALERT_PENDING: 1 << 15,
  HEATER_ON: 1 << 13,
  RH_TRACKING_ALERT: 1 << 11,
  T_TRACKING_ALERT: 1 << 10,
  RESET_DETECTED: 1 << 4,
  COMMAND_FAILED: 1 << 1,
  WRITE_CRC_FAILED: 1 << 0,
});

export type Sht3xRepeatability = 'high' | 'medium' | 'low';

export type Sht3xSensorOptions = I2CSensorOptions;

export interface Sht3xConfiguration {
  repeatability?: Sht3xRepeatability;
  /** Turns the on-chip heater on or off (for condensation recovery; it skews temperature). */
  heater?: boolean;
  onError?: (error: Error) => void;
}

export interface Sht3xOptions extends Sht3xConfiguration {
  sensor: Sht3xSensorOptions;
}

export interface Sht3xSample {
  thermometer: { temperature: number };
  hygrometer: { humidity: number };
}

const Defaults = Object.freeze({ address: 0x44, hz: 100_000 });

/** CRC-8 of the SHT3x: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final XOR. */
export function crc8Sht3x(bytes: ArrayLike<number>, start = 0, end = bytes.length): number {
  let crc = 0xff;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i];
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** Datasheet section 4.13: T = -45 + 175 * S_T / (2^16 - 1), in °C. */
export function sht3xTemperature(raw: number): number {
  return -45 + (175 * raw) / 65535;
}

/** Datasheet section 4.13: RH = 100 * S_RH / (2^16 - 1), in %RH, clamped to 0..100. */
export function sht3xHumidity(raw: number): number {
  const rh = (100 * raw) / 65535;
  return rh < 0 ? 0 : rh > 100 ? 100 : rh;
}

export class Sht3x {
  #io: I2CIo;
  #delay: (ms: number) => void;
  #command = new Uint8Array(2);
  #measurement = new Uint8Array(6);
  #status = new Uint8Array(3);
  #repeatability: Sht3xRepeatability = 'high';
  onError?: (error: Error) => void;

  constructor(options: Sht3xOptions) {
    const { io, delay, ...bus } = options.sensor;
    this.#delay = delay ?? noDelay;
    this.#io = new io({ ...Defaults, ...bus });
    // An absent part fails here with the bus's own error: construction is not a recoverable fault.
    try {
      this.reset();
    } catch (e) {
      this.#io.close();
      throw e;
    }
    this.configure(options);
  }

  configure(options: Sht3xConfiguration): void {
    if (options.onError !== undefined) this.onError = options.onError;
    if (options.repeatability !== undefined) {
      if (!(options.repeatability in MeasurementMs)) throw new RangeError(`SHT3x: bad repeatability ${options.repeatability}`);
      this.#repeatability = options.repeatability;
    }
    if (options.heater !== undefined) this.#writeCommand(options.heater ? Sht3xCommand.HEATER_ENABLE : Sht3xCommand.HEATER_DISABLE);
  }

  /** One verified reading, or undefined after onError if two attempts failed. */
  sample(): Sht3xSample | undefined {
    let error: Error | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      error = this.#measure();
      if (!error) {
        const m = this.#measurement;
        return {
          thermometer: { temperature: sht3xTemperature((m[0] << 8) | m[1]) },
          hygrometer: { humidity: sht3xHumidity((m[3] << 8) | m[4]) },
        };
      }
    }
    this.onError?.(error!);
    return undefined;
  }

  /** Status register (table 17); throws on a bus error or CRC mismatch. */
  readStatus(): number {
    const s = this.#status;
    this.#writeCommand(Sht3xCommand.READ_STATUS);
    this.#io.read(s);
    if (crc8Sht3x(s, 0, 2) !== s[2]) throw new Error('SHT3x: status CRC mismatch');
    return (s[0] << 8) | s[1];
  }

  clearStatus(): void {
    this.#writeCommand(Sht3xCommand.CLEAR_STATUS);
  }

  /** Soft reset (0x30A2): reloads calibration, turns the heater off. */
  reset(): void {
    this.#writeCommand(Sht3xCommand.SOFT_RESET);
    this.#delay(SOFT_RESET_MS);
  }

  close(): void {
    this.#io.close();
  }

  #measure(): Error | undefined {
    const m = this.#measurement;
    const r = this.#repeatability;
    try {
      this.#writeCommand(r === 'high' ? Sht3xCommand.SINGLE_SHOT_HIGH : r === 'medium' ? Sht3xCommand.SINGLE_SHOT_MEDIUM : Sht3xCommand.SINGLE_SHOT_LOW);
      this.#delay(MeasurementMs[r]);
      this.#io.read(m);
    } catch (e) {
      return e instanceof Error ? e : new Error(`SHT3x: ${String(e)}`);
    }
    if (crc8Sht3x(m, 0, 2) !== m[2]) return new Error('SHT3x: temperature CRC mismatch');
    if (crc8Sht3x(m, 3, 5) !== m[5]) return new Error('SHT3x: humidity CRC mismatch');
    return undefined;
  }

  #writeCommand(command: number): void {
    const c = this.#command;
    c[0] = command >> 8;
    c[1] = command & 0xff;
    this.#io.write(c);
  }
}

function noDelay(_ms: number): void {}

export default Sht3x;
