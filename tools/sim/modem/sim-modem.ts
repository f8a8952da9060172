/*
 * A simulated cellular modem on the virtual clock, answering the AT dialect of the drivers in
 * src/modem (nRF91 Serial LTE Modem or Quectel BG95) over a virtual serial line, and carrying the
 * datagrams of its UDP sockets over real loopback UDP (tools/sim/udp.ts) to the local endpoint.
 *
 * Radio states and what moves them (3GPP TS 23.682 / 24.301 behaviour, simplified):
 *   off --CFUN=1--> searching --registrationDelayMs--> connected (attach)
 *   connected --rrcInactivityMs of no data, or release assistance--> idle
 *   idle --T3324 (granted active time), with PSM--> psm; without PSM idle stays (DRX or eDRX paging)
 *   idle/psm --uplink--> connected (after wakeDelayMs; from psm with a NEW source port: NAT rebinding)
 *   psm --T3412 extended--> periodic TAU (charged as an event), back to psm
 * Downlink: connected -> delivered after latencyMs; idle with DRX -> at the next paging occasion;
 * idle with eDRX -> held until the next paging time window; psm/off/searching -> lost (counted).
 *
 * Everything waits on the given Clock, so a ManualClock runs days in seconds.
 */
import type { Clock, Datagram, Serial, TimerHandle } from '../../../src/platform/types';
import { decodeEdrx, decodeTimer2, decodeTimer3, encodeTimer2, encodeTimer3 } from '../../../src/modem/timers';
import type { EdrxAct } from '../../../src/modem/timers';
import { UdpDatagram } from '../udp';
import type { EnergyMeter } from './energy';
import { NRF9160_TAU_UAS } from './energy';

export type SimDialect = 'nrf91-slm' | 'bg95';
export type RadioState = 'off' | 'searching' | 'connected' | 'idle' | 'psm';

export interface SimModemOptions {
  clock: Clock;
  dialect: SimDialect;
  /** Opens the network side of a socket (a new local port each call). Default: real loopback UDP. */
  network?: (host: string, port: number) => Datagram;
  /** Cell search + attach, ms (default 4000). */
  registrationDelayMs?: number;
  /** One-way latency of the radio link, ms (default 400: NB-IoT-like). */
  latencyMs?: number;
  /** Time for the modem to answer a command on the UART, ms (default 5). */
  serialDelayMs?: number;
  /** The network's RRC inactivity timer, ms (default 10000). */
  rrcInactivityMs?: number;
  /** Service request from idle or PSM to connected, ms (default 1500). */
  wakeDelayMs?: number;
  /** What the network grants, overriding the request (null = deactivated). */
  grant?: { activeTimeS?: number | null; periodicTauS?: number | null };
  /** Idle DRX paging cycle without eDRX, s (default 2.56). */
  drxCycleS?: number;
  /** Link rate for the energy model's TX/RX bursts, bytes/s (default 2500: ~20 kbit/s NB-IoT). */
  bytesPerSecond?: number;
  /** Fixed radio-on time per datagram (scheduling, HARQ), ms (default 100). */
  burstOverheadMs?: number;
  /** Boot time after a restart: input is lost until the boot line is printed (default 1000 ms). */
  bootMs?: number;
  /** Change the source port after each PSM sleep (a carrier NAT forgets the mapping), default true. */
  rebindOnWake?: boolean;
  energy?: EnergyMeter;
  /** One line per state change / datagram, for the trace. */
  trace?: (line: string) => void;
}

interface RxDatagram {
  data: Uint8Array;
  ip: string;
  port: number;
}

interface SimSocket {
  id: number;
  net: Datagram | undefined;
  peer: { host: string; port: number } | undefined;
  rx: RxDatagram[];
  /** SLM: the POLLIN URC is armed (sent once, re-armed by a read). */
  armed: boolean;
}

const MAX_RX = 16;
const MAX_HELD = 8;

