/*
 * The simulator's default board through the real drivers: telemetry keys and units, and faults
 * leaving keys out rather than reporting bogus values.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { createSimBoard } from '../../tools/sim/board';
import type { Log } from '../../src/platform/types';

function log(): Log & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
}

describe('board sensors -> ThingsBoard telemetry keys', () => {
  it('reports temperature (°C), humidity (%RH), pressure (hPa) and batteryVoltage (V) from the environment', () => {
    const clock = new ManualClock(0);
    const board = createSimBoard(clock, log(), {
      temperature: { base: 18.5 },
      humidity: { base: 62 },
      pressure: { base: 99_000 },
      battery: { base: 3.7 },
    });
    const v = board.source.read()!;
    assert.deepEqual(Object.keys(v).sort(), ['batteryVoltage', 'humidity', 'pressure', 'temperature']);
    assert.ok(Math.abs((v.temperature as number) - 18.5) < 0.05, `temperature ${v.temperature}`);
    assert.ok(Math.abs((v.humidity as number) - 62) < 0.1, `humidity ${v.humidity}`);
    assert.ok(Math.abs((v.pressure as number) - 990) < 0.05, `pressure ${v.pressure} hPa`);
    assert.ok(Math.abs((v.batteryVoltage as number) - 3.7) < 0.01, `battery ${v.batteryVoltage}`);
  });

  it('follows the environment over simulated time', () => {
    const clock = new ManualClock(0);
    const board = createSimBoard(clock, log(), { temperature: { base: 20, amplitude: 5, periodMs: 4000 } });
    const a = board.source.read()!.temperature as number;
    clock.advance(1000);
    const b = board.source.read()!.temperature as number;
    assert.ok(Math.abs(a - 20) < 0.05 && Math.abs(b - 25) < 0.05, `${a} then ${b}`);
  });

  it('leaves out the keys of a part that keeps failing (NACK), and logs why', () => {
    const clock = new ManualClock(0);
    const l = log();
    const board = createSimBoard(clock, l);
    board.sht3x.faults.nack = Infinity;
    const v = board.source.read()!;
    assert.equal(v.temperature, undefined, 'no temperature from BME280 in place of a failed SHT3x');
    assert.equal(v.humidity, undefined);
    assert.equal(typeof v.pressure, 'number');
    assert.ok(l.warnings.some((w) => /NACK/.test(w)), l.warnings.join('; '));
  });

  it('a single bad CRC is retried and the value is still right', () => {
    const clock = new ManualClock(0);
    const board = createSimBoard(clock, log(), { temperature: { base: 21 } });
    board.sht3x.faults.badCrc = 1;
    const v = board.source.read()!;
    assert.ok(Math.abs((v.temperature as number) - 21) < 0.05);
  });

  it('a stuck bus yields no I2C values but still the battery', () => {
    const clock = new ManualClock(0);
    const board = createSimBoard(clock, log());
    board.bus.stuck = true;
    const v = board.source.read()!;
    assert.deepEqual(Object.keys(v), ['batteryVoltage']);
  });
});
