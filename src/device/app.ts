/*
 * The firmware's behaviour: read the sensors on a schedule, report telemetry, take the reporting
 * interval from a shared attribute, answer RPC (getState, setInterval), and lose nothing when
 * the network or the server fails (bounded queue, replayed with original timestamps, paced).
 *
 * Shared attribute `reportingInterval` (seconds) sets the schedule; RPC `setInterval` with
 * params `{"interval": seconds}` (or a bare number) does the same and reports it back as the
 * client attribute `reportingInterval`.
 */
import type { Datagram, Platform, TimerHandle } from '../platform/types';
import type { ThingsBoardDeviceApi } from '../thingsboard/api';
import type { LinkConfig } from '../thingsboard/connect';
import { ThingsBoardLink } from '../thingsboard/connect';
import type { TbSubscription } from '../thingsboard/client';
import { TbError } from '../thingsboard/errors';
import type { RpcRequest, TbObject, TbValue } from '../thingsboard/payload';
import type { Reading, ReadingQueue } from '../storage/queue';
import { RamQueue } from '../storage/queue';
import type { SettingsStore } from '../storage/settings';
import type { SessionStore } from '../storage/session';
import type { CertificateValidity } from '../storage/credentials';
import { CLOCK_SET_AFTER_MS, validityProblem } from '../storage/credentials';
import type { ProvisioningConfig } from './provisioning';
import { ProvisionBackoff, confirmProvisioned, needsProvisioning, provision } from './provisioning';

/** Something that yields telemetry values for one cycle (a sensor mapped to ThingsBoard keys). */
export interface TelemetrySource {
  readonly name: string;
  /** Values keyed by ThingsBoard telemetry key; undefined when the reading failed (not reported). */
  read(): TbObject | undefined;
}

/**
 * The device's configuration. Where and how it talks to ThingsBoard (server, credentials, the
 * scheme's transport and security, payload codec) is a LinkConfig: src/thingsboard/connect.ts
 * builds the transport from it; the app only sees the ThingsBoard device API.
 */
export interface DeviceConfig extends LinkConfig {
  /** Initial reporting interval; shared attribute `reportingInterval` (seconds) overrides it. */
  reportingIntervalMs?: number;
  /** Records kept in RAM while the server is unreachable (oldest dropped and counted when full); without `storage.queue`. */
  queueSize?: number;
  /**
   * Flash-backed state (src/storage): `queue` keeps readings until the server confirmed them, across
   * reboots and power cuts (a FlashQueue; without it a RamQueue of `queueSize`); `settings` keeps
   * the reporting interval the server set, applied at the next boot over `reportingIntervalMs`;
   * `session` keeps the DTLS session across reboots (saved after each handshake when it changed,
   * offered at the next boot when `dtls.session` is not given).
   */
  storage?: { queue?: ReadingQueue; settings?: SettingsStore; session?: SessionStore };
  /**
   * Network provisioning (src/device/provisioning.ts): when the credentials record in `store`
   * holds a provisioning key/secret and no confirmed token, the device gets its token from
   * POST /api/v1/provision first and sends nothing else before (readings are still taken and
   * queued; provisioning is retried at each reading while the server does not answer).
   */
  provisioning?: ProvisioningConfig;
  /**
   * The device certificate's validity, when the boot check could not judge it because the clock was
   * not set (loadSecurity's certificateValidity): judged before the first exchange once the clock is
   * set; outside it, the device stops with the reason instead of sending.
   */
  certificateValidity?: CertificateValidity;
  /** Records per telemetry POST when replaying the queue. */
  batchSize?: number;
  /** Pause between replay batches: ThingsBoard rate-limits bursts (answers 5.00). */
  replayPaceMs?: number;
  firmware?: { title: string; version: string };
  /** Firmware update over the air (src/ota OtaAgent): sees the shared attributes and each registration with the server. */
  ota?: OtaHook;
  /**
   * Re-register the Observe relations after a confirmed report whose uplink followed at least this
   * long without an exchange with the server (a response, a notification, an RPC), and after the first confirmed report that
   * follows failed ones (0 = never). Behind a NAT, a UDP mapping that expired in the silence comes
   * back on a new port, and ThingsBoard keeps notifying the old one (issue #5263): shared-attribute
   * updates and RPC would never arrive again. Default OBSERVE_REFRESH_MS (25 s), below the shortest
   * common NAT UDP timeout (30 s: Linux conntrack, many home routers and carrier NATs; RFC 4787
   * asks for 2 min but is widely ignored). With the default 60 s reporting interval that means
   * re-registering after every report (two GET + two responses, ~100 B); a device reporting more
   * often than every 25 s keeps its mapping alive and never re-registers.
   */
  observeRefreshMs?: number;
  /**
   * 'timer' (default): the app samples and reports on its own clock timer. 'external': no timer;
   * the owner calls reportNow() (the power layer's wake cycle, src/power, which sleeps in between).
   */
  schedule?: 'timer' | 'external';
}

