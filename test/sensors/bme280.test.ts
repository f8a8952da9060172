/*
 * BME280: compensation against the datasheet (BST-BME280-DS002 section 4.2.3 integer formulas and
 * section 8.1 floating-point formulas), re-implemented here independently with BigInt and explicit
 * 32-bit wrapping; calibration parsing against hand-packed bytes; then the driver end to end
 * against the simulated part with faults.
 *
 * Worked example (dig_T*, dig_P*, adc_T = 519888, adc_P = 415148): Bosch BMP280 datasheet
 * BST-BMP280-DS001 section 3.12, whose T/P formulas are identical to the BME280's. It states
 * t_fine = 128422, T = 25.08 °C and p = 100653.27 Pa. Executing the published 64-bit integer
 * formula gives 25767233 (Q24.8) = 100653.254 Pa; the often-quoted 25767236 is the floating-point
 * result 100653.2668 Pa times 256. Both are asserted below.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { DEFAULT_CALIBRATION, Environment, SimBme280, SimI2CBus, createSimI2C, type SimI2CDevice } from '../../tools/sim/i2c';
import {
  Bme280,
  type Bme280Calibration,
  bme280CompensateH,
  bme280CompensateP,
  bme280CompensateT,
  bme280TFine,
  parseBme280Calibration,
} from '../../src/sensors/bme280';

// ---- Independent reference: the datasheet's C, transcribed with BigInt; s32() is a C int32 ----
const s32 = (x: bigint) => BigInt.asIntN(32, x);

function refT(adcT: number, c: Bme280Calibration): { t: bigint; tFine: bigint } {
  const adc = BigInt(adcT);
  const T1 = BigInt(c.digT1), T2 = BigInt(c.digT2), T3 = BigInt(c.digT3);
  const var1 = s32(s32(s32((adc >> 3n) - (T1 << 1n)) * T2) >> 11n);
  const d = s32((adc >> 4n) - T1);
  const var2 = s32(s32(s32(d * d) >> 12n) * T3) >> 14n;
  const tFine = s32(var1 + var2);
  return { t: s32(tFine * 5n + 128n) >> 8n, tFine };
}

function refP(adcP: number, tFine: bigint, c: Bme280Calibration): bigint {
  const [P1, P2, P3, P4, P5, P6, P7, P8, P9] = [c.digP1, c.digP2, c.digP3, c.digP4, c.digP5, c.digP6, c.digP7, c.digP8, c.digP9].map(BigInt);
  const i64 = (x: bigint) => BigInt.asIntN(64, x);
  let var1 = i64(tFine - 128000n);
  let var2 = i64(var1 * var1 * P6);
  var2 = i64(var2 + i64(i64(var1 * P5) << 17n));
  var2 = i64(var2 + i64(P4 << 35n));
  var1 = i64(i64(i64(var1 * var1 * P3) >> 8n) + i64(i64(var1 * P2) << 12n));
  var1 = i64(i64(i64((1n << 47n) + var1) * P1) >> 33n);
  if (var1 === 0n) return 0n;
  let p = i64(1048576n - BigInt(adcP));
  p = i64(i64(i64(i64(p << 31n) - var2) * 3125n) / var1);
  var1 = i64(i64(P9 * (p >> 13n) * (p >> 13n)) >> 25n);
  var2 = i64(i64(P8 * p) >> 19n);
  p = i64(i64((p + var1 + var2) >> 8n) + i64(P7 << 4n));
  return BigInt.asUintN(32, p);
}

function refH(adcH: number, tFine: bigint, c: Bme280Calibration): bigint {
  const [H1, H2, H3, H4, H5, H6] = [c.digH1, c.digH2, c.digH3, c.digH4, c.digH5, c.digH6].map(BigInt);
  let v = s32(tFine - 76800n);
  const left = s32(s32(s32(s32(s32(BigInt(adcH) << 14n) - s32(H4 << 20n)) - s32(H5 * v)) + 16384n) >> 15n);
  const inner = s32(s32(s32(s32(s32(v * H6) >> 10n) * s32(s32(s32(v * H3) >> 11n) + 32768n)) >> 10n) + 2097152n);
  const right = s32(s32(s32(inner * H2) + 8192n) >> 14n);
  v = s32(left * right);
  v = s32(v - s32(s32(s32(s32(s32(v >> 15n) * s32(v >> 15n)) >> 7n) * H1) >> 4n));
  if (v < 0n) v = 0n;
  if (v > 419430400n) v = 419430400n;
  return v >> 12n;
}

// ---- Datasheet section 8.1 double-precision formulas, for a cross-check ----
function floatT(adcT: number, c: Bme280Calibration): { t: number; tFine: number } {
  const var1 = (adcT / 16384 - c.digT1 / 1024) * c.digT2;
  const var2 = (adcT / 131072 - c.digT1 / 8192) * (adcT / 131072 - c.digT1 / 8192) * c.digT3;
  return { t: (var1 + var2) / 5120, tFine: var1 + var2 };
}
function floatP(adcP: number, tFine: number, c: Bme280Calibration): number {
  let var1 = tFine / 2 - 64000;
  let var2 = (var1 * var1 * c.digP6) / 32768;
  var2 = var2 + var1 * c.digP5 * 2;
  var2 = var2 / 4 + c.digP4 * 65536;
  var1 = ((c.digP3 * var1 * var1) / 524288 + c.digP2 * var1) / 524288;
  var1 = (1 + var1 / 32768) * c.digP1;
  let p = 1048576 - adcP;
  p = ((p - var2 / 4096) * 6250) / var1;
  var1 = (c.digP9 * p * p) / 2147483648;
  var2 = (p * c.digP8) / 32768;
  return p + (var1 + var2 + c.digP7) / 16;
}
function floatH(adcH: number, tFine: number, c: Bme280Calibration): number {
  let h = tFine - 76800;
  h = (adcH - (c.digH4 * 64 + (c.digH5 / 16384) * h)) * ((c.digH2 / 65536) * (1 + (c.digH6 / 67108864) * h * (1 + (c.digH3 / 67108864) * h)));
  h = h * (1 - (c.digH1 * h) / 524288);
  return Math.min(100, Math.max(0, h));
}

/** Bosch BMP280 datasheet section 3.12 trimming, plus the humidity set from the brief. */
const EXAMPLE: Bme280Calibration = {
  digT1: 27504, digT2: 26435, digT3: -1000,
  digP1: 36477, digP2: -10685, digP3: 3024, digP4: 2855, digP5: 140,
  digP6: -7, digP7: 15500, digP8: -14600, digP9: 6000,
  digH1: 75, digH2: 362, digH3: 0, digH4: 324, digH5: 0, digH6: 30,
};

