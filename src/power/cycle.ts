/*
 * The wake cycle of a battery device on a cellular modem (ThingsBoard CoAP device profile: PSM,
 * E_DRX or DRX; reference thingsboard-coap.md §4):
 *
 *   timer wake -> sample -> link up (registered; PSM keeps the registration) -> restore or resume
 *   DTLS -> re-register Observe from the current address (ThingsBoard notifies the address it saw at
 *   registration, and the NAT gave us a new one) -> send queued + new telemetry -> release
 *   assistance -> stay reachable for the window the profile promises (PSM activity timer / eDRX
 *   paging window, extended by every later uplink such as an RPC reply) -> sleep until the next report.
 *
 * ThingsBoard pushes the RPCs and merged attribute updates it queued while we slept as soon as an
 * uplink wakes us in its books; the re-registration is that uplink, so they reach the new address.
 * DRX: the link and the observations stay up; the MCU sleeps between reports, the modem idles.
 *
 * Device code: no Node APIs; one loop, no recursion; all waiting on the Clock / Sleep.
 */
import type { Clock, Log, Sleep } from '../platform/types';
import { silentLog } from '../platform/types';
import type { EdrxRequest, Modem, PsmRequest, Registration } from '../modem/modem';
import { TIMER3_MAX_S } from '../modem/timers';

export type PowerMode = 'PSM' | 'E_DRX' | 'DRX';

/** The device profile's power-saving settings (CoapDeviceProfileTransportConfiguration.clientSettings). */
export interface PowerProfile {
  powerMode: PowerMode;
  /** ms; ThingsBoard's default (null or 0) is 10000. */
  psmActivityTimer?: number;
  /** ms; default 10000. */
  pagingTransmissionWindow?: number;
  /** ms; stored by ThingsBoard but unused by its CoAP transport. */
  edrxCycle?: number;
}

/** transport.coap.psm_activity_timer / paging_transmission_window defaults. */
export const TB_DEFAULT_WINDOW_MS = 10000;

/**
 * DTLS after a sleep, cheapest first. 'restore' (default): the whole connection saved before the
 * sleep is loaded and used at once, no handshake; when the server does not answer it (it restarted,
 * or a NAT gave us a new address) DtlsDatagram resumes the session, and the server answers with a
 * full handshake if it forgot that too. 'resume': an abbreviated handshake every wake. 'full': a
 * full handshake every wake. 'keep': nothing done (the connection stays as it was in RAM).
 */
export type DtlsAfterSleep = 'restore' | 'resume' | 'full' | 'keep';

/** What the wake cycle uses of the app's DTLS datagram (DtlsDatagram). */
export interface PoweredDtls {
  reconnect(resume?: boolean): void;
  readonly state: string;
  /** The whole connection, handed out before sleep (the datagram is 'suspended' after), or null. */
  saveContext?(): Uint8Array | null;
  /** Loads the connection saveContext() handed out (or `context`) and uses it at once. */
  restore?(context?: Uint8Array): boolean;
}

/** The part of DeviceApp the wake cycle drives (schedule: 'external'). */
export interface PoweredApp {
  start(): Promise<void>;
  sample(): void;
  flush(): Promise<void>;
  resubscribe(): Promise<void>;
  readonly intervalMs: number;
  readonly dtls?: PoweredDtls | undefined;
  /**
   * Before deep sleep ('restore'): save the DTLS connection where it survives a reboot too (the
   * flash store's context record, beside the session) and return true; the datagram also keeps it
   * for the wake. Without this method the cycle calls dtls.saveContext() itself (kept in RAM only,
   * as in ESP32 RTC memory: a reboot then resumes the session from flash).
   */
  saveDtlsContext?(): boolean;
}

export type WakePhase = 'attach' | 'wake' | 'sample' | 'link' | 'dtls' | 'observe' | 'report' | 'release' | 'window' | 'sleep';

