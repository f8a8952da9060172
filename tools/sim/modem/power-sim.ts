/*
 * One battery device, end to end, on a virtual clock: the unchanged firmware (DeviceApp, schedule
 * 'external') driven by the wake cycle (src/power), talking through an AT modem driver (src/modem)
 * to the simulated modem (tools/sim/modem/sim-modem.ts), whose sockets are real loopback UDP to
 * the local endpoint (tools/tb-server, given the same clock for its PSM state).
 *
 * Event-driven time: the clock jumps from timer to timer; between two timers the harness waits
 * (bounded) until the loopback traffic is quiet, so a day of device time takes seconds.
 */
import type { DeviceConfig, DeviceEvent } from '../../../src/device/app';
import type { DtlsConfig } from '../../../src/thingsboard/connect';
import { loadDtlsEngine } from '../../../hardware/dtls/index';
import { DeviceApp } from '../../../src/device/app';
import { AtChannel } from '../../../src/modem/at';
import { Bg95, BG95_BOOT_LINES } from '../../../src/modem/bg95';
import type { AtModem, ModemDatagram } from '../../../src/modem/modem';
import { Nrf91Slm, SLM_BOOT_LINES } from '../../../src/modem/nrf91-slm';
import type { Datagram, Log, Platform } from '../../../src/platform/types';
import { silentLog } from '../../../src/platform/types';
import type { PowerProfile, WakePhase } from '../../../src/power/cycle';
import { WakeCycle } from '../../../src/power/cycle';
import type { UplinkMode } from '../../../src/thingsboard/client';
import type { ManualClock } from '../clock';
import { flushMicrotasks } from '../clock';
import { SeededRandom } from '../random';
import { UdpDatagram } from '../udp';
import type { UdpFaults } from '../udp';
import { EnergyMeter } from './energy';
import type { MemoryNetwork } from './memory-net';
import type { SimDialect, SimModemOptions } from './sim-modem';
import { SimModem } from './sim-modem';
import { SimSleep } from './sleep';

export interface PowerSimOptions {
  clock: ManualClock;
  server: { host?: string; port: number };
  token: string;
  dialect?: SimDialect;
  profile: PowerProfile;
  reportingIntervalMs: number;
  uplink?: UplinkMode;
  /** Datagram loss on the loopback UDP, each way, as a probability (seeded). */
  loss?: number;
  seed?: number;
  modem?: Partial<Omit<SimModemOptions, 'clock' | 'dialect' | 'network' | 'energy'>>;
  rai?: boolean;
  log?: Log;
  trace?: (line: string) => void;
  onPhase?: (phase: WakePhase, t: number) => void;
  /**
   * Carry the datagrams over this in-memory network (attached to the endpoint with
   * attachCoapSocket) instead of real loopback UDP: no wall-time waits between timers.
   */
  memory?: MemoryNetwork;
  /** coaps://: DTLS over the modem's socket (the endpoint's CoAPs port in `server.port`). */
  dtls?: DtlsConfig;
  /** DTLS after each sleep: restore the saved connection (default), resume, full handshake, or keep (see DtlsAfterSleep). */
  dtlsAfterSleep?: 'restore' | 'resume' | 'full' | 'keep';
}

export interface PowerSim {
  clock: ManualClock;
  sim: SimModem;
  at: AtChannel;
  modem: AtModem;
  datagram: ModemDatagram;
  app: DeviceApp;
  cycle: WakeCycle;
  energy: EnergyMeter;
  /** The app's events with the clock time they happened at. */
  events: (DeviceEvent & { t: number })[];
  /** Starts the wake cycle (attach, then a cycle every interval). */
  start(): void;
  /** Runs device time forward to `untilMs` (clock time), letting real I/O settle between timers. */
  runUntil(untilMs: number): Promise<void>;
  stop(): void;
  /** Loopback datagrams so far (both ways, all sockets). */
  readonly traffic: { sent: number; received: number; bytesSent: number; bytesReceived: number };
}

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

