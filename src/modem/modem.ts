/*
 * What every AT modem driver offers the power layer, and the parts they share: registration
 * (+CEREG with the granted PSM timers read back), PSM requests (AT+CPSMS, 27.007 §7.38) and a UDP
 * socket presented as a platform Datagram, so CoAP and DTLS run over the modem unchanged.
 *
 * Device code: no Node APIs.
 */
import type { Clock, Datagram, Log, TimerHandle } from '../platform/types';
import { silentLog } from '../platform/types';
import type { AtChannel } from './at';
import { AtError, atParams } from './at';
import type { EdrxAct } from './timers';
import { decodeTimer2, decodeTimer3, encodeTimer2, encodeTimer3 } from './timers';

export type RegistrationStatus = 'not-registered' | 'home' | 'searching' | 'denied' | 'unknown' | 'roaming';

/** <stat> of +CEREG (27.007 §10.1.22); 6-10 are SMS-only / emergency variants, read as not usable. */
const CEREG_STAT: readonly RegistrationStatus[] = Object.freeze(['not-registered', 'home', 'searching', 'denied', 'unknown', 'roaming']);

export interface Registration {
  status: RegistrationStatus;
  registered: boolean;
  tac?: string;
  cellId?: string;
  /** <AcT>: 7 = E-UTRAN (LTE-M), 9 = E-UTRAN NB-S1 (NB-IoT). */
  act?: number;
  /** Granted T3324 active time, s (null: deactivated, undefined: not reported). */
  activeTimeS?: number | null;
  /** Granted T3412 extended (periodic TAU), s. */
  periodicTauS?: number | null;
}

/**
 * Parses a +CEREG line. `read` is true for the answer to AT+CEREG? (which starts with <n>), false
 * for the URC. With n = 4 or 5 the last two fields are the granted Active-Time (GPRS Timer 2) and
 * Periodic-TAU (GPRS Timer 3) as 8-bit strings.
 */
export function parseCereg(line: string, read: boolean): Registration {
  const p = atParams(line);
  const f = read ? p.slice(1) : p;
  const stat = Number(f[0]);
  const status = CEREG_STAT[stat] ?? 'unknown';
  const r: Registration = { status, registered: status === 'home' || status === 'roaming' };
  if (f[1]) r.tac = f[1];
  if (f[2]) r.cellId = f[2];
  if (f[3]) r.act = Number(f[3]);
  if (f[6] && /^[01]{8}$/.test(f[6])) r.activeTimeS = decodeTimer2(f[6]);
  if (f[7] && /^[01]{8}$/.test(f[7])) r.periodicTauS = decodeTimer3(f[7]);
  return r;
}

export interface PsmRequest {
  /** Requested T3412 extended (periodic TAU), s. */
  periodicTauS: number;
  /** Requested T3324 (active time: reachable in RRC idle after the connection is released), s. */
  activeTimeS: number;
}

export interface EdrxRequest {
  act: EdrxAct;
  /** eDRX cycle, s (rounded up to the next 3GPP value). */
  cycleS: number;
  /** Paging time window, s (where the modem lets us set it). */
  ptwS?: number;
}

export interface Modem {
  readonly model: string;
  readonly registration: Registration;
  onRegistration?: (r: Registration) => void;
  /** The modem restarted on its own: sockets and settings are gone (the driver re-applies settings). */
  onReboot?: () => void;
  /** Sets the modem up (echo off, numeric errors, registration URCs with timers) and turns the radio on. */
  start(): Promise<void>;
  /** Resolves once registered (home or roaming); rejects with AtError 'timeout' after timeoutMs. */
  waitRegistered(timeoutMs: number): Promise<Registration>;
  /** AT+CPSMS: null turns PSM off. Returns the bit strings requested. */
  setPsm(request: PsmRequest | null): Promise<{ periodicTau: string; activeTime: string } | undefined>;
  /** AT+CEDRXS (and the modem's paging time window command): null turns eDRX off. */
  setEdrx(request: EdrxRequest | null): Promise<void>;
  /** A UDP socket to host:port as a Datagram (reopened by itself after a modem restart). */
  openDatagram(host: string, port: number): ModemDatagram;
  /** Release assistance (RAI): tells the network no more data is expected. False when the modem has none. */
  releaseAssistance(): Promise<boolean>;
  close(): void;
}