export interface SimModemStats {
  uplink: number;
  downlink: number;
  /** Downlink datagrams lost because the radio was in PSM (or off). */
  lostAsleep: number;
  rebinds: number;
  wakes: number;
  taus: number;
  commands: number;
}

export class SimModem {
  /** The MCU side of the UART: give it to AtChannel. */
  readonly serial: Serial;
  readonly stats: SimModemStats = { uplink: 0, downlink: 0, lostAsleep: 0, rebinds: 0, wakes: 0, taus: 0, commands: 0 };
  #o: Required<Omit<SimModemOptions, 'energy' | 'trace' | 'grant'>> & Pick<SimModemOptions, 'energy' | 'trace' | 'grant'>;
  #clock: Clock;
  #hostRx?: (data: Uint8Array) => void;
  #line = '';
  #payload: { need: number; got: Uint8Array[]; size: number; done: (data: Uint8Array) => void } | undefined;
  #radio: RadioState = 'off';
  #registered = false;
  #cereg = 0;
  #psm: { tau: string; active: string } | null = null;
  #edrx: { act: EdrxAct; code: string } | null = null;
  #ptw: string | undefined;
  #sockets = new Map<number, SimSocket>();
  #lastSocket: number | undefined;
  #apoll = false;
  #timers = new Set<TimerHandle>();
  #regTimer: TimerHandle | undefined;
  #inactTimer: TimerHandle | undefined;
  #activeTimer: TimerHandle | undefined;
  #tauTimer: TimerHandle | undefined;
  #waking: Promise<void> | undefined;
  #wakeResolve: (() => void) | undefined;
  #idleSince = 0;
  #held: { s: SimSocket; d: RxDatagram }[] = [];
  #pageTimer: TimerHandle | undefined;
  #activeUntil = 0;
  #burstTimer: TimerHandle | undefined;
  #bootLine: string;
  #booting = false;

