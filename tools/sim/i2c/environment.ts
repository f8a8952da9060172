/*
 * Simulated physical environment: each quantity is base + amplitude * sin(2π (t + phase) / period)
 * at the Clock's current time, so a virtual clock drives days of weather in milliseconds.
 */
import type { Clock } from '../../../src/platform/types';

export interface Wave {
  base: number;
  amplitude?: number;
  periodMs?: number;
  /** Offset in ms added to t. */
  phaseMs?: number;
}

export interface EnvironmentOptions {
  /** °C */
  temperature?: Wave;
  /** %RH */
  humidity?: Wave;
  /** Pa */
  pressure?: Wave;
  /** Battery terminal voltage, V */
  battery?: Wave;
}

const DAY_MS = 86_400_000;

const Defaults: Required<EnvironmentOptions> = Object.freeze({
  temperature: Object.freeze({ base: 22, amplitude: 4, periodMs: DAY_MS }),
  humidity: Object.freeze({ base: 50, amplitude: 15, periodMs: DAY_MS, phaseMs: DAY_MS / 2 }),
  pressure: Object.freeze({ base: 101_325, amplitude: 600, periodMs: 3 * DAY_MS }),
  battery: Object.freeze({ base: 3.9, amplitude: 0 }),
});

export type Quantity = keyof EnvironmentOptions;

export class Environment {
  readonly clock: Clock;
  #waves: Required<EnvironmentOptions>;

  constructor(clock: Clock, options: EnvironmentOptions = {}) {
    this.clock = clock;
    this.#waves = { ...Defaults, ...options };
  }

  set(quantity: Quantity, wave: Wave): void {
    this.#waves[quantity] = wave;
  }

  value(quantity: Quantity, atMs = this.clock.now()): number {
    const { base, amplitude = 0, periodMs = DAY_MS, phaseMs = 0 } = this.#waves[quantity];
    return base + amplitude * Math.sin((2 * Math.PI * (atMs + phaseMs)) / periodMs);
  }

  temperature(): number {
    return this.value('temperature');
  }

  humidity(): number {
    return Math.min(100, Math.max(0, this.value('humidity')));
  }

  pressure(): number {
    return this.value('pressure');
  }

  batteryVoltage(): number {
    return this.value('battery');
  }
}
