/*
 * Bosch BME280 pressure, temperature and humidity sensor (datasheet BST-BME280-DS002),
 * ECMA-419 Sensor Class Pattern, I2C, forced mode.
 *
 * Per sample: ctrl_hum (0xF2) then ctrl_meas (0xF4) with mode = 01 (forced) in one pair-format
 * write (section 6.2.1: ctrl_hum only takes effect after a ctrl_meas write), wait the typical
 * measurement time, poll status (0xF3) until `measuring` clears (bounded), burst-read 0xF7..0xFE
 * (section 4: one burst keeps the three values from one conversion), then compensate with the
 * datasheet's integer formulas (section 4.2.3 / 8.2): 32-bit for T and H, 64-bit for P (BigInt).
 *
 * Skipped or implausible raw values (0x80000 for T/P, 0x8000 for H, all-ones from a floating bus)
 * are faults: retried once, then onError and sample() returns undefined.
 */
import type { I2CIo, I2CSensorOptions } from '../platform/types';

/** Register map, datasheet section 5.3. */
export const Bme280Register = Object.freeze({
  CALIB_00: 0x88, // 0x88..0xA1: dig_T1..dig_P9, 0xA0 unused, 0xA1 dig_H1
  CHIP_ID: 0xd0,
  RESET: 0xe0,
  CALIB_26: 0xe1, // 0xE1..0xE7: dig_H2..dig_H6
  CTRL_HUM: 0xf2,
  STATUS: 0xf3,
  CTRL_MEAS: 0xf4,
  CONFIG: 0xf5,
  PRESS_MSB: 0xf7, // 0xF7..0xFE: press[3], temp[3], hum[2]
});

const CHIP_ID_BME280 = 0x60;
const RESET_WORD = 0xb6;
const STATUS_MEASURING = 0x08;
const STATUS_IM_UPDATE = 0x01;
const MODE_FORCED = 0x01;
/** Raw value the part reports for a skipped measurement (section 4, table 14 note). */
const SKIPPED_20 = 0x80000;
const SKIPPED_16 = 0x8000;
/** Bounded status polls after the computed wait; each poll waits 1 ms. */
const MAX_POLLS = 10;
/** Start-up / reset time, datasheet table 1: 2 ms. */
const STARTUP_MS = 2;

/** Oversampling setting code (osrs_x) per factor, table 20/22/23; 0 = measurement skipped. */
const OversamplingCode: Readonly<Record<number, number>> = Object.freeze({ 0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5 });

/** Chip ids of Bosch parts that answer at the same addresses, for a helpful error. */
const KnownChipIds: Readonly<Record<number, string>> = Object.freeze({ 0x56: 'BMP280', 0x57: 'BMP280', 0x58: 'BMP280', 0x61: 'BME680' });

export type Oversampling = 0 | 1 | 2 | 4 | 8 | 16;

export type Bme280SensorOptions = I2CSensorOptions;

export interface Bme280Configuration {
  /** Oversampling factors; 0 skips that measurement (temperature cannot be skipped). Default 1 each. */
  temperatureOversampling?: Oversampling;
  pressureOversampling?: Oversampling;
  humidityOversampling?: Oversampling;
  onError?: (error: Error) => void;
}

export interface Bme280Options extends Bme280Configuration {
  sensor: Bme280SensorOptions;
}

export interface Bme280Sample {
  thermometer: { temperature: number };
  barometer?: { pressure: number };
  hygrometer?: { humidity: number };
}

/** Trimming parameters, datasheet table 16. */
export interface Bme280Calibration {
  digT1: number; digT2: number; digT3: number;
  digP1: number; digP2: number; digP3: number; digP4: number; digP5: number;
  digP6: number; digP7: number; digP8: number; digP9: number;
  digH1: number; digH2: number; digH3: number; digH4: number; digH5: number; digH6: number;
}

const Defaults = Object.freeze({ address: 0x76, hz: 100_000 });

/**
 * Parses the two calibration blocks: `low` = 26 bytes from 0x88..0xA1, `high` = 7 bytes from 0xE1..0xE7.
 * dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0] and dig_H5 = 0xE6[7:0] << 4 | 0xE5[7:4], both signed 12-bit
 * (the MSB byte is signed).
 */
export function parseBme280Calibration(low: Uint8Array, high: Uint8Array): Bme280Calibration {
  const u16 = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8);
  const s16 = (b: Uint8Array, i: number) => (u16(b, i) << 16) >> 16;
  const s8 = (v: number) => (v << 24) >> 24;
  return {
    digT1: u16(low, 0), digT2: s16(low, 2), digT3: s16(low, 4),
    digP1: u16(low, 6), digP2: s16(low, 8), digP3: s16(low, 10), digP4: s16(low, 12), digP5: s16(low, 14),
    digP6: s16(low, 16), digP7: s16(low, 18), digP8: s16(low, 20), digP9: s16(low, 22),
    digH1: low[25],
    digH2: s16(high, 0),
    digH3: high[2],
    digH4: (s8(high[3]) * 16) | (high[4] & 0x0f),
    digH5: (s8(high[5]) * 16) | (high[4] >> 4),
    digH6: s8(high[6]),
  };
}

