/*
 * The simulator's default board: an ESP32-DevKitC wired as hardware/boards/esp32-devkitc.json,
 * with simulated SHT3x and BME280 on the I2C bus and a battery divider on the ADC, all reading
 * one simulated environment on the device's clock. The drivers run unchanged.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TelemetrySource } from '../../src/device/app';
import { boardSensors } from '../../src/device/sources';
import type { Clock, Log } from '../../src/platform/types';
import { Battery } from '../../src/sensors/battery';
import { Bme280 } from '../../src/sensors/bme280';
import { Sht3x } from '../../src/sensors/sht3x';
import { createSimAnalog, createSimI2C, Environment, SimAnalog, SimBme280, SimI2CBus, SimSht3x } from './i2c';
import type { EnvironmentOptions } from './i2c';

interface BoardFile {
  i2c: { data: number; clock: number; hz: number; devices: { driver: string; address: number }[] }[];
  analog: { pin: number; resolution: number; vref: number; divider: number }[];
}

export interface SimBoard {
  env: Environment;
  bus: SimI2CBus;
  sht3x: SimSht3x;
  bme280: SimBme280;
  adc: SimAnalog;
  source: TelemetrySource;
}

export function loadBoard(name = 'esp32-devkitc'): BoardFile {
  return JSON.parse(readFileSync(join(__dirname, '../../hardware/boards', `${name}.json`), 'utf8')) as BoardFile;
}

export function createSimBoard(clock: Clock, log: Log, environment: EnvironmentOptions = {}): SimBoard {
  const board = loadBoard();
  const i2c = board.i2c[0]!;
  const addr = (driver: string) => i2c.devices.find((d) => d.driver === driver)!.address;
  const battery = board.analog[0]!;
  const env = new Environment(clock, environment);
  const bus = new SimI2CBus();
  const sht3x = new SimSht3x(env, { address: addr('sensors/sht3x') });
  const bme280 = new SimBme280(env, { address: addr('sensors/bme280') });
  bus.attach(addr('sensors/sht3x'), sht3x);
  bus.attach(addr('sensors/bme280'), bme280);
  const adc = new SimAnalog({ resolution: battery.resolution, vref: battery.vref });
  adc.connect(battery.pin, () => env.value('battery') / battery.divider);
  const io = createSimI2C(bus);
  const onError = (e: Error) => log.warn(`sensor: ${e.message}`);
  const wiring = { io, data: i2c.data, clock: i2c.clock, hz: i2c.hz };
  const source = boardSensors({
    sht3x: new Sht3x({ sensor: { ...wiring, address: addr('sensors/sht3x') }, onError }),
    bme280: new Bme280({ sensor: { ...wiring, address: addr('sensors/bme280') }, onError }),
    battery: new Battery({ sensor: { io: createSimAnalog(adc), pin: battery.pin }, divider: battery.divider, vref: battery.vref, onError }),
  });
  return { env, bus, sht3x, bme280, adc, source };
}
