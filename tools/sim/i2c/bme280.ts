/*
 * Simulated Bosch BME280 at register level (datasheet BST-BME280-DS002 section 5): chip id,
 * calibration NVM, soft reset, ctrl_hum/ctrl_meas/config, status, data registers; forced and normal
 * mode produce one conversion each trigger.
 *
 * Faults: `nack`, `outOfRange` (pressure reads back as skipped, 0x80000) and the bus's `stuck`. There is
 * no `badCrc`: the BME280 has no checksum, so a corrupted byte cannot be detected by any driver.
 *
 * Raw ADC values come from the environment's physical values by searching the 20/16-bit raw range
 * for the value whose compensated output is nearest the target (compensation is monotonic in each
 * raw value), using the driver's exported compensation functions. Those are verified against the
 * datasheet independently in test/sensors/bme280.test.ts, so the sim inherits that checking.
 */
import {
  type Bme280Calibration,
  bme280CompensateH,
  bme280CompensateP,
  bme280CompensateT,
  bme280TFine,
} from '../../../src/sensors/bme280';
import { type SimFaults, type SimI2CDevice, nackError, noFaults, takeFault } from './bus';
import type { Environment } from './environment';

/**
 * Default trimming: dig_T and dig_P are the worked example of the Bosch BMP280 datasheet
 * (BST-BMP280-DS001 section 3.12, same formulas as the BME280); dig_H is a plausible set seen on
 * real BME280 parts.
 */
export const DEFAULT_CALIBRATION: Readonly<Bme280Calibration> = Object.freeze({
  digT1: 27504, digT2: 26435, digT3: -1000,
  digP1: 36477, digP2: -10685, digP3: 3024, digP4: 2855, digP5: 140,
  digP6: -7, digP7: 15500, digP8: -14600, digP9: 6000,
  digH1: 75, digH2: 362, digH3: 0, digH4: 324, digH5: 0, digH6: 30,
});

export interface SimBme280Options {
  address?: number;
  /** 0x60 for a BME280; 0x58 makes it look like a BMP280. */
  chipId?: number;
  calibration?: Bme280Calibration;
  /** Keep `measuring` set (and old data) until the measurement time has passed on the clock. */
  enforceTiming?: boolean;
}

/** Packs trimming parameters into the NVM image at 0x88..0xA1 and 0xE1..0xE7 (table 16). */
export function packBme280Calibration(cal: Bme280Calibration, regs: Uint8Array): void {
  const put16 = (at: number, v: number) => {
    regs[at] = v & 0xff;
    regs[at + 1] = (v >> 8) & 0xff;
  };
  put16(0x88, cal.digT1); put16(0x8a, cal.digT2); put16(0x8c, cal.digT3);
  put16(0x8e, cal.digP1); put16(0x90, cal.digP2); put16(0x92, cal.digP3); put16(0x94, cal.digP4);
  put16(0x96, cal.digP5); put16(0x98, cal.digP6); put16(0x9a, cal.digP7); put16(0x9c, cal.digP8);
  put16(0x9e, cal.digP9);
  regs[0xa1] = cal.digH1 & 0xff;
  put16(0xe1, cal.digH2);
  regs[0xe3] = cal.digH3 & 0xff;
  regs[0xe4] = (cal.digH4 >> 4) & 0xff;
  regs[0xe5] = (cal.digH4 & 0x0f) | ((cal.digH5 & 0x0f) << 4);
  regs[0xe6] = (cal.digH5 >> 4) & 0xff;
  regs[0xe7] = cal.digH6 & 0xff;
}

