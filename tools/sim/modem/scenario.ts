/*
 * One energy scenario: a local endpoint on the virtual clock, one battery device through the
 * simulated modem, N simulated days; returns charge per report, average current, charge per day
 * and (optionally) the recorded timeline of one wake cycle. Used by `npm run sim:power` and the bench.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Log } from '../../../src/platform/types';
import { silentLog } from '../../../src/platform/types';
import type { PowerMode, PowerProfile } from '../../../src/power/cycle';
import type { UplinkMode } from '../../../src/thingsboard/client';
import { startTbServer } from '../../tb-server/server';
import { ManualClock } from '../clock';
import type { Mark, Segment } from './energy';
import { makeTestPki } from '../../provision/certs';
import { MemoryNetwork } from './memory-net';
import { createPowerSim } from './power-sim';
import type { SimDialect, SimModemStats } from './sim-modem';

export interface ScenarioOptions {
  days: number;
  intervalMs: number;
  mode: PowerMode;
  dialect?: SimDialect;
  uplink?: UplinkMode;
  loss?: number;
  activityMs?: number;
  pagingMs?: number;
  edrxCycleMs?: number;
  rai?: boolean;
  /** Record the third wake cycle's timeline (for the picture). */
  record?: boolean;
  log?: Log;
  seed?: number;
  /** 'memory' (default): datagrams in memory, event-driven; 'loopback': real UDP on 127.0.0.1. */
  network?: 'memory' | 'loopback';
  /**
   * CoAPs with a token over one-way DTLS (test PKI, mbedTLS on both sides, loopback UDP), and what
   * the device does after each sleep: 'full' handshake, 'resume' the session, 'keep' it as it is.
   */
  dtls?: 'full' | 'resume' | 'keep';
}

export interface ScenarioResult {
  options: ScenarioOptions;
  days: number;
  reports: number;
  cycles: number;
  /** Readings the endpoint stored. */
  stored: number;
  chargeUAh: number;
  avgUa: number;
  perReportUAh: number;
  perDayUAh: number[];
  breakdown: Record<string, number>;
  traffic: { sent: number; received: number; bytesSent: number; bytesReceived: number };
  modem: SimModemStats;
  wallMs: number;
  /** Simulated device-days per wall second. */
  daysPerSecond: number;
  timeline?: { segments: Segment[]; marks: Mark[]; t0: number; t1: number };
  warnings: string[];
}

