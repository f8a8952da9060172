/*
 * Energy model: per-state current of the modem and the MCU, integrated over the simulated
 * timeline (the clock the simulated modem runs on). Charge in µAh, current in µA.
 *
 * Modem states (what the simulated modem reports):
 *   off        radio off (CFUN=0) or powered down
 *   psm        Power Saving Mode: the floor
 *   idle       RRC idle, paging every DRX or eDRX cycle: current depends on the cycle
 *   connected  RRC connected with no data moving (connected-mode DRX until the network's
 *              inactivity timer, or release assistance, releases it)
 *   active     transferring (TX/RX bursts of a datagram, attach/TAU signalling)
 *   searching  cell search / attach
 *
 * Values and where they come from: see CURRENT_TABLES below and docs/power.md.
 */
import type { Clock } from '../../../src/platform/types';

export type ModemPowerState = 'off' | 'psm' | 'idle' | 'connected' | 'active' | 'searching';
export type McuPowerState = 'sleep' | 'light' | 'active';

export interface CurrentTable {
  name: string;
  /** Supply voltage the figures are given at. */
  volts: number;
  /** µA per state; `idle` is computed from the paging cycle by idleUa(). */
  ua: { off: number; psm: number; connected: number; active: number; searching: number };
  /** Idle (RRC idle) current for a paging cycle of `cycleS` seconds, µA. */
  idleUa(cycleS: number): number;
  /** Where each figure comes from. */
  sources: string[];
}

/**
 * nRF9160, NB-IoT (Cat-NB1), band 20, 3.7 V: nRF9160 Product Specification, "Modem current
 * consumption" (infocenter.nordicsemi.com/topic/ps_nrf9160/.../parameters.id_current_modem.html).
 */
export const NRF9160_NB: CurrentTable = Object.freeze({
  name: 'nRF9160 NB-IoT (B20, 3.7 V)',
  volts: 3.7,
  ua: Object.freeze({
    off: 2.7,
    psm: 2.7,
    // No datasheet figure for connected-mode DRX between transfers: an estimate (see docs/power.md).
    connected: 3000,
    // IRMC_10DBM, Cat-NB1, B20: 45 mA ("balanced TX and RX", 10 dBm: medium coverage).
    active: 45000,
    // Cell search / attach: taken as the active figure (an estimate).
    searching: 45000,
  }),
  // Fitted to IEDRX 37 µA at 81.92 s and IIEDRX 9 µA at 655.36 s (PTW 2.56 s): 5 µA + 2621 µA·s per cycle.
  idleUa: (cycleS: number) => 5 + 2621 / Math.max(1.28, cycleS),
  sources: Object.freeze([
    'IPSM 2.7 µA (PSM floor), nRF9160 PS "Modem current consumption"',
    'IEDRX 37 µA at eDRX 81.92 s and IIEDRX 9 µA at 655.36 s (Cat-NB1, PTW 2.56 s), same table: idle = 5 µA + 2621 µA·s / cycle (fit); DRX 2.56 s extrapolates to ~1 mA (upper estimate)',
    'IRMC_10DBM 45 mA (Cat-NB1, B20, balanced TX/RX 33 %/33 %), same table: "active"',
    'EPSM_TAU 550 mJ over TPSM_TAU 2.7 s (Cat-NB1, 23 dBm): a periodic TAU costs 550 mJ / 3.7 V = 41 mAs',
    'connected-mode DRX between transfers 3 mA: estimate, no datasheet figure',
  ]) as unknown as string[],
}) as CurrentTable;

export interface McuTable {
  name: string;
  ua: { sleep: number; light: number; active: number };
  /** CPU time of one wake (boot from deep sleep, sensors, encoding), ms at the active current. */
  workMsPerWake: number;
  sources: string[];
}

/** ESP32 datasheet, "Power consumption by power modes": deep sleep with RTC timer + RTC memory 10 µA; modem-sleep (Wi-Fi off) at 80 MHz 20-31 mA. */
export const ESP32_MCU: McuTable = Object.freeze({
  name: 'ESP32 (80 MHz, Wi-Fi off)',
  ua: Object.freeze({ sleep: 10, light: 800, active: 25000 }),
  workMsPerWake: 300,
  sources: Object.freeze(['ESP32 datasheet, power modes: deep sleep (RTC timer + RTC memory) 10 µA between reports; light sleep 0.8 mA while awake and waiting on the modem (wakes on UART); modem-sleep (Wi-Fi off) 80 MHz 20-31 mA (25 mA used) for 300 ms of CPU work per wake (an estimate: boot, sensors, encoding)']) as unknown as string[],
}) as McuTable;