/** What the app tells a firmware-update agent (src/ota/agent.ts implements it). */
export interface OtaHook {
  /** Once, from the constructor: the clients the agent talks through. */
  attach(app: { tb: ThingsBoardDeviceApi }): void;
  /** Every shared-attribute notification (and the registration's snapshot), from the receive path: defer the work. */
  onSharedAttributes(shared: TbObject, deleted: string[]): void;
  /** The device registered with the server (after boot, and again after provisioning). */
  onConnected(): void;
  stop(): void;
}

export type DeviceEvent =
  | { type: 'started' }
  | { type: 'report'; records: number; queued: number }
  | { type: 'report-failed'; error: string; queued: number }
  | { type: 'attributes'; shared: TbObject; deleted: string[] }
  | { type: 'interval'; ms: number }
  | { type: 'rpc'; method: string; id: number }
  | { type: 'stopped'; reason: string };

export interface DeviceState {
  [key: string]: TbValue;
  reportingInterval: number;
  uptimeMs: number;
  reports: number;
  failures: number;
  queued: number;
  dropped: number;
  stopped: string | null;
}

/** Default observeRefreshMs: below the shortest common NAT UDP mapping timeout (30 s). */
export const OBSERVE_REFRESH_MS = 25_000;

const MIN_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 24 * 3600 * 1000;

export class DeviceApp {
  onEvent?: (event: DeviceEvent) => void;
  /** The ThingsBoard device API over the transport the server URL names. */
  readonly tb: ThingsBoardDeviceApi;
  /** The transport under `tb` (src/thingsboard/connect.ts): its security layer, stats and hooks. */
  readonly link: ThingsBoardLink;
  #platform: Platform;
  #config: DeviceConfig;
  #sources: TelemetrySource[];
  #intervalMs: number;
  #timer: TimerHandle | undefined;
  #startedAt = 0;
  #queue: ReadingQueue;
  #settings: SettingsStore | undefined;
  /** The build's (manifest / CLI) interval, and where the current one came from. */
  #buildIntervalMs: number;
  #intervalSource: 'build' | 'server';
  /** Clock time the next reading is due (sampling runs on the clock, whatever the network does). */
  #nextDue = 0;
  #batchSize: number;
  #replayPaceMs: number;
  #reports = 0;
  #failures = 0;
  #flushing = false;
  /** Last exchange with the server, and whether an uplink followed a silence long enough for the NAT to forget us. */
  #lastTraffic = 0;
  #mappingMayHaveChanged = false;
  /** A report failed since the last confirmed one (the server or the path may have lost our observations). */
  #failedSinceReport = false;
  /** The next attribute notification is the full snapshot of a (re-)registration. */
  #snapshotDue = false;
  /** Announce + Observe registrations, started once the device has credentials the server knows. */
  #setup: Promise<void> | undefined;
  #provisioned = true;
  #provisioning: Promise<boolean> | undefined;
  /** A token from an earlier provisioning attempt, to mark 'done' once the server accepts it. */
  #provisionUnverified = false;
  /** Refusals (NOT_FOUND / FAILURE) wait before the next attempt, doubling. */
  #provisionBackoff: ProvisionBackoff | undefined;
  /** Not judged at boot (clock not set): judged once it is. */
  #certificateValidity: CertificateValidity | undefined;
  #startedEmitted = false;
  /** Consecutive reports that got no response at all. */
  #timeouts = 0;
  #running = false;
  #subscriptions: TbSubscription[] = [];

