/*
 * Sensors -> ThingsBoard telemetry keys. The drivers return ECMA-419 samples and know nothing
 * of ThingsBoard; this is the one place that names keys and units:
 *   temperature (°C) and humidity (%RH) from the SHT3x (from the BME280 when no SHT3x is fitted),
 *   pressure (hPa, what ThingsBoard dashboards expect; ECMA-419 gives Pa) from the BME280,
 *   batteryVoltage (V) from the analog input.
 * A failed sample leaves its keys out of the report; it is never reported as a bogus value.
 */
import type { TelemetrySource } from './app';
import type { TbObject } from '../thingsboard/payload';

interface Ecma419Sample {
  thermometer?: { temperature: number };
  hygrometer?: { humidity: number };
  barometer?: { pressure: number };
  battery?: { voltage: number };
}

export interface SampledSensor {
  sample(): Ecma419Sample | undefined;
}

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/** One source over the board's sensors; any of them may be absent. */
export function boardSensors(parts: { sht3x?: SampledSensor; bme280?: SampledSensor; battery?: SampledSensor }): TelemetrySource {
  return {
    name: 'board',
    read(): TbObject | undefined {
      const out: TbObject = {};
      const sht = parts.sht3x?.sample();
      const bme = parts.bme280?.sample();
      const bat = parts.battery?.sample();
      const t = sht?.thermometer ?? (parts.sht3x ? undefined : bme?.thermometer);
      const h = sht?.hygrometer ?? (parts.sht3x ? undefined : bme?.hygrometer);
      if (t) out.temperature = round(t.temperature, 2);
      if (h) out.humidity = round(h.humidity, 2);
      if (bme?.barometer) out.pressure = round(bme.barometer.pressure / 100, 2);
      if (bat?.battery) out.batteryVoltage = round(bat.battery.voltage, 3);
      return Object.keys(out).length ? out : undefined;
    },
  };
}
