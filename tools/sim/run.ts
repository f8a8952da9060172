/*
 * One simulated device run for the command lines (npm start, npm run sim): --duration in device
 * time from the start whatever the server does, progress every few seconds of wall time, a summary
 * at the end, and the exit code (0 every reading delivered, 1 not).
 */
import type { TelemetrySource } from '../../src/device/app';
import type { Clock, Log } from '../../src/platform/types';
import type { SimDevice } from './device';
import { EXIT, fmtMs } from '../cli/options';

/** Wraps the device's sources: counts readings taken, and takes none once closed (run over). */
export class ReadingGate {
  taken = 0;
  closed = false;

  wrap(sources: TelemetrySource[]): TelemetrySource[] {
    return sources.map((s) => ({
      name: s.name,
      read: () => {
        if (this.closed) return undefined;
        const v = s.read();
        if (v && Object.keys(v).length) this.taken++;
        return v;
      },
    }));
  }
}

export interface RunOptions {
  sim: SimDevice;
  gate: ReadingGate;
  log: Log;
  /** Where the summary and progress lines go. */
  out: (line: string) => void;
  /** Device time to run, ms (undefined: until SIGINT/SIGTERM). */
  durationMs?: number;
  quiet: boolean;
  /** Wall time between progress lines (default 5 s). */
  progressMs?: number;
  /** The command line's reporting interval, when one was given (for the override note). */
  cliIntervalMs?: number;
  /** How the run describes where the interval came from (e.g. "--interval 10s"). */
  intervalOption?: string;
  /** The device's name on the local endpoint (npm start), for the override note. */
  deviceName?: string;
  /** "coap://127.0.0.1:5683", for the summary. */
  serverLabel: string;
  /** Wall-time grace at the end for a report already on its way to a server that answers. */
  drainMs?: number;
  /** Called after the device stopped, before the summary (e.g. close the local endpoint). */
  onStopped?: () => Promise<void>;
}

export interface RunSummary {
  deviceMs: number;
  wallMs: number;
  taken: number;
  delivered: number;
  queued: number;
  dropped: number;
  failures: number;
  datagramsSent: number;
  bytesSent: number;
  datagramsReceived: number;
  bytesReceived: number;
  stopped: string | null;
  transportError: string | null;
  exitCode: number;
}

/**
 * The device's log as the command line's user reads it: the app calls the interval it was
 * configured with "the build config" (the manifest on a device); here that is the command line.
 */
