/* Simulated telemetry sources for the host (replaced by the I2C sensor parts when wired). */
import type { TelemetrySource } from '../../src/device/app';
import type { Clock } from '../../src/platform/types';

/** A smooth daily-ish temperature/humidity curve over the simulated clock. */
export function syntheticClimate(clock: Clock): TelemetrySource {
  return {
    name: 'synthetic',
    read() {
      const t = clock.now() / 1000;
      return {
        temperature: Math.round((21 + 3 * Math.sin((2 * Math.PI * t) / 3600)) * 100) / 100,
        humidity: Math.round((45 + 10 * Math.cos((2 * Math.PI * t) / 5400)) * 10) / 10,
      };
    },
  };
}