export function createPowerSim(o: PowerSimOptions): PowerSim {
  const { clock } = o;
  const log = o.log ?? silentLog;
  const energy = new EnergyMeter(clock);
  const traffic = { sent: 0, received: 0, bytesSent: 0, bytesReceived: 0 };
  const faultRandom = new SeededRandom(o.seed ?? 1);
  const faults: UdpFaults = o.loss ? { lossOut: o.loss, lossIn: o.loss, random: () => faultRandom.next() } : {};
  const sockets = new Set<UdpDatagram>();
  const memory = o.memory;
  if (memory && o.loss) {
    memory.loss = o.loss;
    memory.random = () => faultRandom.next();
  }
  const network = (host: string, port: number): Datagram => {
    if (memory) {
      const m = memory.open();
      const w = {
        onReceive: undefined as ((d: Uint8Array) => void) | undefined,
        send(d: Uint8Array) {
          traffic.sent++;
          traffic.bytesSent += d.length;
          m.send(d);
        },
        close: () => m.close(),
        get localPort() {
          return m.localPort;
        },
      };
      m.onReceive = (d) => {
        traffic.received++;
        traffic.bytesReceived += d.length;
        w.onReceive?.(d);
      };
      return w;
    }
    const u = new UdpDatagram(host, port);
    u.faults = faults;
    sockets.add(u);
    const w = {
      onReceive: undefined as ((d: Uint8Array) => void) | undefined,
      send(d: Uint8Array) {
        traffic.sent++;
        traffic.bytesSent += d.length;
        u.send(d);
      },
      close() {
        sockets.delete(u);
        u.close();
      },
      get localPort() {
        return u.localPort;
      },
    };
    u.onReceive = (d) => {
      traffic.received++;
      traffic.bytesReceived += d.length;
      w.onReceive?.(d);
    };
    return w;
  };
  const dialect = o.dialect ?? 'nrf91-slm';
  const sim = new SimModem({ clock, dialect, network, energy, ...(o.trace ? { trace: o.trace } : {}), ...o.modem });
  const at = new AtChannel(sim.serial, { clock, log, bootLines: dialect === 'bg95' ? BG95_BOOT_LINES : SLM_BOOT_LINES });
  const modem: AtModem = dialect === 'bg95' ? new Bg95({ at, clock, log }) : new Nrf91Slm({ at, clock, log, rai: o.rai ?? true });
  const host = o.server.host ?? '127.0.0.1';
  const datagram = modem.openDatagram(host, o.server.port);
  const platform: Platform = { clock, random: new SeededRandom((o.seed ?? 1) + 7), log, net: { open: () => datagram } };
  if (o.dtls) platform.dtls = loadDtlsEngine().create;
  const config: DeviceConfig = {
    server: { host, port: o.server.port },
    credentials: { kind: 'token', token: o.token },
    reportingIntervalMs: o.reportingIntervalMs,
    transmission: 'nbiot',
    uplink: o.uplink ?? 'con',
    schedule: 'external',
    observeRefreshMs: 0,
    queueSize: 256,
    // NB-IoT: a wake from PSM (service request) plus a round trip is well above DTLS's usual 1-2 s
    // first retransmission; a retransmitted ClientHello makes mbedTLS's server start over while the
    // client finishes the first exchange, and the client's Finished then fails the server's MAC.
    ...(o.dtls ? { dtls: { retransmitMs: 5000, ...o.dtls } } : {}),
  };
  let n = 0;
  const source = { name: 'sim', read: () => ({ temperature: Math.round((20 + 3 * Math.sin(n++ / 20)) * 100) / 100, batteryVoltage: 3.6 }) };
  const app = new DeviceApp(platform, config, [source], datagram);
  const events: (DeviceEvent & { t: number })[] = [];
  app.onEvent = (e) => {
    if (events.length < 100_000) events.push({ ...e, t: clock.now() });
  };
  const sleep = new SimSleep(clock, energy);
  const cycle = new WakeCycle({
    app,
    modem,
    datagram,
    clock,
    sleep,
    log,
    profile: o.profile,
    rai: o.rai ?? true,
    ...(o.dtlsAfterSleep ? { dtlsAfterSleep: o.dtlsAfterSleep } : {}),
    onPhase: (p) => {
      o.onPhase?.(p, clock.now()); // first: it may start a recording that should hold this mark
      energy.mark(`[${p}]`);
    },
  });

  let seen = 0;
  const activity = () => traffic.sent + traffic.received;
  // Between timers: until the loopback has been quiet for 3 checks of 2 ms (at most ~400 ms).
  let seenMemory = -1;
  const settleMemory = async () => {
    // Promise jobs first; when no datagram moved, that is all a timer needs.
    await flushMicrotasks();
    if (memory!.activity + activity() === seenMemory) return;
    // In memory every datagram crosses in one setImmediate turn: run turns until nothing moves.
    for (let i = 0, quiet = 0; i < 200 && quiet < 2; i++) {
      const before = memory!.activity + activity();
      await tick();
      quiet = memory!.activity + activity() === before ? quiet + 1 : 0;
    }
    seenMemory = memory!.activity + activity();
  };
  const settleLoopback = async () => {
    await tick();
    if (activity() === seen) return;
    for (let i = 0, quiet = 0; i < 100 && quiet < 3; i++) {
      const before = activity();
      await sleepMs(2);
      await tick();
      quiet = activity() === before ? quiet + 1 : 0;
    }
    seen = activity();
  };

  let running: Promise<void> | undefined;
  return {
    clock,
    sim,
    at,
    modem,
    datagram,
    app,
    cycle,
    energy,
    events,
    traffic,
    start() {
      running = cycle.run().catch((e: Error) => log.error(`wake cycle stopped: ${e.message}`));
    },
    async runUntil(untilMs: number) {
      // Bounded: each step advances the clock by up to an hour.
      const settle = memory ? settleMemory : settleLoopback;
      for (let i = 0; i < 1_000_000 && clock.now() < untilMs; i++) await clock.advanceAsync(Math.min(3_600_000, untilMs - clock.now()), settle);
    },
    stop() {
      cycle.stop();
      app.stop();
      sim.close();
      for (const s of sockets) s.close();
      void running;
    },
  };
}