  constructor(options: SimModemOptions) {
    this.#o = {
      network: (h, p) => new UdpDatagram(h, p),
      registrationDelayMs: 4000,
      latencyMs: 400,
      serialDelayMs: 5,
      rrcInactivityMs: 10000,
      wakeDelayMs: 1500,
      drxCycleS: 2.56,
      bytesPerSecond: 2500,
      burstOverheadMs: 100,
      rebindOnWake: true,
      bootMs: 1000,
      ...options,
    };
    this.#clock = options.clock;
    this.#bootLine = options.dialect === 'bg95' ? 'RDY' : 'Ready';
    const self = this;
    this.serial = {
      write(data: Uint8Array) {
        self.#fromHost(data);
      },
      set onReceive(fn: ((data: Uint8Array) => void) | undefined) {
        self.#hostRx = fn;
      },
      get onReceive() {
        return self.#hostRx;
      },
      close() {},
    };
  }

  get radio(): RadioState {
    return this.#radio;
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** The granted timers, s (null: deactivated). */
  get granted(): { activeTimeS: number | null; periodicTauS: number | null } | null {
    if (!this.#psm) return null;
    return {
      activeTimeS: this.#o.grant?.activeTimeS !== undefined ? this.#o.grant.activeTimeS : decodeTimer2(this.#psm.active),
      periodicTauS: this.#o.grant?.periodicTauS !== undefined ? this.#o.grant.periodicTauS : decodeTimer3(this.#psm.tau),
    };
  }

  /** Local (source) port of a socket's network side, for tests. */
  localPort(id?: number): number | undefined {
    const s = this.#sockets.get(id ?? this.#lastSocket ?? -1);
    return (s?.net as UdpDatagram | undefined)?.localPort;
  }

  /** The network side of a socket (to inject faults on its UdpDatagram). */
  network(id?: number): Datagram | undefined {
    return this.#sockets.get(id ?? this.#lastSocket ?? -1)?.net;
  }

  /** Fault: the modem restarts (sockets, registration and settings in RAM are gone). */
  reboot(): void {
    for (const t of this.#timers) this.#clock.clearTimer(t);
    this.#timers.clear();
    for (const s of this.#sockets.values()) s.net?.close();
    this.#sockets.clear();
    this.#held = [];
    this.#registered = false;
    this.#apoll = false;
    this.#payload = undefined;
    this.#line = '';
    this.#wakeResolve = undefined;
    this.#waking = undefined;
    this.#setRadio('off');
    // Bytes written while it boots are lost; then it says it is ready.
    this.#booting = true;
    this.#after(this.#o.bootMs, () => {
      this.#booting = false;
      this.#line = '';
      this.#out(`\r\n${this.#bootLine}\r\n`);
    });
  }

  /** Fault: bytes of line noise on the UART. */
  noise(bytes: Uint8Array): void {
    this.#outBytes(bytes);
  }

  /** Fault: the NAT gives the socket a new source port now. */
  rebind(): void {
    for (const s of this.#sockets.values()) this.#rebindSocket(s);
  }

  close(): void {
    for (const t of this.#timers) this.#clock.clearTimer(t);
    this.#timers.clear();
    for (const s of this.#sockets.values()) s.net?.close();
    this.#sockets.clear();
  }

  // ---------------------------------------------------------------- timers and output

  #after(ms: number, fn: () => void): TimerHandle {
    const h = this.#clock.setTimer(() => {
      this.#timers.delete(h);
      fn();
    }, ms);
    this.#timers.add(h);
    return h;
  }

  #cancel(h: TimerHandle | undefined): undefined {
    if (h !== undefined) {
      this.#clock.clearTimer(h);
      this.#timers.delete(h);
    }
    return undefined;
  }

  #out(text: string): void {
    this.#outBytes(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff));
  }

  #outBytes(bytes: Uint8Array): void {
    const copy = bytes.slice();
    this.#after(this.#o.serialDelayMs, () => this.#hostRx?.(copy));
  }

  #reply(lines: string[], final = 'OK'): void {
    this.#out(lines.map((l) => `\r\n${l}`).join('') + `\r\n${final}\r\n`);
  }

  #trace(line: string): void {
    this.#o.trace?.(`[modem ${(this.#clock.now() / 1000).toFixed(3)} s] ${line}`);
  }

  // ---------------------------------------------------------------- radio state machine

  #setRadio(state: RadioState): void {
    if (state !== this.#radio) this.#trace(`${this.#radio} -> ${state}`);
    this.#radio = state;
    const e = this.#o.energy;
    if (!e) return;
    if (state === 'idle') e.modem('idle', this.#edrx ? decodeEdrx(this.#edrx.code, this.#edrx.act) : this.#o.drxCycleS);
    else if (state === 'connected') e.modem(this.#clock.now() < this.#activeUntil ? 'active' : 'connected');
    else e.modem(state);
  }

  #cfun(on: boolean): void {
    this.#regTimer = this.#cancel(this.#regTimer);
    if (!on) {
      this.#registered = false;
      this.#leaveConnected();
      this.#activeTimer = this.#cancel(this.#activeTimer);
      this.#tauTimer = this.#cancel(this.#tauTimer);
      this.#setRadio('off');
      return;
    }
    if (this.#radio !== 'off') return;
    this.#setRadio('searching');
    this.#urcCereg(2);
    this.#regTimer = this.#after(this.#o.registrationDelayMs, () => {
      this.#regTimer = undefined;
      this.#registered = true;
      this.#enterConnected();
      this.#urcCereg(1);
    });
  }

  #ceregFields(stat: number): string {
    if (!this.#registered || stat !== 1) return `${stat}`;
    let s = `${stat},"0001","01A2D001",9`;
    if (this.#cereg >= 4) {
      const g = this.granted;
      const active = g ? bitsOf(g.activeTimeS, true) : '11100000';
      const tau = g ? bitsOf(g.periodicTauS, false) : '11100000';
      s += `,,,"${active}","${tau}"`;
    }
    return s;
  }

  #urcCereg(stat: number): void {
    if (this.#cereg > 0) this.#out(`\r\n+CEREG: ${this.#ceregFields(stat)}\r\n`);
  }

  #enterConnected(): void {
    this.#activeTimer = this.#cancel(this.#activeTimer);
    this.#tauTimer = this.#cancel(this.#tauTimer);
    this.#pageTimer = this.#cancel(this.#pageTimer);
    this.#setRadio('connected');
    this.#touch();
    // Downlink the network held for us (eDRX) goes now.
    const held = this.#held;
    this.#held = [];
    for (const h of held) this.#deliverAfter(h.s, h.d, this.#o.latencyMs);
  }

  #leaveConnected(): void {
    this.#inactTimer = this.#cancel(this.#inactTimer);
  }

  /** Data moved: the network's inactivity timer restarts. */
  #touch(): void {
    if (this.#radio !== 'connected') return;
    this.#inactTimer = this.#cancel(this.#inactTimer);
    this.#inactTimer = this.#after(this.#o.rrcInactivityMs, () => {
      this.#inactTimer = undefined;
      this.#release();
    });
  }

  /** RRC release: idle, then PSM after the granted active time. */
  #release(): void {
    if (this.#radio !== 'connected') return;
    this.#leaveConnected();
    this.#idleSince = this.#clock.now();
    this.#setRadio('idle');
    const g = this.granted;
    if (g && g.activeTimeS !== null) {
      this.#activeTimer = this.#after(g.activeTimeS * 1000, () => {
        this.#activeTimer = undefined;
        this.#enterPsm();
      });
    }
  }

  #enterPsm(): void {
    this.#pageTimer = this.#cancel(this.#pageTimer);
    if (this.#held.length) this.stats.lostAsleep += this.#held.length;
    this.#held = [];
    this.#setRadio('psm');
    this.#scheduleTau();
  }

  #scheduleTau(): void {
    const tau = this.granted?.periodicTauS;
    if (!tau) return;
    this.#tauTimer = this.#after(tau * 1000, () => {
      this.#tauTimer = undefined;
      if (this.#radio !== 'psm') return;
      this.stats.taus++;
      this.#o.energy?.event(NRF9160_TAU_UAS, 'periodic TAU');
      this.#scheduleTau();
    });
  }

  /** Uplink from idle or PSM: a service request first. Resolves once connected. */
  #wake(): Promise<void> {
    if (this.#radio === 'connected') return Promise.resolve();
    if (this.#waking) return this.#waking;
    const fromPsm = this.#radio === 'psm';
    this.stats.wakes++;
    this.#activeTimer = this.#cancel(this.#activeTimer);
    this.#tauTimer = this.#cancel(this.#tauTimer);
    this.#o.energy?.modem('active');
    this.#waking = new Promise<void>((resolve) => {
      this.#wakeResolve = resolve;
      this.#after(this.#o.wakeDelayMs, () => {
        this.#waking = undefined;
        this.#wakeResolve = undefined;
        if (fromPsm && this.#o.rebindOnWake) for (const s of this.#sockets.values()) this.#rebindSocket(s);
        this.#enterConnected();
        resolve();
      });
    });
    return this.#waking;
  }

  /** The radio is busy for a TX/RX burst of `bytes`. */
  #burst(bytes: number): void {
    const ms = this.#o.burstOverheadMs + (bytes * 1000) / this.#o.bytesPerSecond;
    const now = this.#clock.now();
    this.#activeUntil = Math.max(this.#activeUntil, now) + ms;
    this.#o.energy?.modem('active');
    this.#burstTimer = this.#cancel(this.#burstTimer);
    this.#burstTimer = this.#after(this.#activeUntil - now, () => {
      this.#burstTimer = undefined;
      if (this.#radio === 'connected') this.#o.energy?.modem('connected');
      else this.#setRadio(this.#radio);
    });
  }

  // ---------------------------------------------------------------- sockets and datagrams

  #openSocket(): SimSocket {
    let id = 0;
    while (this.#sockets.has(id)) id++;
    const s: SimSocket = { id, net: undefined, peer: undefined, rx: [], armed: true };
    this.#sockets.set(id, s);
    this.#lastSocket = id;
    return s;
  }

  #closeSocket(id: number): void {
    const s = this.#sockets.get(id);
    if (!s) return;
    s.net?.close();
    this.#sockets.delete(id);
    if (this.#lastSocket === id) this.#lastSocket = [...this.#sockets.keys()].pop();
  }

  #netFor(s: SimSocket, host: string, port: number): Datagram {
    if (s.net && s.peer && s.peer.host === host && s.peer.port === port) return s.net;
    s.net?.close();
    s.peer = { host, port };
    s.net = this.#o.network(host, port);
    const net = s.net;
    net.onReceive = (data) => {
      if (s.net === net) this.#downlink(s, { data: data.slice(), ip: host, port });
    };
    return net;
  }

  #rebindSocket(s: SimSocket): void {
    if (!s.net || !s.peer) return;
    this.stats.rebinds++;
    const before = (s.net as UdpDatagram).localPort;
    const { host, port } = s.peer;
    s.net.close();
    s.net = undefined;
    this.#netFor(s, host, port);
    this.#trace(`NAT rebinding: source port ${before} -> ${(s.net as unknown as UdpDatagram).localPort}`);
  }

  #uplink(s: SimSocket, host: string, port: number, data: Uint8Array): void {
    this.stats.uplink++;
    const copy = data.slice();
    void this.#wake().then(() => {
      if (!this.#sockets.has(s.id) || this.#radio !== 'connected') return;
      this.#burst(copy.length);
      this.#touch();
      this.#o.energy?.mark(`-> ${copy.length} B`);
      const net = this.#netFor(s, host, port);
      this.#after(this.#o.latencyMs, () => {
        if (this.#sockets.has(s.id)) net.send(copy);
      });
    });
  }

  #downlink(s: SimSocket, d: RxDatagram): void {
    switch (this.#radio) {
      case 'connected':
        this.#deliverAfter(s, d, this.#o.latencyMs);
        return;
      case 'idle': {
        // Paged at the next occasion: DRX every drxCycleS; eDRX at the next paging time window.
        if (this.#held.length >= MAX_HELD) return;
        this.#held.push({ s, d });
        if (this.#pageTimer !== undefined) return;
        const cycleMs = (this.#edrx ? decodeEdrx(this.#edrx.code, this.#edrx.act) : this.#o.drxCycleS) * 1000;
        const since = this.#clock.now() - this.#idleSince;
        const wait = cycleMs - (since % cycleMs);
        this.#pageTimer = this.#after(wait, () => {
          this.#pageTimer = undefined;
          if (this.#radio === 'idle') this.#enterConnected();
        });
        return;
      }
      default:
        this.stats.lostAsleep++;
        this.#trace(`downlink ${d.data.length} B lost: radio ${this.#radio}`);
    }
  }

  #deliverAfter(s: SimSocket, d: RxDatagram, ms: number): void {
    this.#after(ms, () => {
      if (!this.#sockets.has(s.id)) return;
      this.stats.downlink++;
      this.#burst(d.data.length);
      this.#touch();
      this.#o.energy?.mark(`<- ${d.data.length} B`);
      if (s.rx.length >= MAX_RX) return;
      const wasEmpty = s.rx.length === 0;
      s.rx.push(d);
      if (this.#o.dialect === 'nrf91-slm') {
        if (this.#apoll && s.armed) {
          s.armed = false;
          this.#out(`\r\n#XAPOLL: ${s.id},1\r\n`);
        }
      } else if (wasEmpty) this.#out(`\r\n+QIURC: "recv",${s.id}\r\n`);
    });
  }

  // ---------------------------------------------------------------- AT input

  #fromHost(data: Uint8Array): void {
    if (this.#booting) return;
    let i = 0;
    while (i < data.length) {
      const p = this.#payload;
      if (p) {
        const n = Math.min(p.need - p.size, data.length - i);
        p.got.push(data.slice(i, i + n));
        p.size += n;
        i += n;
        if (p.size === p.need) {
          this.#payload = undefined;
          const all = new Uint8Array(p.size);
          let o = 0;
          for (const g of p.got) {
            all.set(g, o);
            o += g.length;
          }
          p.done(all);
        }
        continue;
      }
      const c = data[i++]!;
      if (c === 13 || c === 10) {
        const line = this.#line.trim();
        this.#line = '';
        if (line) this.#command(line);
      } else if (this.#line.length < 4096) this.#line += String.fromCharCode(c);
    }
  }

  #command(cmd: string): void {
    this.stats.commands++;
    const upper = cmd.toUpperCase();
    let m: RegExpExecArray | null;
    if (upper === 'AT' || upper === 'ATE0' || upper === 'ATE1' || upper === 'AT+CMEE=1' || upper === 'AT%RAI=1') return this.#reply([]);
    if ((m = /^AT\+CEREG=(\d)$/.exec(upper))) {
      this.#cereg = Number(m[1]);
      return this.#reply([]);
    }
    if (upper === 'AT+CEREG?') return this.#reply([`+CEREG: ${this.#cereg},${this.#ceregFields(this.#registered ? 1 : this.#radio === 'searching' ? 2 : 0)}`]);
    if ((m = /^AT\+CFUN=([014])$/.exec(upper))) {
      this.#cfun(m[1] === '1');
      return this.#reply([]);
    }
    if (upper === 'AT+CPSMS=0' || upper === 'AT+CPSMS=') {
      this.#psm = null;
      return this.#reply([]);
    }
    if ((m = /^AT\+CPSMS=1,,,"([01]{8})","([01]{8})"$/.exec(upper))) {
      this.#psm = { tau: m[1]!, active: m[2]! };
      if (this.#registered) this.#urcCereg(1); // the network answers at the next TAU; here at once
      return this.#reply([]);
    }
    if (upper === 'AT+CEDRXS=0') {
      this.#edrx = null;
      return this.#reply([]);
    }
    if ((m = /^AT\+CEDRXS=2,([45]),"([01]{4})"$/.exec(upper))) {
      this.#edrx = { act: m[1] === '5' ? 'nb-iot' : 'lte-m', code: m[2]! };
      return this.#reply([]);
    }
    if (this.#o.dialect === 'nrf91-slm') return this.#slm(cmd, upper);
    return this.#bg95(cmd, upper);
  }

  #slm(cmd: string, upper: string): void {
    let m: RegExpExecArray | null;
    if ((m = /^AT%XPTW=([45]),"([01]{4})"$/.exec(upper))) {
      this.#ptw = m[2];
      return this.#reply([]);
    }
    if (upper === 'AT#XSOCKET=1,2,0') {
      const s = this.#openSocket();
      return this.#reply([`#XSOCKET: ${s.id},2,17`]);
    }
    if (upper === 'AT#XSOCKET=0') {
      if (this.#lastSocket === undefined) return this.#reply([], 'ERROR');
      this.#closeSocket(this.#lastSocket);
      return this.#reply(['#XSOCKET: 0,"closed"']);
    }
    if (upper === 'AT#XAPOLL=1,1') {
      this.#apoll = true;
      return this.#reply([]);
    }
    if ((m = /^AT#XSENDTO="([^"]+)",(\d+),0,"([0-9A-F]*)"$/.exec(upper))) {
      const s = this.#sockets.get(this.#lastSocket ?? -1);
      if (!s || !this.#registered || m[3]!.length % 2) return this.#reply([], 'ERROR');
      const data = hexBytes(m[3]!);
      this.#uplink(s, cmd.match(/^AT#XSENDTO="([^"]+)"/i)![1]!, Number(m[2]), data);
      return this.#reply([`#XSENDTO: ${data.length}`]);
    }
    if (upper === 'AT#XRECVFROM=0,64') {
      const s = [...this.#sockets.values()].find((x) => x.rx.length) ?? this.#sockets.get(this.#lastSocket ?? -1);
      const d = s?.rx.shift();
      if (!s || !d) return this.#reply([], 'ERROR'); // EAGAIN
      s.armed = true;
      this.#out(`\r\n#XRECVFROM: ${d.data.length},"${d.ip}",${d.port}\r\n`);
      this.#outBytes(d.data);
      this.#out('\r\nOK\r\n');
      if (s.rx.length && this.#apoll) {
        s.armed = false;
        this.#out(`\r\n#XAPOLL: ${s.id},1\r\n`);
      }
      return;
    }
    if ((m = /^AT#XSOCKETOPT=1,61,(\d)$/.exec(upper))) {
      // SO_RAI: NO_DATA (1) / LAST (2) release the RRC connection once the radio is done.
      if ((m[1] === '1' || m[1] === '2') && this.#radio === 'connected') {
        const wait = Math.max(0, this.#activeUntil - this.#clock.now());
        this.#after(wait, () => this.#release());
      }
      return this.#reply([]);
    }
    return this.#reply([], 'ERROR');
  }

  #bg95(cmd: string, upper: string): void {
    let m: RegExpExecArray | null;
    if ((m = /^AT\+QPTWEDRXS=2,([45]),"([01]{4})","([01]{4})"$/.exec(upper))) {
      this.#ptw = m[2];
      this.#edrx = { act: m[1] === '5' ? 'nb-iot' : 'lte-m', code: m[3]! };
      return this.#reply([]);
    }
    if (upper === 'AT+QIACT=1') return this.#reply([], this.#registered ? 'OK' : 'ERROR');
    if ((m = /^AT\+QIOPEN=1,(\d+),"UDP SERVICE","127\.0\.0\.1",0,0,1$/.exec(upper))) {
      const id = Number(m[1]);
      if (this.#sockets.has(id)) return this.#reply([], 'ERROR');
      this.#reply([]);
      if (!this.#registered) return this.#out(`\r\n+QIOPEN: ${id},566\r\n`);
      const s: SimSocket = { id, net: undefined, peer: undefined, rx: [], armed: true };
      this.#sockets.set(id, s);
      this.#lastSocket = id;
      return this.#out(`\r\n+QIOPEN: ${id},0\r\n`);
    }
    if ((m = /^AT\+QISEND=(\d+),(\d+),"([^"]+)",(\d+)$/.exec(upper))) {
      const s = this.#sockets.get(Number(m[1]));
      const len = Number(m[2]);
      if (!s || len < 1 || len > 1460) return this.#reply([], 'ERROR');
      const host = cmd.match(/,"([^"]+)",/)![1]!;
      const port = Number(m[4]);
      this.#out('> ');
      this.#payload = {
        need: len,
        got: [],
        size: 0,
        done: (data) => {
          if (!this.#registered) return this.#out('\r\nSEND FAIL\r\n');
          this.#uplink(s, host, port, data);
          this.#out('\r\nSEND OK\r\n');
        },
      };
      return;
    }
    if ((m = /^AT\+QIRD=(\d+),(\d+)$/.exec(upper))) {
      const s = this.#sockets.get(Number(m[1]));
      if (!s) return this.#reply([], 'ERROR');
      const d = s.rx.shift();
      if (!d) return this.#reply(['+QIRD: 0']);
      this.#out(`\r\n+QIRD: ${d.data.length},"${d.ip}",${d.port}\r\n`);
      this.#outBytes(d.data);
      this.#out('\r\n\r\nOK\r\n');
      return;
    }
    if ((m = /^AT\+QICLOSE=(\d+)$/.exec(upper))) {
      this.#closeSocket(Number(m[1]));
      return this.#reply([]);
    }
    return this.#reply([], 'ERROR');
  }
}

function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Granted seconds back to the octet the network would send (exact values only: granted = encodable). */
function bitsOf(seconds: number | null, timer2: boolean): string {
  if (seconds === null) return '11100000';
  return timer2 ? encodeTimer2(seconds) : encodeTimer3(seconds);
}