/** How long a send waits for the registration before it fails (3GPP T3410 x 5 attach attempts ~ 75 s; cell search more). */
export const LINK_UP_TIMEOUT_MS = 180_000;

export interface AtModemOptions {
  at: AtChannel;
  clock: Clock;
  log?: Log;
}

/** The AT plumbing every driver shares: +CEREG, AT+CPSMS, the socket Datagram. */
export abstract class AtModem implements Modem {
  abstract readonly model: string;
  onRegistration?: (r: Registration) => void;
  onReboot?: () => void;
  readonly at: AtChannel;
  protected readonly clock: Clock;
  protected readonly log: Log;
  #registration: Registration = { status: 'not-registered', registered: false };
  #waiters: { resolve: (r: Registration) => void; reject: (e: Error) => void; timer: TimerHandle }[] = [];
  protected datagrams: ModemDatagram[] = [];
  /** The last settings applied, re-applied after a modem restart. */
  #psm: PsmRequest | null | undefined;
  #edrx: EdrxRequest | null | undefined;
  #started = false;

  constructor(options: AtModemOptions) {
    this.at = options.at;
    this.clock = options.clock;
    this.log = options.log ?? silentLog;
    this.at.onUrc('+CEREG:', (line) => this.#setRegistration(parseCereg(line, false)));
    this.at.onReboot = () => this.#rebooted();
  }

  get registration(): Registration {
    return this.#registration;
  }

  /** Commands that set the modem up before the radio goes on (driver specific). */
  protected abstract setupCommands(): readonly string[];

  async start(): Promise<void> {
    for (const c of this.setupCommands()) await this.at.command(c);
    await this.at.command(`AT+CEREG=${this.ceregMode}`);
    if (this.#psm !== undefined) await this.setPsm(this.#psm);
    if (this.#edrx !== undefined) await this.setEdrx(this.#edrx);
    await this.at.command('AT+CFUN=1', { timeoutMs: 15000 });
    this.#started = true;
    const r = await this.at.command('AT+CEREG?', { prefix: '+CEREG:' });
    if (r.lines[0]) this.#setRegistration(parseCereg(r.lines[0], true));
  }

  /** +CEREG=<n>: 5 (with cause and timers) where the modem has it, else 4 (timers). */
  protected get ceregMode(): number {
    return 5;
  }

  waitRegistered(timeoutMs: number): Promise<Registration> {
    if (this.#registration.registered) return Promise.resolve(this.#registration);
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        timer: this.clock.setTimer(() => {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(new AtError('timeout', 'AT+CEREG', `not registered after ${timeoutMs} ms (${this.#registration.status})`));
        }, timeoutMs),
      };
      this.#waiters.push(w);
    });
  }

  async setPsm(request: PsmRequest | null): Promise<{ periodicTau: string; activeTime: string } | undefined> {
    this.#psm = request;
    if (!request) {
      await this.at.command('AT+CPSMS=0');
      return undefined;
    }
    const periodicTau = encodeTimer3(request.periodicTauS);
    const activeTime = encodeTimer2(request.activeTimeS);
    await this.at.command(`AT+CPSMS=1,,,"${periodicTau}","${activeTime}"`);
    return { periodicTau, activeTime };
  }

  async setEdrx(request: EdrxRequest | null): Promise<void> {
    this.#edrx = request;
    await this.applyEdrx(request);
  }

  protected abstract applyEdrx(request: EdrxRequest | null): Promise<void>;

  abstract openDatagram(host: string, port: number): ModemDatagram;

  async releaseAssistance(): Promise<boolean> {
    return false;
  }

  /**
   * Resolves once registered: sockets open and datagrams go out only then (a send before the
   * attach would only get ERROR, and a DTLS handshake would burn its retransmissions on it).
   */
  protected linkUp(): Promise<unknown> {
    return this.#registration.registered ? Promise.resolve() : this.waitRegistered(LINK_UP_TIMEOUT_MS);
  }

  close(): void {
    for (const d of this.datagrams) d.close();
    this.at.close();
  }

  #setRegistration(r: Registration): void {
    // The URC without timers (n < 4, or a cell change) keeps the last granted ones.
    if (r.activeTimeS === undefined && this.#registration.activeTimeS !== undefined && r.registered) r.activeTimeS = this.#registration.activeTimeS;
    if (r.periodicTauS === undefined && this.#registration.periodicTauS !== undefined && r.registered) r.periodicTauS = this.#registration.periodicTauS;
    this.#registration = r;
    this.onRegistration?.(r);
    if (!r.registered) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      this.clock.clearTimer(w.timer);
      w.resolve(r);
    }
  }

  #rebooted(): void {
    this.#registration = { status: 'not-registered', registered: false };
    for (const d of this.datagrams) d.socketLost();
    this.onReboot?.();
    if (!this.#started) return;
    // Set the modem up again (settings, radio on); sockets reopen on their next send. A stray
    // answer to a command written while it restarted can fail the first attempt: try again.
    const attempt = (n: number): void => {
      this.start().catch((e: Error) => {
        this.log.warn(`modem set-up after restart: ${e.message}${n < 3 ? ', trying again' : ''}`);
        if (n < 3) this.clock.setTimer(() => attempt(n + 1), 2000);
      });
    };
    attempt(1);
  }
}

/** What a driver implements for the socket a ModemDatagram stands for. */
export interface SocketOps {
  /** Opens the socket, resolves with its handle. */
  open(host: string, port: number): Promise<number>;
  send(handle: number, host: string, port: number, data: Uint8Array): Promise<void>;
  close(handle: number): Promise<void>;
}

/**
 * A UDP socket on the modem as a platform Datagram: send() queues an AT command (errors go to
 * onError, never thrown); received datagrams are delivered from a fresh job (the AT receive path
 * is not stacked under the CoAP client's). A modem restart loses the socket; the next send opens
 * a new one (from a new source port: the server must be told the new address by a request).
 */
export class ModemDatagram implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  readonly mtu: number;
  readonly host: string;
  readonly port: number;
  /** Datagrams sent / received through the modem (counters for tests and the energy model). */
  sent = 0;
  received = 0;
  #ops: SocketOps;
  #handle: number | undefined;
  #opening: Promise<number> | undefined;
  #closed = false;