const DAY = 86_400_000;

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const wall0 = performance.now();
  const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
  // The endpoint saves its whole store (fsync + rename) after changes: on tmpfs when there is one.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tb-power-sim-'));
  const pki = o.dtls ? makeTestPki() : undefined;
  const tb = await startTbServer({
    coapPort: 0,
    httpPort: 0,
    dataDir: dir,
    clock,
    ...(pki ? { dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } } : {}),
  });
  (tb.store as unknown as { historyLimit: number }).historyLimit = 1_000_000;
  const warnings: string[] = [];
  const base = o.log ?? silentLog;
  const log: Log = { ...base, warn: (m) => (warnings.length < 100 && warnings.push(m), base.warn(m)) };
  try {
    const dev = tb.store.createDevice('battery-sim');
    const profile: PowerProfile = {
      powerMode: o.mode,
      psmActivityTimer: o.activityMs ?? 10000,
      pagingTransmissionWindow: o.pagingMs ?? 10000,
      edrxCycle: o.edrxCycleMs ?? 81920,
    };
    tb.store.updateDevice(dev, { power: { powerMode: o.mode, psmActivityTimer: profile.psmActivityTimer!, pagingTransmissionWindow: profile.pagingTransmissionWindow!, edrxCycle: profile.edrxCycle! } });
    const memory = o.network === 'loopback' || pki ? undefined : new MemoryNetwork();
    const detach = memory ? tb.attachCoapSocket(memory.socket, () => ({ kind: 'token' })) : undefined;
    let wakes = 0;
    let recordFrom = 0;
    let recordSleepAt = 0;
    const ps = createPowerSim({
      clock,
      server: { port: pki ? tb.coapsPort! : tb.coapPort },
      ...(pki ? { dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' }, dtlsAfterSleep: o.dtls! } : {}),
      token: dev.token,
      profile,
      reportingIntervalMs: o.intervalMs,
      ...(o.dialect ? { dialect: o.dialect } : {}),
      ...(o.uplink ? { uplink: o.uplink } : {}),
      ...(o.loss ? { loss: o.loss } : {}),
      ...(o.rai !== undefined ? { rai: o.rai } : {}),
      seed: o.seed ?? 1,
      log,
      ...(memory ? { memory } : {}),
      onPhase: (phase, t) => {
        if (!o.record) return;
        if (phase === 'wake') {
          wakes++;
          if (wakes === 3) {
            ps.energy.startRecording();
            recordFrom = t;
          } else if (wakes === 4) ps.energy.stopRecording();
        } else if (phase === 'sleep' && wakes === 3) recordSleepAt = t;
      },
    });
    ps.start();
    const perDay: number[] = [];
    let before = 0;
    for (let d = 1; d <= Math.ceil(o.days); d++) {
      await ps.runUntil(Math.min(o.days, d) * DAY);
      const now = ps.energy.chargeUAh;
      perDay.push(now - before);
      before = now;
    }
    const chargeUAh = ps.energy.chargeUAh;
    const reports = ps.events.filter((e) => e.type === 'report').length;
    const stored = (tb.store.telemetry(dev.id, ['temperature']).temperature ?? []).length;
    let timeline: ScenarioResult['timeline'];
    if (o.record && recordFrom) {
      const segs = ps.energy.segments;
      // From the wake to 5 s after the modem reached PSM (or 30 s after the MCU went to sleep).
      const sleepAt = recordSleepAt || recordFrom + 60_000;
      const psmAt = segs.find((s) => s.t0 >= sleepAt && s.modem === 'psm')?.t0 ?? segs.find((s) => s.t0 >= recordFrom && s.modem === 'psm' && s.t0 > sleepAt - 1)?.t0;
      const t1 = Math.min(segs.at(-1)?.t1 ?? sleepAt + 30_000, (psmAt ?? sleepAt + 25_000) + 5_000);
      timeline = { segments: [...segs], marks: [...ps.energy.marks], t0: recordFrom - 500, t1 };
    }
    const result: ScenarioResult = {
      options: o,
      days: o.days,
      reports,
      cycles: ps.cycle.cycles,
      stored,
      chargeUAh,
      avgUa: (chargeUAh / (o.days * 24)) * 1,
      perReportUAh: chargeUAh / Math.max(1, stored),
      perDayUAh: perDay,
      breakdown: ps.energy.breakdown(),
      traffic: { ...ps.traffic },
      modem: { ...ps.sim.stats },
      wallMs: performance.now() - wall0,
      daysPerSecond: 0,
      ...(timeline ? { timeline } : {}),
      warnings,
    };
    result.daysPerSecond = o.days / (result.wallMs / 1000);
    ps.stop();
    await detach?.();
    return result;
  } finally {
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Battery life in years for an average current (no self-discharge or derating). */
export function batteryYears(capacityMAh: number, avgUa: number): number {
  return (capacityMAh * 1000) / avgUa / 24 / 365;
}

/**
 * DTLS per wake, modelled from the bytes measured by `npm run bench` (bench/dtls-bytes.ts, README):
 * a report over CoAPs costs ~1.7 KB with a full handshake, 602 B after sleep with session
 * resumption, 181 B inside an established session (what "saved DTLS state" gives when the server
 * still knows the session at the new address: Connection ID; Debian's mbedTLS 2.28 has no CID).
 * Round trips and datagrams of the handshakes are those of DTLS 1.2 with a cookie exchange.
 */
export const DTLS_VARIANTS = Object.freeze([
  Object.freeze({ name: 'full handshake every wake', extraBytes: 1700 - 181, extraDatagrams: 9, extraRoundTrips: 3, cpuMs: 600 }),
  Object.freeze({ name: 'session resumption', extraBytes: 602 - 181, extraDatagrams: 5, extraRoundTrips: 2, cpuMs: 10 }),
  Object.freeze({ name: 'saved DTLS state (CID)', extraBytes: 0, extraDatagrams: 0, extraRoundTrips: 0, cpuMs: 0 }),
]);

/**
 * Extra charge of a DTLS variant per wake (µAh), on the simulated modem's link model: air time of
 * the bytes and per-datagram overhead at the active current, round trips waiting in RRC connected,
 * CPU time of the handshake at the MCU's active current; plus 29 B of record overhead (CCM_8) on
 * each of the wake's datagrams, for every variant.
 */
export function dtlsExtraUAh(
  v: (typeof DTLS_VARIANTS)[number],
  wakeDatagrams: number,
  link = { bytesPerSecond: 2500, burstOverheadMs: 100, latencyMs: 400, activeUa: 45000, connectedUa: 3000, mcuActiveUa: 25000 },
): number {
  const bytes = v.extraBytes + 29 * (wakeDatagrams + v.extraDatagrams);
  const activeMs = (bytes * 1000) / link.bytesPerSecond + v.extraDatagrams * link.burstOverheadMs;
  const waitMs = v.extraRoundTrips * 2 * link.latencyMs;
  const uAms = activeMs * link.activeUa + waitMs * link.connectedUa + v.cpuMs * link.mcuActiveUa;
  return uAms / 3_600_000;
}
