/*
 * The simulator's Sleep (src/platform/types.ts): waits on the clock and tells the energy meter
 * what the MCU is doing. 'light' semantics (execution resumes), charged as ESP32 deep sleep between
 * reports, light sleep while awake and waiting on the modem, and a fixed CPU time per wake.
 */
import type { Clock, Sleep } from '../../../src/platform/types';
import type { EnergyMeter } from './energy';

export class SimSleep implements Sleep {
  readonly mode = 'light' as const;
  #clock: Clock;
  #energy: EnergyMeter | undefined;

  constructor(clock: Clock, energy?: EnergyMeter) {
    this.#clock = clock;
    this.#energy = energy;
  }

  sleep(ms: number): Promise<void> {
    return this.#wait(ms, 'sleep');
  }

  idle(ms: number): Promise<void> {
    return this.#wait(ms, 'light');
  }

  #wait(ms: number, state: 'sleep' | 'light'): Promise<void> {
    const e = this.#energy;
    e?.mcu(state);
    return new Promise((resolve) =>
      this.#clock.setTimer(() => {
        // Awake: waiting on the modem in light sleep, plus the CPU work of a wake from deep sleep.
        e?.mcu('light');
        if (e && state === 'sleep') e.event(((e.mcuTable.ua.active - e.mcuTable.ua.light) * e.mcuTable.workMsPerWake) / 1000, 'mcu work', 'mcu');
        resolve();
      }, ms),
    );
  }
}