/** t_fine from BME280_compensate_T_int32 (section 4.2.3); int32 arithmetic. */
export function bme280TFine(adcT: number, cal: Bme280Calibration): number {
  const var1 = Math.imul(((adcT >> 3) - (cal.digT1 << 1)) | 0, cal.digT2) >> 11;
  const d = ((adcT >> 4) - cal.digT1) | 0;
  const var2 = Math.imul(Math.imul(d, d) >> 12, cal.digT3) >> 14;
  return (var1 + var2) | 0;
}

/** BME280_compensate_T_int32 result: temperature in 0.01 °C ("5123" = 51.23 °C). */
export function bme280CompensateT(tFine: number): number {
  return (Math.imul(tFine, 5) + 128) >> 8;
}

/**
 * BME280_compensate_P_int64: pressure in Pa as unsigned Q24.8 ("24674867" = 96386.2 Pa).
 * Returns 0 where the datasheet does (var1 == 0, division by zero avoided).
 */
export function bme280CompensateP(adcP: number, tFine: number, cal: Bme280Calibration): number {
  let var1 = BigInt(tFine) - 128000n;
  let var2 = var1 * var1 * BigInt(cal.digP6);
  var2 = var2 + ((var1 * BigInt(cal.digP5)) << 17n);
  var2 = var2 + (BigInt(cal.digP4) << 35n);
  var1 = ((var1 * var1 * BigInt(cal.digP3)) >> 8n) + ((var1 * BigInt(cal.digP2)) << 12n);
  var1 = (((1n << 47n) + var1) * BigInt(cal.digP1)) >> 33n;
  if (var1 === 0n) return 0;
  let p = 1048576n - BigInt(adcP);
  p = (((p << 31n) - var2) * 3125n) / var1; // BigInt division truncates toward zero, as C does
  var1 = (BigInt(cal.digP9) * (p >> 13n) * (p >> 13n)) >> 25n;
  var2 = (BigInt(cal.digP8) * p) >> 19n;
  p = ((p + var1 + var2) >> 8n) + (BigInt(cal.digP7) << 4n);
  return Number(BigInt.asUintN(32, p));
}

/** bme280_compensate_H_int32: humidity in %RH as unsigned Q22.10 ("47445" = 46.333 %RH). */
export function bme280CompensateH(adcH: number, tFine: number, cal: Bme280Calibration): number {
  let v = (tFine - 76800) | 0;
  const a = ((((adcH << 14) - (cal.digH4 << 20) - Math.imul(cal.digH5, v)) | 0) + 16384) >> 15;
  const b1 = Math.imul(v, cal.digH6) >> 10;
  const b2 = (Math.imul(v, cal.digH3) >> 11) + 32768;
  const b = (Math.imul(((Math.imul(b1, b2) >> 10) + 2097152) | 0, cal.digH2) + 8192) >> 14;
  v = Math.imul(a, b);
  v = (v - (Math.imul(Math.imul(v >> 15, v >> 15) >> 7, cal.digH1) >> 4)) | 0;
  v = v < 0 ? 0 : v > 419430400 ? 419430400 : v;
  return v >>> 12;
}

/** Oversampling factor per osrs_x code. */
const OversamplingFactor = Object.freeze([0, 1, 2, 4, 8, 16, 16, 16]);

/** Maximum measurement time in ms for osrs codes, datasheet section 9.1, rounded up. */
function measurementMs(osrsT: number, osrsP: number, osrsH: number): number {
  const t = OversamplingFactor[osrsT];
  const p = OversamplingFactor[osrsP];
  const h = OversamplingFactor[osrsH];
  return Math.ceil(1.25 + 2.3 * t + (p ? 2.3 * p + 0.575 : 0) + (h ? 2.3 * h + 0.575 : 0));
}

export class Bme280 {
  #io: I2CIo;
  #delay: (ms: number) => void;
  #calibration: Bme280Calibration;
  #register = new Uint8Array(1);
  #byte = new Uint8Array(1);
  #control = new Uint8Array(4); // ctrl_hum pair, ctrl_meas pair
  #data = new Uint8Array(8);
  #osrsT = 1;
  #osrsP = 1;
  #osrsH = 1;
  #waitMs = 0;
  onError?: (error: Error) => void;

  constructor(options: Bme280Options) {
    const { io, delay, ...bus } = options.sensor;
    this.#delay = delay ?? noDelay;
    this.#io = new io({ ...Defaults, ...bus });

    try {
      const id = this.#readByte(Bme280Register.CHIP_ID);
      if (id !== CHIP_ID_BME280) {
        const guess = KnownChipIds[id];
        throw new Error(`BME280 not found: chip id 0x${hex2(id)}${guess ? ` (${guess}?)` : ''}`);
      }
      this.reset();
      // Calibration buffers are needed once, so they are not kept.
      const low = new Uint8Array(26);
      const high = new Uint8Array(7);
      this.#readRegisters(Bme280Register.CALIB_00, low);
      this.#readRegisters(Bme280Register.CALIB_26, high);
      this.#calibration = parseBme280Calibration(low, high);
    } catch (e) {
      this.#io.close(); // release the bus on a failed construction, as Moddable's drivers do
      throw e;
    }
    this.configure(options);
  }