  constructor(platform: Platform, config: DeviceConfig, sources: TelemetrySource[], transport?: Datagram) {
    this.#platform = platform;
    this.#config = config;
    this.#sources = sources;
    this.#buildIntervalMs = clampInterval(config.reportingIntervalMs ?? 60000);
    this.#intervalMs = this.#buildIntervalMs;
    this.#intervalSource = 'build';
    this.#settings = config.storage?.settings;
    const stored = this.#settings?.load().reportingInterval;
    if (stored !== undefined) {
      this.#intervalMs = clampInterval(stored * 1000);
      this.#intervalSource = 'server';
    }
    this.#queue = config.storage?.queue ?? new RamQueue(config.queueSize ?? 64);
    if (config.provisioning && needsProvisioning(config.provisioning.store.load())) {
      this.#provisioned = false;
      this.#provisionBackoff = new ProvisionBackoff(config.provisioning.retryMs);
    }
    this.#certificateValidity = config.certificateValidity;
    this.#batchSize = Math.min(config.batchSize ?? 10, config.codec?.maxTelemetryRecords ?? Infinity);
    this.#replayPaceMs = config.replayPaceMs ?? 1000;
    this.link = new ThingsBoardLink(platform, config, {
      ...(transport ? { datagram: transport } : {}),
      ...(config.storage?.session ? { sessions: config.storage.session } : {}),
      events: {
        onStopped: (reason) => this.onEvent?.({ type: 'stopped', reason: reason.message }),
        onSecureSession: (info) => {
          // A new session after the first one (server restart, reconnect after silence) carries no
          // observe relations: the server forgot them with the old session. Register them again.
          // With an external schedule the power layer re-registers after each wake's handshake
          // itself, before it sends the telemetry (src/power/cycle.ts): registering here too would double it.
          if (info.forgetsObservations && info.count > 1 && this.#running && this.#subscriptions.length && this.#config.schedule !== 'external') void this.resubscribe();
        },
      },
    });
    this.tb = this.link.tb;
    config.ota?.attach({ tb: this.tb });
  }

  /** The security session (DTLS or TLS) to keep across sleep (pass back as dtls.session / tls.session), or null. */
  securitySession(): Uint8Array | null {
    return this.link.securitySession();
  }

  /** Before deep sleep (WakeCycle, 'restore'): the DTLS connection saved to the flash store. */
  saveDtlsContext(): boolean {
    return this.link.saveSecurityContext();
  }

  /** The secure datagram layer the power layer re-handshakes after a wake (coaps:// only). */
  get dtls(): ThingsBoardLink['dtls'] {
    return this.link.dtls;
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Where the reporting interval in force came from: the build (manifest / CLI) or the server. */
  get intervalSource(): 'build' | 'server' {
    return this.#intervalSource;
  }

  /**
   * Notes traffic with the server (a response or a notification just came in): the NAT mapping is
   * alive now. Called inline where the app sees the traffic, not from a wrapper around the socket:
   * on XS the receive path is already deep (stack of a few hundred slots).
   */
  #noteTraffic(): void {
    this.#lastTraffic = this.#platform.clock.now();
  }

  get state(): DeviceState {
    return {
      reportingInterval: this.#intervalMs / 1000,
      uptimeMs: Math.round(this.#platform.clock.now() - this.#startedAt),
      reports: this.#reports,
      failures: this.#failures,
      queued: this.#queue.length,
      dropped: this.#queue.dropped,
      stopped: this.tb.stopped?.message ?? null,
    };
  }

  /**
   * Announces the firmware, subscribes to shared attributes and RPC, then reports at once and on
   * the schedule. Subscription failures are logged, not fatal: telemetry still flows.
   */
  async start(): Promise<void> {
    const { log } = this.#platform;
    this.#running = true;
    this.#startedAt = this.#platform.clock.now();
    if (this.#intervalSource === 'server')
      log.info(`reporting interval ${this.#intervalMs / 1000} s: the server's value stored in flash wins over the build's ${this.#buildIntervalMs / 1000} s`);
    else log.info(`reporting interval ${this.#intervalMs / 1000} s from the build config${this.#settings ? ' (no server value stored)' : ''}`);
    // The first reading at once, then on the clock: sampling never waits for the network (not even
    // for the registrations below, which take minutes of retransmissions when the server is down).
    this.#sample();
    this.#nextDue = this.#platform.clock.now() + this.#intervalMs;
    this.#schedule();
    if (await this.#ready()) await (this.#setup ??= this.#announceAndSubscribe());
    else {
      this.#emitStarted();
      if (!this.tb.stopped) log.warn('not provisioned yet: readings are queued, provisioning is tried again at the next reading');
      return;
    }
    await this.#deliver();
  }

  /**
   * True once the device has credentials the server knows: at once without provisioning, else
   * after POST /api/v1/provision (one attempt at a time).
   */
  async #ready(): Promise<boolean> {
    if (!this.#certificateStillValid()) return false;
    if (this.#provisioned) return true;
    if (this.tb.stopped || !this.#config.provisioning) return false;
    const cfg = this.#config.provisioning;
    const { clock, log } = this.#platform;
    if (this.#provisionBackoff?.waiting(clock.now())) return false;
    this.#provisioning ??= provision(this.tb, cfg, this.#platform.random, log)
      .then((outcome) => {
        if (outcome.kind === 'done' || outcome.kind === 'unverified') {
          this.tb.resume(outcome.credentials);
          this.#provisionUnverified = outcome.kind === 'unverified';
          this.#provisioned = true;
          // The server maps a certificate to its device only while verifying it.
          if (outcome.credentials.kind === 'x509' && outcome.kind === 'done') this.link.certificateRegistered();
          return true;
        }
        if (outcome.kind === 'refused') {
          // Reported, not fatal: the profile may be created or fixed at the server later.
          const wait = this.#provisionBackoff!.refused(clock.now());
          log.error(`${outcome.reason}; next attempt in ${Math.round(wait / 1000)} s (readings are kept)`);
        } else log.warn(outcome.reason);
        return false;
      })
      .catch((e: Error) => {
        this.#platform.log.error(`provisioning: ${e.message}`);
        return false;
      })
      .finally(() => {
        this.#provisioning = undefined;
      });
    return this.#provisioning;
  }

  /** False (and stopped) once a certificate not judged at boot is judged outside its validity. */
  #certificateStillValid(): boolean {
    const v = this.#certificateValidity;
    if (!v) return true;
    const now = this.#platform.clock.epochMs();
    if (now < CLOCK_SET_AFTER_MS) return true; // still not set: judged later
    this.#certificateValidity = undefined; // judged now, once
    const problem = validityProblem('cert', v, now);
    if (!problem) return true;
    const reason = new TbError('security', problem);
    this.#platform.log.error(`${problem} (judged now that the clock is set)`);
    this.tb.halt(reason);
    this.onEvent?.({ type: 'stopped', reason: reason.message });
    return false;
  }

  #emitStarted(): void {
    if (this.#startedEmitted) return;
    this.#startedEmitted = true;
    this.onEvent?.({ type: 'started' });
  }

  /** Announces the firmware and registers the observations (once). */
  async #announceAndSubscribe(): Promise<void> {
    const { log } = this.#platform;
    const fw = this.#config.firmware;
    const attributes = {
      reportingInterval: this.#intervalMs / 1000,
      ...(fw ? { current_fw_title: fw.title, current_fw_version: fw.version } : {}),
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.tb.sendAttributes(attributes);
        if (this.#provisionUnverified && this.#config.provisioning) {
          this.#provisionUnverified = false;
          confirmProvisioned(this.#config.provisioning, log);
        }
        break;
      } catch (e) {
        if (this.link.recoverUnauthorized(e)) continue;
        if (this.#provisionUnverified && e instanceof TbError && e.code === 'unauthorized') {
          // Refused to provision again AND the saved credentials are unknown: provisioning failed.
          // Back to provisioning, after the back-off (never a loop).
          this.#provisionUnverified = false;
          this.#provisioned = false;
          this.#setup = undefined;
          this.tb.resume();
          const wait = this.#provisionBackoff?.refused(this.#platform.clock.now()) ?? 0;
          log.error(`provisioning failed: the server refuses to provision this device and does not know its saved credentials (${e.message}); next attempt in ${Math.round(wait / 1000)} s`);
          return;
        }
        log.warn((e as Error).message);
        break;
      }
    }
    if (!this.tb.stopped) {
      const attrs = this.tb.subscribeAttributes(
        (u) => this.#onAttributes(u.shared, u.deleted),
        (reason) => reason && log.warn(`attribute subscription ended: ${reason.message}`),
      );
      const rpc = this.tb.subscribeRpc(
        (r) => this.#onRpc(r),
        (reason) => reason && log.warn(`RPC subscription ended: ${reason.message}`),
      );
      this.#subscriptions = [attrs, rpc];
      this.#snapshotDue = true;
      for (const [name, s] of [['attributes', attrs], ['RPC', rpc]] as const) {
        try {
          await s.registered;
        } catch (e) {
          log.warn(`${name} subscription failed: ${(e as Error).message}`);
        }
      }
    }
    this.#emitStarted();
    const stopped = this.tb.stopped;
    if (stopped) log.error(`device started but not sending: ${stopped.message}`);
    else log.info(`device started: reporting every ${this.#intervalMs / 1000} s`);
    // A connection-oriented link refuses bad credentials, or fails closed, when the connection opens, before any request: say so.
    if (stopped && this.link.connectionOriented) this.onEvent?.({ type: 'stopped', reason: stopped.message });
    this.#mappingMayHaveChanged = false; // just registered
    this.#noteTraffic();
    if (!this.tb.stopped) this.#config.ota?.onConnected();
  }

  /** Re-registers the observations (after a wake-up or an address change). */
  async resubscribe(): Promise<void> {
    this.#snapshotDue = true;
    await Promise.all(this.#subscriptions.map((s) => s.reregister().catch((e: Error) => this.#platform.log.warn(`re-register failed: ${e.message}`))));
    this.#noteTraffic();
  }

  stop(): void {
    this.#running = false;
    this.#config.ota?.stop();
    if (this.#timer !== undefined) this.#platform.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    for (const s of this.#subscriptions) void s.cancel().catch(() => undefined);
    this.#subscriptions = [];
    this.link.close();
  }

  /** Takes one reading of every source into the queue, without sending it (the wake cycle sends later). */
  sample(): void {
    this.#sample();
  }

  /** Takes one reading of every source into the queue and flushes what the server will take. */
  async reportNow(): Promise<void> {
    this.#sample();
    await this.#deliver();
  }

  /** Reads every source into the queue (with the clock's epoch time as its ts). */
  #sample(): void {
    const values: TbObject = {};
    for (const source of this.#sources) {
      let v: TbObject | undefined;
      try {
        v = source.read();
      } catch (e) {
        this.#platform.log.warn(`sensor ${source.name}: ${(e as Error).message}`);
      }
      if (v) Object.assign(values, v);
    }
    if (Object.keys(values).length) this.#enqueue({ ts: this.#platform.clock.epochMs(), values });
  }

  /** Flushes the queue, then re-registers the observations if they may be stale. */
  async #deliver(): Promise<void> {
    if (!this.#certificateStillValid()) return;
    if (!this.#provisioned) {
      // Not provisioned at start: try again now, and set up once it worked.
      if (!(await this.#ready())) return;
      await (this.#setup ??= this.#announceAndSubscribe());
      if (!this.#provisioned) return; // the saved credentials were refused: backing off
    }
    const reportsBefore = this.#reports;
    await this.flush();
    if (this.#reports === reportsBefore) return;
    // A confirmed uplink just went out through the current NAT mapping. If it followed a silence
    // long enough for the old mapping to expire, or an outage, the server's observe relations may
    // point at a dead address: register them again from here.
    const refresh = this.link.connectionOriented ? 0 : (this.#config.observeRefreshMs ?? OBSERVE_REFRESH_MS);
    const stale = this.#mappingMayHaveChanged || this.#failedSinceReport;
    this.#mappingMayHaveChanged = false;
    this.#failedSinceReport = false;
    if (refresh > 0 && stale && this.#subscriptions.length && !this.tb.stopped && this.#running) await this.resubscribe();
  }

  /** Sends queued records in batches, paced; keeps them on failure. */
  async flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      let first = true;
      let limit = this.#batchSize;
      while (this.#queue.length && this.#running) {
        if (this.tb.stopped || this.tb.retryAfter) break;
        if (!first) await this.#sleep(this.#replayPaceMs);
        first = false;
        const batch = this.#queue.peek(limit);
        if (!batch.length) break;
        const refresh = this.#config.observeRefreshMs ?? OBSERVE_REFRESH_MS;
        if (refresh > 0 && this.#platform.clock.now() - this.#lastTraffic >= refresh) this.#mappingMayHaveChanged = true;
        const last = batch[batch.length - 1]!.seq;
        const records = batch.map((r) => ({ ts: r.ts, values: r.values }));
        try {
          await this.tb.sendTelemetry(records.length === 1 ? records[0]! : records);
        } catch (e) {
          if (this.link.recoverUnauthorized(e)) continue;
          if ((e as { code?: unknown }).code === 'too-large' && batch.length > 1) {
            // The transport refused the message as too large for it (its record limit can be smaller
            // than the size chosen before its handshake). Halve the batch and go on; the halves are
            // sized from the transport's current limit.
            limit = Math.max(1, Math.floor(batch.length / 2));
            this.#platform.log.warn(`telemetry batch of ${batch.length} too large for the transport: sending ${limit} at a time`);
            continue;
          }
          this.#failures++;
          this.#failedSinceReport = true;
          const err = e as Error;
          this.onEvent?.({ type: 'report-failed', error: err.message, queued: this.#queue.length });
          if (e instanceof TbError && e.code === 'bad-request') {
            // The server will never take these records: drop them rather than block the queue.
            this.#queue.discard(last);
            this.#platform.log.error(`telemetry rejected (4.00), ${batch.length} records dropped`);
            continue;
          }
          if (e instanceof TbError && (e.code === 'unauthorized' || (e.code === 'security' && this.link.connectionOriented))) this.onEvent?.({ type: 'stopped', reason: err.message });
          if (e instanceof TbError && e.code === 'timeout') this.#timeouts++;
          // No answer at all: the link may have lost its security session (the server restarted).
          if (this.link.noAnswer(this.#timeouts)) this.#timeouts = 0;
          this.#platform.log.warn(`telemetry not delivered, ${this.#queue.length} queued: ${err.message}`);
          break;
        }
        this.#queue.confirm(last);
        this.#noteTraffic();
        this.#reports++;
        this.#timeouts = 0;
        this.onEvent?.({ type: 'report', records: batch.length, queued: this.#queue.length });
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * Sets the reporting interval. `source` 'server' (shared attribute, RPC) is kept in flash when
   * storage is configured, and wins over the build's value at the next boot.
   */
  setReportingInterval(ms: number, source: 'build' | 'server' = 'server', via = 'the server'): void {
    const next = clampInterval(ms);
    const changed = next !== this.#intervalMs;
    const was = `${this.#intervalMs / 1000} s from ${this.#intervalSource === 'server' ? 'the server' : 'the build config'}`;
    this.#intervalSource = source;
    this.#persistInterval(source === 'server' ? next : undefined, via);
    if (!changed) return;
    this.#intervalMs = next;
    this.onEvent?.({ type: 'interval', ms: next });
    this.#platform.log.info(`reporting interval now ${next / 1000} s from ${via} (was ${was})`);
    if (this.#timer !== undefined) {
      this.#platform.clock.clearTimer(this.#timer);
      this.#nextDue = this.#platform.clock.now() + this.#intervalMs;
      this.#schedule();
    }
  }

  #persistInterval(ms: number | undefined, via: string): void {
    const settings = this.#settings;
    if (!settings) return;
    const next = ms === undefined ? {} : { reportingInterval: ms / 1000, source: via };
    // From a fresh job: a notification's receive path is already deep on XS, and a put may compact.
    void Promise.resolve().then(() => {
      try {
        settings.save(next);
      } catch (e) {
        this.#platform.log.warn(`reporting interval not saved: ${(e as Error).message}`);
      }
    });
  }

  #enqueue(record: Reading): void {
    const before = this.#queue.dropped;
    try {
      this.#queue.push(record);
    } catch (e) {
      this.#platform.log.error(`reading not queued: ${(e as Error).message}`);
      return;
    }
    const lost = this.#queue.dropped - before;
    if (lost > 0) this.#platform.log.warn(`offline queue full: ${lost} oldest readings dropped (${this.#queue.dropped} in all)`);
  }

  /** The sampling timer: a reading every interval on the clock; delivery runs beside it. */
  #schedule(): void {
    if (!this.#running || this.#config.schedule === 'external') return;
    const now = this.#platform.clock.now();
    if (this.#nextDue <= now) this.#nextDue = now + this.#intervalMs;
    this.#timer = this.#platform.clock.setTimer(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.#sample();
      this.#nextDue += this.#intervalMs;
      this.#schedule();
      void this.#deliver().catch((e: Error) => this.#platform.log.warn(`delivery: ${e.message}`));
    }, this.#nextDue - now);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#platform.clock.setTimer(resolve, ms));
  }

  #onAttributes(shared: TbObject, deleted: string[]): void {
    this.#lastTraffic = this.#platform.clock.now();
    const snapshot = this.#snapshotDue;
    this.#snapshotDue = false;
    this.onEvent?.({ type: 'attributes', shared, deleted });
    this.#config.ota?.onSharedAttributes(shared, deleted);
    const seconds = shared.reportingInterval;
    if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0) this.setReportingInterval(seconds * 1000, 'server', 'shared attribute reportingInterval');
    else if (seconds !== undefined) this.#platform.log.warn('shared attribute reportingInterval ignored: expected seconds > 0');
    else if (deleted.includes('reportingInterval') || (snapshot && this.#intervalSource === 'server' && this.#settings?.load().source === 'shared attribute reportingInterval')) {
      // The server no longer has the attribute (deleted now, or absent from the registration's
      // snapshot of all shared attributes): back to the build's value.
      this.setReportingInterval(this.#buildIntervalMs, 'build', 'the build config (shared attribute reportingInterval removed on the server)');
    }
  }

  async #onRpc(request: RpcRequest): Promise<TbValue> {
    this.#lastTraffic = this.#platform.clock.now();
    this.onEvent?.({ type: 'rpc', method: request.method, id: request.id });
    switch (request.method) {
      case 'getState':
        return this.state;
      case 'setInterval': {
        const p = request.params;
        const seconds = typeof p === 'number' ? p : p && typeof p === 'object' && !Array.isArray(p) ? p.interval : undefined;
        if (typeof seconds !== 'number' || !(seconds > 0)) throw new Error('setInterval: params must be {"interval": seconds > 0}');
        this.setReportingInterval(seconds * 1000, 'server', 'RPC setInterval');
        // Reported back from a fresh job, not from inside the notification's receive path: on XS
        // that path is already ~30 frames deep and a request on top of it overflowed a 768-slot stack.
        const reportBack = { reportingInterval: this.#intervalMs / 1000 };
        void Promise.resolve()
          .then(() => this.tb.sendAttributes(reportBack))
          .catch(() => undefined);
        return { interval: this.#intervalMs / 1000 };
      }
      default:
        throw new Error(`unknown method ${request.method}`);
    }
  }
}

function clampInterval(ms: number): number {
  return Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(ms)));
}