describe('BME280 compensation (datasheet integer formulas)', () => {
  it('reference implementation reproduces the worked example: t_fine 128422, T 2508, P 25767233', () => {
    const { t, tFine } = refT(519888, EXAMPLE);
    assert.equal(tFine, 128422n);
    assert.equal(t, 2508n);
    assert.equal(refP(415148, tFine, EXAMPLE), 25767233n);
  });

  it('temperature: adc_T 519888 -> t_fine 128422, 2508 (25.08 °C)', () => {
    const tFine = bme280TFine(519888, EXAMPLE);
    assert.equal(tFine, 128422);
    assert.equal(bme280CompensateT(tFine), 2508);
    assert.ok(Math.abs(floatT(519888, EXAMPLE).t - 25.08) < 0.005);
  });

  it('pressure: adc_P 415148 -> 25767233 Q24.8 = 100653.254 Pa; float formula 100653.27 Pa', () => {
    const p = bme280CompensateP(415148, 128422, EXAMPLE);
    assert.equal(p, 25767233);
    assert.ok(Math.abs(p / 256 - 100653.25390625) < 1e-9);
    const pf = floatP(415148, floatT(519888, EXAMPLE).tFine, EXAMPLE);
    assert.ok(Math.abs(pf - 100653.27) < 0.005, `float ${pf}`);
    assert.equal(Math.round(pf * 256), 25767236); // the often-quoted figure is the float result
    assert.ok(Math.abs(p / 256 - pf) < 0.02);
  });

  it('humidity: adc_H 30000 at t_fine 128422 -> 53206 Q22.10 = 51.959 %RH (reference), float 51.960', () => {
    assert.equal(refH(30000, 128422n, EXAMPLE), 53206n);
    assert.equal(bme280CompensateH(30000, 128422, EXAMPLE), 53206);
    assert.ok(Math.abs(53206 / 1024 - floatH(30000, 128422, EXAMPLE)) < 0.01);
  });

  it('humidity clamps to 0 and 100 %RH', () => {
    assert.equal(bme280CompensateH(0, 128422, EXAMPLE), 0);
    assert.equal(bme280CompensateH(0xffff, 128422, EXAMPLE), 102400); // 419430400 >> 12 = 100 %RH
  });

  it('pressure returns 0 where the datasheet avoids division by zero (dig_P1 = 0)', () => {
    assert.equal(bme280CompensateP(415148, 128422, { ...EXAMPLE, digP1: 0 }), 0);
  });

  it('matches the reference bit for bit across the raw ranges and several calibrations', () => {
    const calibrations: Bme280Calibration[] = [
      EXAMPLE,
      { ...EXAMPLE, digT1: 28485, digT2: 26735, digT3: 50, digP1: 39064, digP2: -10858, digP4: 7427, digP5: -53, digP7: 9900, digP8: -10230, digP9: 4285 },
      { ...EXAMPLE, digH1: 0, digH2: 350, digH3: 0, digH4: 333, digH5: 50, digH6: 30 },
      { ...EXAMPLE, digH2: -400, digH3: 255, digH4: -2048, digH5: 2047, digH6: -128, digH1: 255 },
    ];
    let seed = 7;
    const rand = (n: number) => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % n;
    for (const cal of calibrations) {
      for (let i = 0; i < 2000; i++) {
        const adcT = 0x50000 + rand(0x60000);
        const adcP = 0x10000 + rand(0xe0000);
        const adcH = rand(0x10000);
        const ref = refT(adcT, cal);
        const tFine = bme280TFine(adcT, cal);
        assert.equal(BigInt(tFine), ref.tFine, `tFine adcT=${adcT}`);
        assert.equal(BigInt(bme280CompensateT(tFine)), ref.t);
        assert.equal(BigInt(bme280CompensateP(adcP, tFine, cal)), refP(adcP, ref.tFine, cal), `P adcP=${adcP}`);
        assert.equal(BigInt(bme280CompensateH(adcH, tFine, cal)), refH(adcH, ref.tFine, cal), `H adcH=${adcH}`);
      }
    }
  });
});

