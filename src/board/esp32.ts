/*
 * `board/sensors` on ESP32: the sensors wired as config.i2c / config.sht3x / config.bme280 / config.battery
 * say (hardware/boards/esp32-devkitc.json), through ECMA-419 embedded:io. A part that fails to open
 * (absent, wrong chip id) is left out with the reason logged; the others still report.
 */
import I2C from 'embedded:io/i2c';
import Analog from 'embedded:io/analog';
import Timer from 'timer';
import { boardSensors } from '../device/sources';
import type { SampledSensor } from '../device/sources';
import { Sht3x } from '../sensors/sht3x';
import { Bme280 } from '../sensors/bme280';
import { Battery } from '../sensors/battery';
import type { AnalogIoConstructor, I2CIoConstructor } from '../platform/types';
import type { OpenBoard } from './types';

export const openBoard: OpenBoard = (cfg, log) => {
  const open = <T>(name: string, make: () => T): T | undefined => {
    try {
      return make();
    } catch (e) {
      log.warn(`${name} not available: ${(e as Error).message}`);
      return undefined;
    }
  };
  const onError = (e: Error) => log.warn(`sensor: ${e.message}`);
  const parts: { sht3x?: SampledSensor; bme280?: SampledSensor; battery?: SampledSensor } = {};
  const fitted: string[] = [];
  if (cfg.i2c) {
    const bus = { io: I2C as unknown as I2CIoConstructor, ...cfg.i2c, delay: (ms: number) => Timer.delay(ms) };
    if (cfg.sht3x) parts.sht3x = open('SHT3x', () => new Sht3x({ sensor: { ...bus, ...cfg.sht3x }, onError }));
    if (cfg.bme280) parts.bme280 = open('BME280', () => new Bme280({ sensor: { ...bus, ...cfg.bme280 }, onError }));
  }
  if (cfg.battery) {
    const b = cfg.battery;
    parts.battery = open('battery', () => new Battery({ sensor: { io: Analog as unknown as AnalogIoConstructor, pin: b.pin }, divider: b.divider, vref: b.vref, onError }));
  }
  if (parts.sht3x) fitted.push('SHT3x');
  if (parts.bme280) fitted.push('BME280');
  if (parts.battery) fitted.push('battery');
  return {
    description: `esp32: ${fitted.length ? fitted.join(', ') : 'no sensor answered'}`,
    sources: [boardSensors(parts)],
  };
};
