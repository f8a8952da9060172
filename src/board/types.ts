/*
 * What a board module (`board/sensors` in the manifest: ./esp32 on ESP32, ./lin on the Moddable Linux host)
 * gives the entry point. Type-only: erased at build time, so it needs no manifest entry.
 */
import type { TelemetrySource } from '../device/app';
import type { Clock, Log } from '../platform/types';

export interface BoardConfig {
  i2c?: { data: number; clock: number; hz: number };
  sht3x?: { address: number };
  bme280?: { address: number };
  battery?: { pin: number; divider: number; vref: number };
}

export interface Board {
  /** Says what the telemetry comes from, logged at boot. */
  readonly description: string;
  readonly sources: TelemetrySource[];
}

export type OpenBoard = (config: BoardConfig, log: Log, clock: Clock) => Board;