describe('BME280 calibration parsing (table 16)', () => {
  it('reads little-endian words and the dig_H4/dig_H5 nibble packing with sign', () => {
    const low = new Uint8Array(26);
    low.set([0x70, 0x6b], 0); // dig_T1 = 0x6B70 = 27504
    low.set([0x43, 0x67], 2); // dig_T2 = 0x6743 = 26435
    low.set([0x18, 0xfc], 4); // dig_T3 = 0xFC18 = -1000
    low.set([0x7d, 0x8e], 6); // dig_P1 = 0x8E7D = 36477
    low.set([0x43, 0xd6], 8); // dig_P2 = 0xD643 = -10685
    low.set([0x98, 0x3a], 22); // dig_P9 = 0x3A98 = 15000
    low[25] = 0x4b; // dig_H1 = 75
    // 0xE1..0xE7: dig_H2 = 0x016A = 362, dig_H3 = 0x00,
    // 0xE4 = 0xFE, 0xE5 = 0x3A, 0xE6 = 0x81, 0xE7 = 0xE2:
    //   dig_H4 = 0xFE << 4 | 0xA  = 0xFEA as signed 12-bit = -22
    //   dig_H5 = 0x81 << 4 | 0x3  = 0x813 as signed 12-bit = 2067 - 4096 = -2029
    //   dig_H6 = 0xE2 as int8 = -30
    const high = new Uint8Array([0x6a, 0x01, 0x00, 0xfe, 0x3a, 0x81, 0xe2]);
    const c = parseBme280Calibration(low, high);
    assert.equal(c.digT1, 27504);
    assert.equal(c.digT2, 26435);
    assert.equal(c.digT3, -1000);
    assert.equal(c.digP1, 36477);
    assert.equal(c.digP2, -10685);
    assert.equal(c.digP9, 15000);
    assert.equal(c.digH1, 75);
    assert.equal(c.digH2, 362);
    assert.equal(c.digH3, 0);
    assert.equal(c.digH4, -22);
    assert.equal(c.digH5, -2029);
    assert.equal(c.digH6, -30);
  });

  it('dig_H4 = 324 packs as 0xE4 = 0x14, 0xE5 low nibble 4', () => {
    const c = parseBme280Calibration(new Uint8Array(26), new Uint8Array([0, 0, 0, 0x14, 0x04, 0x00, 0x1e]));
    assert.equal(c.digH4, 324);
    assert.equal(c.digH5, 0);
    assert.equal(c.digH6, 30);
  });
});