export interface WakeCycleOptions {
  app: PoweredApp;
  modem: Modem;
  /** The datagram the app talks through: its `sent` count tells the window about later uplinks. */
  datagram: { readonly sent: number };
  clock: Clock;
  sleep: Sleep;
  log?: Log;
  profile: PowerProfile;
  /** PSM request (PSM mode). Default: T3324 = the activity timer, T3412 = 1.5 x interval (at least 1 h). */
  psm?: PsmRequest;
  /** eDRX request (E_DRX mode). Default: NB-IoT, 81.92 s cycle, PTW = the paging window. */
  edrx?: EdrxRequest;
  /** Release assistance after the uplinks (default true; ignored when the modem has none). */
  rai?: boolean;
  registrationTimeoutMs?: number;
  /** How often the window checks for new uplinks (default 1000 ms). */
  pollMs?: number;
  /** DTLS after a sleep: 'restore' (default), 'resume', 'full' or 'keep': see DtlsAfterSleep. */
  dtlsAfterSleep?: DtlsAfterSleep;
  /** Called at each phase (traces, the sim's pictures). */
  onPhase?: (phase: WakePhase) => void;
}

/**
 * T3324 (granted) against the profile's activity timer. Returns a warning, or undefined when they
 * agree (T3324 at least the timer, and not much longer).
 */
export function checkActivityTimer(profile: PowerProfile, registration: Registration): string | undefined {
  if (profile.powerMode !== 'PSM') return undefined;
  const timerMs = profile.psmActivityTimer || TB_DEFAULT_WINDOW_MS;
  const t3324 = registration.activeTimeS;
  if (t3324 === undefined) return 'the network did not report T3324 (active time): cannot check it against the profile\'s PSM activity timer';
  if (t3324 === null)
    return `the network did not grant PSM (T3324 deactivated): the modem stays reachable, but ThingsBoard's PSM profile queues downlink ${timerMs / 1000} s after each uplink; use a DRX or E_DRX profile, or get PSM granted`;
  if (t3324 * 1000 < timerMs)
    return `T3324 granted ${t3324} s is shorter than the profile's PSM activity timer ${timerMs / 1000} s: ThingsBoard sends downlink for ${timerMs / 1000} s after each uplink while the modem is already in PSM; those notifications time out (and ThingsBoard cancels the observation). Request T3324 >= ${timerMs / 1000} s or lower psmActivityTimer`;
  if (t3324 * 1000 > timerMs + Math.max(10000, timerMs / 2))
    return `T3324 granted ${t3324} s is much longer than the profile's PSM activity timer ${timerMs / 1000} s: ThingsBoard queues all downlink after ${timerMs / 1000} s, so the modem listens ${t3324 - timerMs / 1000} s per wake for nothing (idle current)`;
  return undefined;
}

export class WakeCycle {
  /** Completed wake cycles. */
  cycles = 0;
  #o: WakeCycleOptions;
  #log: Log;
  #running = false;
  #stopped = false;
  #lastWarning: string | undefined;
  #started = false;
  /** Connections saved before sleep / restored at wake (for traces and tests). */
  readonly dtlsStats = { saved: 0, restored: 0, resumed: 0, full: 0 };

  constructor(options: WakeCycleOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLog;
  }

  /** The window after the last uplink in which ThingsBoard sends downlink, ms (0 for DRX: always). */
  get windowMs(): number {
    const p = this.#o.profile;
    if (p.powerMode === 'PSM') return p.psmActivityTimer || TB_DEFAULT_WINDOW_MS;
    if (p.powerMode === 'E_DRX') return p.pagingTransmissionWindow || TB_DEFAULT_WINDOW_MS;
    return 0;
  }

  get running(): boolean {
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    this.#running = false;
  }

