/*
 * `board/sensors` on the Moddable Linux host (mcconfig -p lin), which has no I2C and no ADC. The real
 * drivers (SHT3x, battery) run against the simulator's stand-in parts (tools/sim/i2c: a simulated
 * SHT3x on a simulated bus, a simulated ADC), so the same code paths as on a board produce the
 * telemetry. The values are simulated, not measured, and the boot log says so.
 */
import { SimI2CBus, createSimI2C } from 'sim/i2c/bus';
import { SimSht3x } from 'sim/i2c/sht3x';
import { SimAnalog, createSimAnalog } from 'sim/i2c/analog';
import { Environment } from 'sim/i2c/environment';
import { boardSensors } from '../device/sources';
import { Sht3x } from '../sensors/sht3x';
import { Battery } from '../sensors/battery';
import type { OpenBoard } from './types';

const SHT3X = 0x44;
const BATTERY_PIN = 35;

export const openBoard: OpenBoard = (cfg, log, clock) => {
  const env = new Environment(clock, {});
  const bus = new SimI2CBus();
  const sht = new SimSht3x(env, { address: cfg.sht3x?.address ?? SHT3X });
  bus.attach(cfg.sht3x?.address ?? SHT3X, sht);
  const battery = cfg.battery ?? { pin: BATTERY_PIN, divider: 2, vref: 3.3 };
  const adc = new SimAnalog({ resolution: 12, vref: battery.vref });
  adc.connect(battery.pin, () => env.value('battery') / battery.divider);
  const onError = (e: Error) => log.warn(`sensor: ${e.message}`);
  const wiring = { io: createSimI2C(bus), data: 0, clock: 0, hz: 100000 };
  return {
    description: 'lin: no I2C or ADC on the Moddable Linux host; SHT3x and battery are simulated stand-ins (tools/sim/i2c) read by the real drivers, not measurements',
    sources: [
      boardSensors({
        sht3x: new Sht3x({ sensor: { ...wiring, address: cfg.sht3x?.address ?? SHT3X }, onError }),
        battery: new Battery({ sensor: { io: createSimAnalog(adc), pin: battery.pin }, divider: battery.divider, vref: battery.vref, onError }),
      }),
    ],
  };
};