/** Records every write on its way to the part. */
class Spy implements SimI2CDevice {
  writes: number[][] = [];
  constructor(readonly inner: SimI2CDevice) {}
  write(bytes: Uint8Array, stop: boolean): void {
    this.writes.push([...bytes]);
    this.inner.write(bytes, stop);
  }
  read(length: number, stop: boolean): Uint8Array {
    return this.inner.read(length, stop);
  }
}

function rig(options: { enforceTiming?: boolean; chipId?: number; calibration?: Bme280Calibration } = {}) {
  const clock = new ManualClock(0);
  const env = new Environment(clock, {
    temperature: { base: 18, amplitude: 12, periodMs: 7_200_000 },
    humidity: { base: 55, amplitude: 30, periodMs: 5_000_000 },
    pressure: { base: 98_000, amplitude: 4_000, periodMs: 9_000_000 },
  });
  const bus = new SimI2CBus();
  const part = new SimBme280(env, options);
  const spy = new Spy(part);
  bus.attach(part.address, spy);
  const errors: Error[] = [];
  return { clock, env, bus, part, spy, io: createSimI2C(bus), errors, onError: (e: Error) => errors.push(e) };
}

function assertMatches(sample: ReturnType<Bme280['sample']>, env: Environment): void {
  assert.ok(sample, 'expected a sample');
  // Output resolution: T 0.01 °C; P about 0.2 Pa per adc_P LSB plus t_fine quantisation; H 1/1024 %RH.
  assert.ok(Math.abs(sample.thermometer.temperature - env.temperature()) <= 0.01, `T ${sample.thermometer.temperature} vs ${env.temperature()}`);
  assert.ok(Math.abs(sample.barometer!.pressure - env.pressure()) <= 1, `P ${sample.barometer!.pressure} vs ${env.pressure()}`);
  assert.ok(Math.abs(sample.hygrometer!.humidity - env.humidity()) <= 0.02, `H ${sample.hygrometer!.humidity} vs ${env.humidity()}`);
}