export function cliLog(log: Log): Log {
  const fix = (m: string) => m.replace(/the build config/g, 'the command line (--interval)').replace(/the build's/g, "the command line's");
  return { debug: (m) => log.debug(fix(m)), info: (m) => log.info(fix(m)), warn: (m) => log.warn(fix(m)), error: (m) => log.error(fix(m)) };
}

/** Starts the device and resolves with the exit code once the run is over (summary printed). */
export function runDevice(o: RunOptions): Promise<number> {
  const { sim, gate, log, out } = o;
  const app = sim.app;
  const clock: Clock = sim.clock;
  const start = clock.now();
  const wallStart = performance.now();
  const droppedAtStart = app.state.dropped;
  let delivered = 0;
  let lastAnswered = false;
  let overrideNoted = false;
  let transportError: string | null = null;
  let finishing = false;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));

  const noteOverride = () => {
    if (overrideNoted || o.cliIntervalMs === undefined || app.intervalSource !== 'server' || app.intervalMs === o.cliIntervalMs) return;
    overrideNoted = true;
    log.warn(
      `the server's reporting interval (${app.intervalMs / 1000} s) overrides ${o.intervalOption ?? 'the command line'} (${o.cliIntervalMs / 1000} s); ` +
        `to go back: npm run tb-server -- delete-shared ${o.deviceName ?? 'DEVICE'} reportingInterval${o.deviceName ? ', or npm start -- --fresh' : ''}`,
    );
  };

  const previous = app.onEvent;
  app.onEvent = (e) => {
    if (e.type === 'report') {
      delivered += e.records;
      lastAnswered = true;
    } else if (e.type === 'report-failed') lastAnswered = false;
    else if (e.type === 'interval') noteOverride();
    else if (e.type === 'stopped') {
      log.error(`device stopped: ${e.reason}`);
      // Nothing will be sent any more: end the run now rather than wait out --duration.
      void finish('the device stopped');
    }
    previous?.(e);
  };

  // A socket error (an address that cannot be reached from here, a port refused...) is reported
  // once, and ends the run: it would repeat on every retransmission otherwise.
  const udp = sim.udp;
  const inner = udp.onError;
  udp.onError = (err) => {
    if (transportError !== null) return;
    const code = (err as { code?: string }).code;
    transportError = `${code ? `${code}: ` : ''}${err.message}`;
    log.error(`cannot send to ${o.serverLabel}: ${transportError}`);
    void finish('transport error');
    inner?.(err);
  };

  const summary = (): RunSummary => {
    const st = app.state;
    const stats = udp.stats;
    const s: RunSummary = {
      deviceMs: Math.round(clock.now() - start),
      wallMs: Math.round(performance.now() - wallStart),
      taken: gate.taken,
      delivered,
      queued: st.queued,
      dropped: st.dropped - droppedAtStart,
      failures: st.failures,
      datagramsSent: stats.datagramsSent,
      bytesSent: stats.bytesSent,
      datagramsReceived: stats.datagramsReceived,
      bytesReceived: stats.bytesReceived,
      stopped: st.stopped,
      transportError,
      exitCode: EXIT.RUNTIME,
    };
    s.exitCode = s.delivered > 0 && s.queued === 0 && s.dropped === 0 && !s.stopped && !transportError ? EXIT.OK : EXIT.RUNTIME;
    return s;
  };

  const progressLine = () => {
    const s = summary();
    const of = o.durationMs !== undefined ? ` of ${fmtMs(o.durationMs)}` : '';
    out(`progress: ${(s.deviceMs / 1000).toFixed(0)} s${of} device time: ${s.taken} readings, ${s.delivered} delivered, ${s.queued} queued, ${s.failures} failed reports`);
  };
  const progress = o.quiet ? undefined : setInterval(progressLine, o.progressMs ?? 5000);
  progress?.unref();

  let durationTimer: unknown;
  const finish = async (why: string): Promise<void> => {
    if (finishing) return;
    finishing = true;
    if (progress) clearInterval(progress);
    if (durationTimer !== undefined) clock.clearTimer(durationTimer as never);
    gate.closed = true; // no reading after the end
    // A report on its way to a server that has been answering: give it a moment (wall time).
    if (why === 'duration' && lastAnswered && !app.tb.stopped && app.state.queued > 0) {
      const until = performance.now() + (o.drainMs ?? 3000);
      while (app.state.queued > 0 && performance.now() < until && !app.tb.stopped) await new Promise((r) => setTimeout(r, 20));
    }
    const s = summary();
    app.stop();
    try {
      await o.onStopped?.();
    } catch (e) {
      log.warn(`stopping: ${(e as Error).message}`);
    }
    for (const line of formatSummary(s, o.serverLabel, why)) out(line);
    resolveDone(s.exitCode);
  };

  // Device time from the start, set before anything waits on the network.
  if (o.durationMs !== undefined) durationTimer = clock.setTimer(() => void finish('duration'), o.durationMs);
  const onSignal = () => void finish('interrupted');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  if (app.intervalSource === 'server') noteOverride();
  app.start().catch((e: Error) => {
    log.error(`device: ${e.message}`);
    void finish('error');
  });
  return done;
}

export function formatSummary(s: RunSummary, server: string, why: string): string[] {
  const verdict =
    s.exitCode === EXIT.OK
      ? 'every reading delivered'
      : s.transportError
        ? `could not send: ${s.transportError}`
        : s.stopped
          ? `the device stopped: ${s.stopped}`
          : s.delivered === 0
            ? `nothing delivered (no answer from ${server}?)`
            : `${s.queued + s.dropped} readings not delivered`;
  const end = why === 'duration' ? '--duration reached' : why;
  return [
    `summary (${end}): ${(s.deviceMs / 1000).toFixed(1)} s device time, ${(s.wallMs / 1000).toFixed(1)} s wall, server ${server}`,
    `  readings: ${s.taken} taken, ${s.delivered} delivered, ${s.queued} queued, ${s.dropped} dropped`,
    `  traffic:  ${s.datagramsSent} datagrams sent (${s.bytesSent} B), ${s.datagramsReceived} received (${s.bytesReceived} B)`,
    `  failures: ${s.failures} failed reports${s.stopped ? `; stopped: ${s.stopped}` : ''}${s.transportError ? `; transport: ${s.transportError}` : ''}`,
    `exit ${s.exitCode}: ${verdict}`,
  ];
}