/** Smallest x in [lo, hi] with f(x) >= target for non-decreasing f (hi if none). */
function lowerBound(lo: number, hi: number, f: (x: number) => number, target: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (f(mid) >= target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Raw value in [lo, hi] whose f is nearest target; f monotonic (increasing unless `decreasing`). */
export function invert(lo: number, hi: number, f: (x: number) => number, target: number, decreasing = false): number {
  const g = decreasing ? (x: number) => -f(x) : f;
  const t = decreasing ? -target : target;
  const x = lowerBound(lo, hi, g, t);
  return x > lo && Math.abs(g(x - 1) - t) <= Math.abs(g(x) - t) ? x - 1 : x;
}

const MEASURE_BITS = 0x08;
const IM_UPDATE = 0x01;
const OSRS_FACTOR = [0, 1, 2, 4, 8, 16, 16, 16];

export class SimBme280 implements SimI2CDevice {
  readonly address: number;
  readonly faults: SimFaults = noFaults();
  readonly calibration: Bme280Calibration;
  readonly enforceTiming: boolean;
  /** Number of conversions performed, for tests. */
  conversions = 0;
  #env: Environment;
  #regs = new Uint8Array(256);
  #pointer = 0;
  #ctrlHumLatched = 0;
  #busyUntil = 0;
  #updateUntil = 0;
  #pendingData: Uint8Array | undefined;

  constructor(env: Environment, options: SimBme280Options = {}) {
    this.#env = env;
    this.address = options.address ?? 0x76;
    this.calibration = { ...(options.calibration ?? DEFAULT_CALIBRATION) };
    this.enforceTiming = options.enforceTiming ?? false;
    this.#regs[0xd0] = options.chipId ?? 0x60;
    packBme280Calibration(this.calibration, this.#regs);
    this.#powerOnReset();
  }

  /** Register value as the part holds it (tests). */
  register(address: number): number {
    this.#settle();
    return address === 0xf3 ? this.#status() : this.#regs[address];
  }

  write(bytes: Uint8Array): void {
    if (takeFault(this.faults, 'nack')) throw nackError(this.address, 'write');
    if (bytes.length === 0) return;
    // Section 6.2.1: a write is register address + data pairs (no auto-increment); a lone byte
    // sets the read pointer.
    let i = 0;
    for (; i + 1 < bytes.length; i += 2) this.#writeRegister(bytes[i], bytes[i + 1]);
    if (i < bytes.length) this.#pointer = bytes[i];
  }

  read(length: number): Uint8Array {
    if (takeFault(this.faults, 'nack')) throw nackError(this.address, 'read');
    this.#settle();
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const at = (this.#pointer + i) & 0xff;
      out[i] = at === 0xf3 ? this.#status() : this.#regs[at];
    }
    // Auto-increment for reads (section 6.2.2).
    this.#pointer = (this.#pointer + length) & 0xff;
    return out;
  }

  #status(): number {
    const now = this.#env.clock.now();
    return (now < this.#busyUntil ? MEASURE_BITS : 0) | (now < this.#updateUntil ? IM_UPDATE : 0);
  }

  #settle(): void {
    if (this.#pendingData && this.#env.clock.now() >= this.#busyUntil) {
      this.#regs.set(this.#pendingData, 0xf7);
      this.#pendingData = undefined;
    }
  }

  #powerOnReset(): void {
    this.#regs.fill(0, 0xf2, 0xf6);
    // Data registers' reset values: 0x80000 / 0x8000, i.e. "skipped".
    this.#regs.set([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00], 0xf7);
    this.#ctrlHumLatched = 0;
    this.#pendingData = undefined;
    this.#busyUntil = 0;
  }

  #writeRegister(register: number, value: number): void {
    const now = this.#env.clock.now();
    switch (register) {
      case 0xe0:
        if (value === 0xb6) {
          this.#powerOnReset();
          if (this.enforceTiming) this.#updateUntil = now + 2;
        }
        return;
      case 0xf2:
        this.#regs[0xf2] = value & 0x07;
        return;
      case 0xf4: {
        this.#regs[0xf4] = value;
        this.#ctrlHumLatched = this.#regs[0xf2]; // ctrl_hum becomes effective on a ctrl_meas write
        const mode = value & 0x03;
        if (mode === 0x01 || mode === 0x02 || mode === 0x03) this.#convert(now);
        if (mode === 0x01 || mode === 0x02) this.#regs[0xf4] = value & ~0x03; // forced: back to sleep
        return;
      }
      case 0xf5:
        this.#regs[0xf5] = value;
        return;
      default:
        return; // read-only registers ignore writes
    }
  }

  #convert(now: number): void {
    this.#settle();
    this.conversions++;
    const ctrl = this.#regs[0xf4];
    const osrsT = OSRS_FACTOR[ctrl >> 5];
    const osrsP = OSRS_FACTOR[(ctrl >> 2) & 0x07];
    const osrsH = OSRS_FACTOR[this.#ctrlHumLatched];
    const cal = this.calibration;

    let adcT = 0x80000;
    let adcP = 0x80000;
    let adcH = 0x8000;
    if (osrsT) {
      adcT = invert(1, 0xffffe, (x) => bme280CompensateT(bme280TFine(x, cal)), Math.round(this.#env.temperature() * 100));
      const tFine = bme280TFine(adcT, cal);
      if (osrsP) adcP = invert(1, 0xffffe, (x) => bme280CompensateP(x, tFine, cal), this.#env.pressure() * 256, true);
      if (osrsH) adcH = invert(0, 0xfffe, (x) => bme280CompensateH(x, tFine, cal), this.#env.humidity() * 1024);
    }
    if (takeFault(this.faults, 'outOfRange')) adcP = 0x80000;

    const data = new Uint8Array(8);
    data[0] = adcP >> 12; data[1] = (adcP >> 4) & 0xff; data[2] = (adcP & 0x0f) << 4;
    data[3] = adcT >> 12; data[4] = (adcT >> 4) & 0xff; data[5] = (adcT & 0x0f) << 4;
    data[6] = adcH >> 8; data[7] = adcH & 0xff;

    // Maximum measurement time, datasheet section 9.1.
    const ms = 1.25 + 2.3 * osrsT + (osrsP ? 2.3 * osrsP + 0.575 : 0) + (osrsH ? 2.3 * osrsH + 0.575 : 0);
    if (this.enforceTiming) {
      this.#pendingData = data;
      this.#busyUntil = now + ms;
    } else {
      this.#regs.set(data, 0xf7);
    }
  }
}