  #phase(p: WakePhase): void {
    this.#o.onPhase?.(p);
  }

  /** Modem settings for the profile, radio on, registered; the timers checked. */
  async attach(): Promise<void> {
    const { modem, profile, app } = this.#o;
    this.#phase('attach');
    modem.onRegistration = (r) => {
      if (r.registered) this.#check(r);
    };
    if (profile.powerMode === 'PSM') {
      const psm = this.#o.psm ?? {
        activeTimeS: Math.ceil(this.windowMs / 1000),
        periodicTauS: Math.min(TIMER3_MAX_S, Math.max(3600, Math.ceil((1.5 * app.intervalMs) / 1000))),
      };
      await modem.setPsm(psm);
      await modem.setEdrx(null);
    } else {
      await modem.setPsm(null);
      if (profile.powerMode === 'E_DRX') await modem.setEdrx(this.#o.edrx ?? { act: 'nb-iot', cycleS: (profile.edrxCycle ?? 81920) / 1000, ptwS: this.windowMs / 1000 });
      else await modem.setEdrx(null);
    }
    await modem.start();
    this.#check(await modem.waitRegistered(this.#o.registrationTimeoutMs ?? 180000));
  }

  #check(r: Registration): void {
    const w = checkActivityTimer(this.#o.profile, r);
    if (w && w !== this.#lastWarning) this.#log.warn(w);
    this.#lastWarning = w;
  }

  /** One wake cycle, from the timer wake to the end of the activity window (not the sleep). */
  async wakeOnce(): Promise<void> {
    const { app, modem, clock } = this.#o;
    this.#phase('wake');
    if (!this.#started) {
      // First cycle: announce, subscribe (from this address), sample, report.
      this.#started = true;
      this.#phase('report');
      await app.start();
    } else {
      this.#phase('sample');
      app.sample();
      this.#phase('link');
      if (!modem.registration.registered) {
        try {
          await modem.waitRegistered(this.#o.registrationTimeoutMs ?? 180000);
        } catch (e) {
          this.#log.warn(`no network: ${(e as Error).message}; readings stay queued`);
          return;
        }
      }
      const dtls = app.dtls;
      const how = this.#o.dtlsAfterSleep ?? 'restore';
      if (dtls && how !== 'keep') {
        this.#phase('dtls');
        if (how === 'restore' && dtls.state === 'suspended' && dtls.restore?.()) {
          // Connected at once: the re-registration below is the first record of the restored
          // connection; DtlsDatagram falls back to a handshake if the server does not answer it.
          this.dtlsStats.restored++;
        } else if (how === 'full') {
          this.dtlsStats.full++;
          dtls.reconnect(false);
        } else {
          this.dtlsStats.resumed++;
          dtls.reconnect(true);
        }
        // Re-register inside the new session, before any telemetry: wait for the handshake.
        for (let i = 0; i < 1200 && dtls.state === 'handshaking' && !this.#stopped; i++) await this.#o.sleep.idle(100);
      }
      this.#phase('observe');
      await app.resubscribe();
      this.#phase('report');
      await app.flush();
    }
    await this.#window(clock);
    this.cycles++;
  }

  /** Before the sleep ('restore'): the DTLS connection saved, the last act before sleeping. */
  #saveDtls(): void {
    const { app } = this.#o;
    const dtls = app.dtls;
    if ((this.#o.dtlsAfterSleep ?? 'restore') !== 'restore' || !dtls?.saveContext || dtls.state !== 'connected') return;
    try {
      const kept = app.saveDtlsContext ? app.saveDtlsContext() : dtls.saveContext() !== null;
      if (kept) this.dtlsStats.saved++;
      else this.#log.debug('DTLS connection not saved before sleep (not answered yet): the session is resumed at wake');
    } catch (e) {
      this.#log.warn(`DTLS connection not saved before sleep: ${(e as Error).message}`);
    }
  }

  /** Release assistance, then reachable until the window after the last uplink has passed. */
  async #window(clock: Clock): Promise<void> {
    const { modem, datagram, sleep } = this.#o;
    const rai = this.#o.rai ?? true;
    const window = this.windowMs;
    if (rai && window === 0) await this.#release(modem);
    if (window === 0) return;
    this.#phase('window');
    const poll = this.#o.pollMs ?? 1000;
    let sent = datagram.sent;
    let last = clock.now();
    if (rai) await this.#release(modem);
    // Bounded: every extension needs a new uplink, and each wait is at least one poll.
    for (let i = 0; i < 100_000 && !this.#stopped; i++) {
      const left = last + window - clock.now();
      if (left <= 0) break;
      await sleep.idle(Math.min(poll, left));
      if (datagram.sent !== sent) {
        sent = datagram.sent;
        last = clock.now();
        if (rai) await this.#release(modem);
      }
    }
  }

  async #release(modem: Modem): Promise<void> {
    this.#phase('release');
    try {
      await modem.releaseAssistance();
    } catch (e) {
      this.#log.debug(`release assistance: ${(e as Error).message}`);
    }
  }

  /** Runs wake cycles until stop(): the first at once, then one every app.intervalMs. */
  async run(): Promise<void> {
    const { clock, sleep } = this.#o;
    this.#running = true;
    await this.attach();
    while (!this.#stopped) {
      const wokeAt = clock.now();
      try {
        await this.wakeOnce();
      } catch (e) {
        this.#log.warn(`wake cycle: ${(e as Error).message}`);
      }
      if (this.#stopped) break;
      this.#saveDtls();
      this.#phase('sleep');
      const next = wokeAt + this.#o.app.intervalMs;
      await sleep.sleep(Math.max(0, next - clock.now()));
    }
  }
}
