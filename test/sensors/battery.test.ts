/* Battery voltage through a divider into an ECMA-419 Analog IO, against hand-computed values. */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { Environment, SimAnalog, createSimAnalog } from '../../tools/sim/i2c';
import { Battery, batteryVolts } from '../../src/sensors/battery';

describe('battery voltage', () => {
  it('volts = raw / (2^resolution - 1) * vref * divider', () => {
    assert.equal(batteryVolts(4095, 12, 3.3, 2), 6.6);
    assert.equal(batteryVolts(0, 12, 3.3, 2), 0);
    // 2048 / 4095 * 3.3 * 2 = 13516.8 / 4095 = 3.30080586...
    assert.ok(Math.abs(batteryVolts(2048, 12, 3.3, 2) - 3.30080586) < 1e-8);
    // 10-bit nRF-style: 512 / 1023 * 3.6 * 1.5 = 2.70263929...
    assert.ok(Math.abs(batteryVolts(512, 10, 3.6, 1.5) - 2.70263929) < 1e-8);
  });

  function rig(volts = 3.9) {
    const clock = new ManualClock(0);
    const env = new Environment(clock, { battery: { base: volts, amplitude: 0.2, periodMs: 1_000_000 } });
    const adc = new SimAnalog({ resolution: 12, vref: 3.3 });
    adc.connect(35, () => env.batteryVoltage() / 2); // two equal resistors
    const errors: Error[] = [];
    return { clock, env, adc, io: createSimAnalog(adc), errors, onError: (e: Error) => errors.push(e) };
  }

  it('reads the simulated battery through the divider within one LSB', () => {
    const r = rig();
    const battery = new Battery({ sensor: { io: r.io, pin: 35 }, divider: 2, vref: 3.3, onError: r.onError });
    const lsb = (3.3 * 2) / 4095;
    for (let i = 0; i < 20; i++) {
      const sample = battery.sample();
      assert.ok(sample);
      assert.deepEqual(Object.keys(sample), ['battery']);
      assert.ok(Math.abs(sample.battery.voltage - r.env.batteryVoltage()) <= lsb, `${sample.battery.voltage} vs ${r.env.batteryVoltage()}`);
      r.clock.advance(77_777);
    }
    assert.equal(r.errors.length, 0);
  });

  it('a failed ADC read gives onError and undefined', () => {
    const r = rig();
    const battery = new Battery({ sensor: { io: r.io, pin: 35 }, onError: r.onError });
    r.adc.failReads = 1;
    assert.equal(battery.sample(), undefined);
    assert.match(r.errors[0].message, /analog read failed/);
    assert.ok(battery.sample());
  });

  it('rejects a divider below 1 and a non-positive vref', () => {
    const r = rig();
    assert.throws(() => new Battery({ sensor: { io: r.io, pin: 35 }, divider: 0.5 }), RangeError);
    assert.throws(() => new Battery({ sensor: { io: r.io, pin: 35 }, vref: 0 }), RangeError);
    assert.throws(() => new Battery({ sensor: { io: r.io, pin: 34 } }), /invalid pin 34/);
  });
});