/** A periodic TAU out of PSM (EPSM_TAU 550 mJ at 3.7 V, Cat-NB1). */
export const NRF9160_TAU_UAS = (550e-3 / 3.7) * 1e6; // µA·s

export interface Segment {
  t0: number;
  t1: number;
  modem: ModemPowerState;
  mcu: McuPowerState;
  ua: number;
}

export interface Mark {
  t: number;
  label: string;
}

export class EnergyMeter {
  readonly table: CurrentTable;
  readonly mcuTable: McuTable;
  #clock: Clock;
  #modem: ModemPowerState = 'off';
  #mcu: McuPowerState = 'light';
  #idleCycleS = 2.56;
  #since: number;
  /** Integrated charge, µA·ms. */
  #uAms = 0;
  #byModem: Record<ModemPowerState, number> = { off: 0, psm: 0, idle: 0, connected: 0, active: 0, searching: 0 };
  #mcuUAms = 0;
  /** Extra charge of discrete events (periodic TAU; MCU work per wake), µA·ms. */
  #eventsUAms = 0;
  #mcuEventsUAms = 0;
  /** Recorded segments and marks between startRecording() and stopRecording() (bounded). */
  #recording = false;
  readonly segments: Segment[] = [];
  readonly marks: Mark[] = [];
  #maxRecords: number;

  constructor(clock: Clock, table: CurrentTable = NRF9160_NB, mcu: McuTable = ESP32_MCU, maxRecords = 5000) {
    this.#clock = clock;
    this.table = table;
    this.mcuTable = mcu;
    this.#since = clock.now();
    this.#maxRecords = maxRecords;
  }

  get modemState(): ModemPowerState {
    return this.#modem;
  }

  #modemUa(): number {
    return this.#modem === 'idle' ? this.table.idleUa(this.#idleCycleS) : this.table.ua[this.#modem];
  }

  /** Current drawn now, µA. */
  get currentUa(): number {
    return this.#modemUa() + this.mcuTable.ua[this.#mcu];
  }

  #accrue(): void {
    const now = this.#clock.now();
    const dt = now - this.#since;
    if (dt <= 0) return;
    const m = this.#modemUa();
    const c = this.mcuTable.ua[this.#mcu];
    this.#uAms += (m + c) * dt;
    this.#byModem[this.#modem] += m * dt;
    this.#mcuUAms += c * dt;
    if (this.#recording && this.segments.length < this.#maxRecords) this.segments.push({ t0: this.#since, t1: now, modem: this.#modem, mcu: this.#mcu, ua: m + c });
    this.#since = now;
  }

  modem(state: ModemPowerState, idleCycleS?: number): void {
    this.#accrue();
    this.#modem = state;
    if (idleCycleS !== undefined) this.#idleCycleS = idleCycleS;
  }

  mcu(state: McuPowerState): void {
    if (state === this.#mcu) return;
    this.#accrue();
    this.#mcu = state;
  }

  /** A discrete event charged at once (periodic TAU: 'modem'; CPU work of a wake: 'mcu'), µA·s. */
  event(uAs: number, label: string, who: 'modem' | 'mcu' = 'modem'): void {
    this.#accrue();
    this.#uAms += uAs * 1000;
    if (who === 'mcu') this.#mcuEventsUAms += uAs * 1000;
    else this.#eventsUAms += uAs * 1000;
    this.mark(label);
  }

  mark(label: string): void {
    if (this.#recording && this.marks.length < this.#maxRecords) this.marks.push({ t: this.#clock.now(), label });
  }

  startRecording(): void {
    this.#accrue();
    this.segments.length = 0;
    this.marks.length = 0;
    this.#recording = true;
  }

  stopRecording(): void {
    this.#accrue();
    this.#recording = false;
  }

  /** Charge since creation, µAh. */
  get chargeUAh(): number {
    this.#accrue();
    return this.#uAms / 3_600_000;
  }

  /** Charge by modem state and the MCU, µAh. */
  breakdown(): Record<string, number> {
    this.#accrue();
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.#byModem)) out[`modem ${k}`] = v / 3_600_000;
    out['modem TAU events'] = this.#eventsUAms / 3_600_000;
    out['mcu (sleep, light sleep, work)'] = (this.#mcuUAms + this.#mcuEventsUAms) / 3_600_000;
    return out;
  }
}
