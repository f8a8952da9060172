/*
 * SHT3x: CRC and conversion against the Sensirion SHT3x-DIS datasheet, then the driver end to end
 * against the simulated part, with faults. Expected numbers are worked out by hand from the
 * datasheet formulas, not taken from the driver.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { Environment, SimI2CBus, SimSht3x, createSimI2C } from '../../tools/sim/i2c';
import { Sht3x, Sht3xStatus, crc8Sht3x, sht3xHumidity, sht3xTemperature } from '../../src/sensors/sht3x';

/** Conversion resolution: one raw LSB. */
const T_LSB = 175 / 65535;
const RH_LSB = 100 / 65535;

describe('SHT3x datasheet values', () => {
  it('CRC-8 of 0xBEEF is 0x92 (datasheet section 4.12, CRC properties example)', () => {
    assert.equal(crc8Sht3x([0xbe, 0xef]), 0x92);
  });

  it('CRC-8 of 0x0000 is 0x81 (init 0xFF shifted through poly 0x31)', () => {
    assert.equal(crc8Sht3x(new Uint8Array([0x00, 0x00])), 0x81);
  });

  it('CRC covers the given range of a 6-byte measurement', () => {
    const m = [0xbe, 0xef, 0x92, 0x00, 0x00, 0x81];
    assert.equal(crc8Sht3x(m, 0, 2), 0x92);
    assert.equal(crc8Sht3x(m, 3, 5), 0x81);
  });

  it('temperature: T = -45 + 175 * S / 65535', () => {
    assert.equal(sht3xTemperature(0x0000), -45);
    assert.equal(sht3xTemperature(0xffff), 130);
    // 0x6666 = 26214 = 0.4 * 65535 exactly: -45 + 70 = 25 °C.
    assert.ok(Math.abs(sht3xTemperature(0x6666) - 25) < 1e-12);
    // 0x8000: -45 + 175 * 32768 / 65535 = 42.5013352...
    assert.ok(Math.abs(sht3xTemperature(0x8000) - 42.50133516) < 1e-8);
  });

  it('humidity: RH = 100 * S / 65535, within 0..100', () => {
    assert.equal(sht3xHumidity(0x0000), 0);
    assert.equal(sht3xHumidity(0xffff), 100);
    // 0x8000: 3276800 / 65535 = 50.00076295...
    assert.ok(Math.abs(sht3xHumidity(0x8000) - 50.00076295) < 1e-8);
  });
});

function rig(options: { enforceTiming?: boolean; address?: number } = {}) {
  const clock = new ManualClock(0);
  const env = new Environment(clock, {
    temperature: { base: 21.5, amplitude: 5, periodMs: 3_600_000 },
    humidity: { base: 48, amplitude: 20, periodMs: 5_400_000 },
  });
  const bus = new SimI2CBus();
  const part = new SimSht3x(env, options);
  bus.attach(part.address, part);
  const io = createSimI2C(bus);
  const errors: Error[] = [];
  return { clock, env, bus, part, io, errors, onError: (e: Error) => errors.push(e) };
}

function assertMatches(sample: ReturnType<Sht3x['sample']>, env: Environment): void {
  assert.ok(sample, 'expected a sample');
  assert.ok(Math.abs(sample.thermometer.temperature - env.temperature()) <= T_LSB, `T ${sample.thermometer.temperature} vs ${env.temperature()}`);
  assert.ok(Math.abs(sample.hygrometer.humidity - env.humidity()) <= RH_LSB, `RH ${sample.hygrometer.humidity} vs ${env.humidity()}`);
}