  constructor(ops: SocketOps, host: string, port: number, mtu: number) {
    this.#ops = ops;
    this.host = host;
    this.port = port;
    this.mtu = mtu;
  }

  get handle(): number | undefined {
    return this.#handle;
  }

  /** Opens the socket now (the first send() does it otherwise). */
  ready(): Promise<number> {
    if (this.#handle !== undefined) return Promise.resolve(this.#handle);
    this.#opening ??= this.#ops.open(this.host, this.port).then(
      (h) => {
        this.#opening = undefined;
        this.#handle = h;
        return h;
      },
      (e: Error) => {
        this.#opening = undefined;
        throw e;
      },
    );
    return this.#opening;
  }

  send(data: Uint8Array): void {
    if (this.#closed) return;
    const copy = data.slice();
    const h = this.#handle;
    const fail = (e: Error) => this.onError?.(e);
    this.sent++;
    if (h !== undefined) this.#ops.send(h, this.host, this.port, copy).catch(fail);
    else this.ready().then((handle) => this.#ops.send(handle, this.host, this.port, copy)).catch(fail);
  }

  /** Called by the driver with a datagram read from the socket. */
  deliver(data: Uint8Array): void {
    if (this.#closed) return;
    this.received++;
    this.onReceive?.(data);
  }

  /** The modem restarted: the handle is gone. */
  socketLost(): void {
    this.#handle = undefined;
    this.#opening = undefined;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const h = this.#handle;
    this.#handle = undefined;
    if (h !== undefined) this.#ops.close(h).catch(() => undefined);
  }
}