  get calibration(): Readonly<Bme280Calibration> {
    return this.#calibration;
  }

  configure(options: Bme280Configuration): void {
    if (options.onError !== undefined) this.onError = options.onError;
    if (options.temperatureOversampling !== undefined) {
      if (options.temperatureOversampling === 0) throw new RangeError('BME280: temperature cannot be skipped (pressure and humidity need t_fine)');
      this.#osrsT = oversamplingCode(options.temperatureOversampling);
    }
    if (options.pressureOversampling !== undefined) this.#osrsP = oversamplingCode(options.pressureOversampling);
    if (options.humidityOversampling !== undefined) this.#osrsH = oversamplingCode(options.humidityOversampling);
    this.#waitMs = measurementMs(this.#osrsT, this.#osrsP, this.#osrsH);
    const c = this.#control;
    c[0] = Bme280Register.CTRL_HUM;
    c[1] = this.#osrsH;
    c[2] = Bme280Register.CTRL_MEAS;
    c[3] = (this.#osrsT << 5) | (this.#osrsP << 2) | MODE_FORCED;
  }

  /** Soft reset (0xE0 <- 0xB6), then waits for the NVM copy (status im_update) to finish. */
  reset(): void {
    const c = this.#control;
    c[0] = Bme280Register.RESET;
    c[1] = RESET_WORD;
    this.#io.write(c.subarray(0, 2));
    this.#delay(STARTUP_MS);
    for (let i = 0; this.#readByte(Bme280Register.STATUS) & STATUS_IM_UPDATE; i++) {
      if (i >= MAX_POLLS) throw new Error('BME280: NVM copy did not finish after reset');
      this.#delay(1);
    }
    this.configure({}); // the reset cleared ctrl registers; #control is rebuilt from the settings
  }

  /** One compensated forced-mode reading, or undefined after onError if two attempts failed. */
  sample(): Bme280Sample | undefined {
    let result: Bme280Sample | Error = new Error('BME280: no attempt');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        result = this.#measure();
      } catch (e) {
        result = e instanceof Error ? e : new Error(`BME280: ${String(e)}`);
      }
      if (!(result instanceof Error)) return result;
    }
    this.onError?.(result as Error);
    return undefined;
  }

  close(): void {
    this.#io.close();
  }

  #measure(): Bme280Sample | Error {
    this.#io.write(this.#control);
    this.#delay(this.#waitMs);
    for (let i = 0; this.#readByte(Bme280Register.STATUS) & STATUS_MEASURING; i++) {
      if (i >= MAX_POLLS) return new Error('BME280: measurement did not complete');
      this.#delay(1);
    }
    const d = this.#data;
    this.#readRegisters(Bme280Register.PRESS_MSB, d);
    const adcP = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4);
    const adcT = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4);
    const adcH = (d[6] << 8) | d[7];
    // 0x80000 / 0x8000: measurement skipped; all ones / all zeros: a floating or shorted bus.
    if (adcT === SKIPPED_20 || adcT === 0xfffff || adcT === 0) return new Error(`BME280: temperature raw value out of range (0x${adcT.toString(16)})`);
    if (this.#osrsP && (adcP === SKIPPED_20 || adcP === 0xfffff || adcP === 0)) return new Error(`BME280: pressure raw value out of range (0x${adcP.toString(16)})`);
    if (this.#osrsH && (adcH === SKIPPED_16 || adcH === 0xffff)) return new Error(`BME280: humidity raw value out of range (0x${adcH.toString(16)})`);

    const cal = this.#calibration;
    const tFine = bme280TFine(adcT, cal);
    const sample: Bme280Sample = { thermometer: { temperature: bme280CompensateT(tFine) / 100 } };
    if (this.#osrsP) {
      const p = bme280CompensateP(adcP, tFine, cal);
      if (p === 0) return new Error('BME280: pressure compensation divided by zero (bad calibration?)');
      sample.barometer = { pressure: p / 256 };
    }
    if (this.#osrsH) sample.hygrometer = { humidity: bme280CompensateH(adcH, tFine, cal) / 1024 };
    return sample;
  }

  #readByte(register: number): number {
    this.#readRegisters(register, this.#byte);
    return this.#byte[0];
  }

  #readRegisters(register: number, into: Uint8Array): void {
    this.#register[0] = register;
    this.#io.write(this.#register, false); // repeated start
    this.#io.read(into);
  }
}

function oversamplingCode(factor: number): number {
  const code = OversamplingCode[factor];
  if (code === undefined) throw new RangeError(`BME280: oversampling must be 0, 1, 2, 4, 8 or 16, not ${factor}`);
  return code;
}

function hex2(n: number): string {
  return (n < 16 ? '0' : '') + n.toString(16).toUpperCase();
}

function noDelay(_ms: number): void {}

export default Bme280;