describe('SHT3x driver on the simulated part', () => {
  it('spreads the chip defaults (0x44, 100 kHz) under the caller options', () => {
    const r = rig();
    new Sht3x({ sensor: { io: r.io, data: 21, clock: 22 } });
    assert.deepEqual(r.bus.opened[0], { address: 0x44, hz: 100_000, data: 21, clock: 22 });

    const r2 = rig({ address: 0x45 });
    const s = new Sht3x({ sensor: { io: r2.io, address: 0x45, hz: 400_000 } });
    assert.equal(r2.bus.opened[0].address, 0x45);
    assert.equal(r2.bus.opened[0].hz, 400_000);
    assertMatches(s.sample(), r2.env);
  });

  it('soft-resets on construction and measures with 0x2400 (high repeatability, no stretching)', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io } });
    s.sample();
    assert.deepEqual(r.part.commands, [0x30a2, 0x2400]);
    s.configure({ repeatability: 'medium' });
    s.sample();
    assert.equal(r.part.commands.at(-1), 0x240b);
  });

  it('tracks the environment over simulated time within one LSB', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    for (let i = 0; i < 50; i++) {
      assertMatches(s.sample(), r.env);
      r.clock.advance(137_000);
    }
    assert.equal(r.errors.length, 0);
  });

  it('returns the ECMA-419 shape', () => {
    const r = rig();
    const sample = new Sht3x({ sensor: { io: r.io } }).sample();
    assert.deepEqual(Object.keys(sample!).sort(), ['hygrometer', 'thermometer']);
    assert.deepEqual(Object.keys(sample!.thermometer), ['temperature']);
    assert.deepEqual(Object.keys(sample!.hygrometer), ['humidity']);
  });

  it('waits through the injected delay when the part enforces conversion time', () => {
    const r = rig({ enforceTiming: true });
    const waits: number[] = [];
    const s = new Sht3x({ sensor: { io: r.io, delay: (ms) => { waits.push(ms); r.clock.advance(ms); } }, onError: r.onError });
    assertMatches(s.sample(), r.env);
    assert.ok(waits.includes(16), 'waits >= 15 ms for high repeatability');
    assert.equal(r.errors.length, 0);
  });

  it('without a delay, a part still converting NACKs: undefined + onError, never a value', () => {
    const r = rig({ enforceTiming: true });
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    assert.equal(s.sample(), undefined);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0].message, /NACK/);
  });

  it('one NACK is retried and gives a correct sample', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    r.part.faults.nack = 1;
    assertMatches(s.sample(), r.env);
    assert.equal(r.errors.length, 0);
  });

  it('two NACKs: onError and undefined', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    r.part.faults.nack = 2;
    assert.equal(s.sample(), undefined);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0].message, /NACK from 0x44/);
    assertMatches(s.sample(), r.env); // recovers
  });

  it('one bad CRC is retried; two give onError and undefined', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    r.part.faults.badCrc = 1;
    assertMatches(s.sample(), r.env);
    assert.equal(r.errors.length, 0);
    r.part.faults.badCrc = 2;
    assert.equal(s.sample(), undefined);
    assert.match(r.errors[0].message, /CRC mismatch/);
  });

  it('a stuck bus gives onError "bus stuck" and undefined, and recovers when released', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    r.bus.stuck = true;
    assert.equal(s.sample(), undefined);
    assert.match(r.errors[0].message, /bus stuck/);
    r.bus.stuck = false;
    assertMatches(s.sample(), r.env);
  });

  it('under random faults every sample is either undefined or correct', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io }, onError: r.onError });
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let good = 0;
    for (let i = 0; i < 300; i++) {
      r.part.faults.nack = rand() < 0.2 ? Math.floor(rand() * 3) : 0;
      r.part.faults.badCrc = rand() < 0.2 ? Math.floor(rand() * 3) : 0;
      r.bus.stuck = rand() < 0.05;
      const sample = s.sample();
      if (sample) {
        assertMatches(sample, r.env);
        good++;
      }
      r.clock.advance(60_000);
    }
    assert.ok(good > 150 && r.errors.length > 0, `good ${good}, errors ${r.errors.length}`);
  });

  it('an absent part throws from the constructor', () => {
    const r = rig();
    assert.throws(() => new Sht3x({ sensor: { io: r.io, address: 0x45 } }), /NACK from 0x45/);
  });

  it('status register: reset flag, clear status, heater on/off', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io } });
    assert.ok(s.readStatus() & Sht3xStatus.RESET_DETECTED);
    s.clearStatus();
    assert.equal(s.readStatus() & Sht3xStatus.RESET_DETECTED, 0);
    s.configure({ heater: true });
    assert.ok(r.part.heater);
    assert.ok(s.readStatus() & Sht3xStatus.HEATER_ON);
    s.configure({ heater: false });
    assert.equal(s.readStatus() & Sht3xStatus.HEATER_ON, 0);
    s.configure({ heater: true });
    s.reset(); // soft reset turns the heater off
    assert.equal(r.part.heater, false);
  });

  it('a corrupted status word throws rather than returning it', () => {
    const r = rig();
    const s = new Sht3x({ sensor: { io: r.io } });
    r.part.faults.badCrc = 1;
    assert.throws(() => s.readStatus(), /status CRC mismatch/);
  });
});