describe('BME280 driver on the simulated part', () => {
  it('spreads the chip defaults (0x76, 100 kHz) under the caller options', () => {
    const r = rig();
    new Bme280({ sensor: { io: r.io, port: 0 } });
    assert.deepEqual(r.bus.opened[0], { address: 0x76, hz: 100_000, port: 0 });
  });

  it('reads the calibration the part holds', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io } });
    assert.deepEqual({ ...b.calibration }, { ...DEFAULT_CALIBRATION });
    const odd = { ...EXAMPLE, digH4: -22, digH5: -2029, digH6: -30, digH2: -5 };
    const r2 = rig({ calibration: odd });
    assert.deepEqual({ ...new Bme280({ sensor: { io: r2.io } }).calibration }, odd);
  });

  it('chip id 0x58 throws a clear error', () => {
    const r = rig({ chipId: 0x58 });
    assert.throws(() => new Bme280({ sensor: { io: r.io } }), { message: 'BME280 not found: chip id 0x58 (BMP280?)' });
    const r2 = rig({ chipId: 0x33 });
    assert.throws(() => new Bme280({ sensor: { io: r2.io } }), { message: 'BME280 not found: chip id 0x33' });
  });

  it('soft-resets, then triggers forced mode writing ctrl_hum before ctrl_meas', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io } });
    assert.ok(r.spy.writes.some((w) => w[0] === 0xe0 && w[1] === 0xb6), 'soft reset');
    r.spy.writes = [];
    b.sample();
    // ctrl_hum = 001 (x1); ctrl_meas = osrs_t 001, osrs_p 001, mode 01 = 0x25.
    assert.deepEqual(r.spy.writes[0], [0xf2, 0x01, 0xf4, 0x25]);
    assert.ok(r.spy.writes.some((w) => w.length === 1 && w[0] === 0xf3), 'status polled');
    assert.deepEqual(r.spy.writes.at(-1), [0xf7], 'burst read from 0xF7');
    assert.equal(r.part.register(0xf4) & 0x03, 0, 'back to sleep after forced conversion');
  });

  it('tracks the environment over simulated time within resolution', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io }, onError: r.onError });
    for (let i = 0; i < 60; i++) {
      assertMatches(b.sample(), r.env);
      r.clock.advance(151_000);
    }
    assert.equal(r.errors.length, 0);
  });

  it('oversampling settings reach the registers; a skipped humidity drops the hygrometer', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io }, temperatureOversampling: 2, pressureOversampling: 16, humidityOversampling: 0 });
    r.spy.writes = [];
    const sample = b.sample()!;
    assert.deepEqual(r.spy.writes[0], [0xf2, 0x00, 0xf4, (2 << 5) | (5 << 2) | 1]);
    assert.equal(sample.hygrometer, undefined);
    assert.ok(Math.abs(sample.barometer!.pressure - r.env.pressure()) <= 1);
    assert.throws(() => b.configure({ temperatureOversampling: 0 }), RangeError);
    assert.throws(() => b.configure({ pressureOversampling: 3 as 2 }), RangeError);
  });

  it('waits through the injected delay and polls status when the part enforces timing', () => {
    const r = rig({ enforceTiming: true });
    const waits: number[] = [];
    const b = new Bme280({ sensor: { io: r.io, delay: (ms) => { waits.push(ms); r.clock.advance(ms); } }, onError: r.onError });
    assertMatches(b.sample(), r.env);
    assert.ok(waits.includes(10), `x1/x1/x1 max measurement time 9.3 ms -> 10, waits ${waits}`);
    assert.equal(r.errors.length, 0);
  });

  it('without a delay a part that is still measuring gives onError and undefined (bounded polls)', () => {
    const r = rig({ enforceTiming: true });
    let waiting = true; // the delay works during construction (reset), then stops waiting
    const b = new Bme280({ sensor: { io: r.io, delay: (ms) => waiting && r.clock.advance(ms) }, onError: r.onError });
    waiting = false;
    assert.equal(b.sample(), undefined);
    assert.match(r.errors[0].message, /did not complete/);
  });

  it('a skipped (0x80000) pressure is retried once, twice gives onError and undefined', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io }, onError: r.onError });
    r.part.faults.outOfRange = 1;
    assertMatches(b.sample(), r.env);
    assert.equal(r.errors.length, 0);
    r.part.faults.outOfRange = 2;
    assert.equal(b.sample(), undefined);
    assert.match(r.errors[0].message, /pressure raw value out of range \(0x80000\)/);
  });

  it('NACKs and a stuck bus give onError and undefined, never a value', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io }, onError: r.onError });
    r.part.faults.nack = 1;
    assertMatches(b.sample(), r.env);
    r.part.faults.nack = Infinity;
    assert.equal(b.sample(), undefined);
    assert.match(r.errors[0].message, /NACK from 0x76/);
    r.part.faults.nack = 0;
    r.bus.stuck = true;
    assert.equal(b.sample(), undefined);
    assert.match(r.errors[1].message, /bus stuck/);
    r.bus.stuck = false;
    assertMatches(b.sample(), r.env);
  });

  it('under random faults every sample is either undefined or correct', () => {
    const r = rig();
    const b = new Bme280({ sensor: { io: r.io }, onError: r.onError });
    let seed = 99;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let good = 0;
    for (let i = 0; i < 200; i++) {
      r.part.faults.nack = rand() < 0.2 ? Math.floor(rand() * 4) : 0;
      r.part.faults.outOfRange = rand() < 0.2 ? Math.floor(rand() * 3) : 0;
      r.bus.stuck = rand() < 0.05;
      const sample = b.sample();
      if (sample) {
        assertMatches(sample, r.env);
        good++;
      }
      r.clock.advance(45_000);
    }
    assert.ok(good > 100 && r.errors.length > 0, `good ${good}, errors ${r.errors.length}`);
  });
});
