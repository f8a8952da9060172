/*
 * The firmware's behaviour: read the sensors on a schedule, report telemetry, take the reporting
 * interval from a shared attribute, answer RPC (getState, setInterval), and lose nothing when
 * the network or the server fails (bounded queue, replayed with original timestamps, paced).
 *
 * Shared attribute `reportingInterval` (seconds) sets the schedule; RPC `setInterval` with
 * params `{"interval": seconds}` (or a bare number) does the same and reports it back as the
 * client attribute `reportingInterval`.
 */
import { CoapClient } from '../coap/client';
import type { TransmissionParams } from '../coap/types';
import { NBIOT_TRANSMISSION, RFC7252_TRANSMISSION } from '../coap/types';
import type { Datagram, Platform, StreamFactory, TimerHandle } from '../platform/types';
import type { Credentials, TbSubscription, UplinkMode } from '../thingsboard/client';
import { ThingsBoardClient } from '../thingsboard/client';
import { MqttThingsBoardClient } from '../thingsboard/mqtt-client';
import type { MqttThingsBoardOptions, ThingsBoardDeviceApi } from '../thingsboard/mqtt-client';
import { TlsStreamFactory } from '../mqtt/tls-stream';
import { TbError } from '../thingsboard/errors';
import type { PayloadCodec, RpcRequest, TbObject, TbValue } from '../thingsboard/payload';
import { DtlsDatagram } from '../dtls/datagram';
import type { DtlsError } from '../dtls/engine';
import type { Reading, ReadingQueue } from '../storage/queue';
import { RamQueue } from '../storage/queue';
import type { SettingsStore } from '../storage/settings';
import type { SessionStore } from '../storage/session';
import { sessionTag } from '../storage/session';
import type { ProvisioningConfig } from './provisioning';
import { confirmProvisioned, needsProvisioning, provision } from './provisioning';

/**
 * CoAP over DTLS 1.2 (coaps://, port 5684). One-way: `ca` + `hostname`, and the access token in the
 * URL. Mutual X.509: add `cert` + `key`; the device then sends no token (credentials kind 'x509').
 */
export interface DtlsConfig {
  ca: Uint8Array | string;
  /** Name checked against the server certificate; always verified. */
  hostname: string;
  cert?: Uint8Array | string;
  key?: Uint8Array | string;
  /** A session saved before sleep (DeviceApp.dtlsSession()) to resume with an abbreviated handshake. */
  session?: Uint8Array;
  /** Initial handshake retransmission timeout, ms. */
  retransmitMs?: number;
  /**
   * Resume a saved session with an X.509 client certificate too (default false). ThingsBoard maps a
   * certificate to its device by the peer address at FULL handshakes only, so a resumed session from
   * a new address (the usual case after sleep behind NAT) gets 4.01 (reference §3.5): X.509 devices
   * do a full handshake after sleep unless this is set. Token devices always resume.
   */
  resumeX509?: boolean;
  /** Resume by session ticket (default false: ThingsBoard's server resumes by session ID only). */
  tickets?: boolean;
}

/**
 * CoAP token lengths. On plain UDP the token is the only defence against off-path spoofed
 * responses (RFC 7252 §5.3.1), so 4 random bytes; inside DTLS every record is authenticated and a
 * token only has to be unique among our own open exchanges, so 2 bytes (saved in each request and
 * each response: 4 B per report).
 */
export const TOKEN_LENGTH = Object.freeze({ udp: 4, dtls: 2 });

/** DTLS failures that mean "this server (or our certificate) is not to be trusted": fail closed. */
const DTLS_AUTH_FAILURES = new Set([
  'DTLS_UNKNOWN_CA',
  'DTLS_HOSTNAME_MISMATCH',
  'DTLS_CERT_EXPIRED',
  'DTLS_CERT_NOT_YET_VALID',
  'DTLS_CERT_INVALID',
  'DTLS_NO_CLIENT_CERT',
  'DTLS_BAD_CA_FILE',
  'DTLS_BAD_CERT_FILE',
  'DTLS_BAD_KEY_FILE',
  'DTLS_CONFIG',
]);

/** Something that yields telemetry values for one cycle (a sensor mapped to ThingsBoard keys). */
export interface TelemetrySource {
  readonly name: string;
  /** Values keyed by ThingsBoard telemetry key; undefined when the reading failed (not reported). */
  read(): TbObject | undefined;
}

export interface DeviceConfig {
  server: { host: string; port: number };
  credentials: Credentials;
  /** Set for coaps://: the DTLS layer between CoAP and UDP. */
  dtls?: DtlsConfig;
  /**
   * The ThingsBoard transport, from the server URL's scheme: 'coap' (default: coap://, or coaps://
   * with `dtls`) or 'mqtt' (mqtt://, or mqtts:// with `tls`; needs Platform.tcp). Everything else
   * (queue, settings, RPC, shared attributes, provisioning) behaves the same over both.
   */
  transport?: 'coap' | 'mqtt';
  /**
   * Set for mqtts://: TLS 1.2 over TCP on the same mbedTLS core (Platform.dtls), with the fields of
   * DtlsConfig (`ca`, `hostname`, `cert` + `key` for mutual X.509, `session`; the datagram-only
   * ones are ignored). A saved session is offered to X.509 devices too: over MQTT the server
   * checks the certificate at CONNECT on the connection, not per address.
   */
  tls?: DtlsConfig;
  /** MQTT client settings beyond the defaults (keep-alive, response timeout, reconnect back-off, a packet tap for traces). */
  mqtt?: Pick<MqttThingsBoardOptions, 'keepAliveMs' | 'responseTimeoutMs' | 'reconnect' | 'tap' | 'clientId'>;
  /** Initial reporting interval; shared attribute `reportingInterval` (seconds) overrides it. */
  reportingIntervalMs?: number;
  transmission?: 'rfc7252' | 'nbiot' | Partial<TransmissionParams>;
  /**
   * How reports travel (ThingsBoardClientOptions.uplink): 'con' (default) and 'non' are both
   * confirmed by the server's 2.01 and kept queued until it comes ('non' saves the ACK and the
   * separate CON response: two datagrams instead of three); 'non-no-response' is one datagram and
   * unconfirmed: a lost datagram is a lost reading.
   */
  uplink?: UplinkMode;
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
   * Payload format of the device profile (default JSON). A Protobuf profile's codec
   * (protoCodec(profile) from src/thingsboard/proto-codec.ts) carries one record per message, so
   * replays then go one record per POST.
   */
  codec?: PayloadCodec;
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
  /** The ThingsBoard device API over the configured transport (CoAP or MQTT). */
  readonly tb: ThingsBoardDeviceApi;
  #coap: CoapClient | undefined;
  #mqtt: MqttThingsBoardClient | undefined;
  #tls: TlsStreamFactory | undefined;
  #platform: Platform;
  #config: DeviceConfig;
  #sources: TelemetrySource[];
  #transport: Datagram | undefined;
  #dtls: DtlsDatagram | undefined;
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
  #startedEmitted = false;
  /** Consecutive reports that got no response at all. */
  #timeouts = 0;
  #running = false;
  #subscriptions: TbSubscription[] = [];
  #dtlsConnections = 0;
  #x509Recovered = false;
  #sessionTag = 0;

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
    if (config.provisioning && config.credentials.kind === 'token' && needsProvisioning(config.provisioning.store.load())) this.#provisioned = false;
    this.#batchSize = Math.min(config.batchSize ?? 10, config.codec?.maxTelemetryRecords ?? Infinity);
    this.#replayPaceMs = config.replayPaceMs ?? 1000;
    if (config.transport === 'mqtt') {
      // The Datagram, when one is passed, stays owned (closed at stop) and unused.
      if (config.ota) throw new Error('firmware updates (ota) run over CoAP only so far: MQTT has no v2/fw client yet');
      this.#transport = transport;
      this.#mqtt = this.#openMqtt(platform, config);
      this.tb = this.#mqtt;
    } else {
      if (config.tls) throw new Error('tls is for mqtts:// (coaps:// takes dtls)');
      const tb = this.#openCoap(platform, config, transport);
      this.tb = tb;
      config.ota?.attach({ tb });
    }
  }

  /** coap:// or coaps://: CoAP over UDP, or over DTLS when `dtls` is set. */
  #openCoap(platform: Platform, config: DeviceConfig, transport: Datagram | undefined): ThingsBoardClient {
    let udp = transport ?? platform.net.open(config.server.host, config.server.port);
    if (config.dtls) {
      if (!platform.dtls) throw new Error('coaps:// configured but this platform has no DTLS engine');
      let d = config.dtls;
      const store = config.storage?.session;
      if (store) {
        this.#sessionTag = sessionTag([config.server.host, String(config.server.port), d.hostname, d.cert, d.key]);
        const saved = d.session ? undefined : store.load(this.#sessionTag);
        if (saved) d = { ...d, session: saved };
      }
      this.#dtls = new DtlsDatagram({
        transport: udp,
        clock: platform.clock,
        createEngine: platform.dtls,
        engine: {
          ca: d.ca,
          hostname: d.hostname,
          ...(d.cert ? { cert: d.cert } : {}),
          ...(d.key ? { key: d.key } : {}),
          ...(d.tickets !== undefined ? { tickets: d.tickets } : {}),
        },
        ...(d.session && (!(d.cert && d.key) || d.resumeX509) ? { session: d.session } : {}),
        ...(d.retransmitMs ? { retransmitMs: d.retransmitMs } : {}),
        onConnected: (info) => this.#onDtlsConnected(info.resumed),
      });
      udp = this.#dtls;
    }
    this.#transport = udp;
    const t = config.transmission;
    const transmission = t === 'nbiot' ? NBIOT_TRANSMISSION : t === 'rfc7252' || t === undefined ? RFC7252_TRANSMISSION : { ...RFC7252_TRANSMISSION, ...t };
    const coap = new CoapClient(this.#transport, {
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      transmission,
      tokenLength: config.dtls ? TOKEN_LENGTH.dtls : TOKEN_LENGTH.udp,
    });
    const tb = new ThingsBoardClient(coap, {
      credentials: config.credentials,
      clock: platform.clock,
      log: platform.log,
      uplink: config.uplink ?? 'con',
      ...(config.codec ? { codec: config.codec } : {}),
    });
    coap.onTransportError = (e) => this.#onTransportError(e as DtlsError);
    this.#coap = coap;
    return tb;
  }

  /** mqtt:// or mqtts://: MQTT over the platform's TCP, in TLS when `tls` is set. */
  #openMqtt(platform: Platform, config: DeviceConfig): MqttThingsBoardClient {
    if (config.dtls) throw new Error('dtls is for coaps:// (mqtts:// takes tls)');
    const tcp = platform.tcp;
    if (!tcp) throw new Error('mqtt:// configured but this platform has no TCP');
    let stream: StreamFactory = tcp;
    const t = config.tls;
    if (t) {
      if (!platform.dtls) throw new Error('mqtts:// configured but this platform has no TLS engine');
      let session = t.session;
      const store = config.storage?.session;
      if (store) {
        this.#sessionTag = sessionTag(['mqtts', config.server.host, String(config.server.port), t.hostname, t.cert, t.key]);
        session ??= store.load(this.#sessionTag);
      }
      this.#tls = new TlsStreamFactory(tcp, {
        clock: platform.clock,
        createEngine: platform.dtls,
        engine: { ca: t.ca, hostname: t.hostname, ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}) },
        ...(session ? { session } : {}),
        onHandshake: (info) => this.#onTlsHandshake(info.resumed),
      });
      stream = this.#tls;
    }
    return new MqttThingsBoardClient({
      stream,
      host: config.server.host,
      port: config.server.port,
      credentials: config.credentials,
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      ...(config.codec ? { codec: config.codec } : {}),
      ...config.mqtt,
    });
  }

  /** The CoAP client (coap:// and coaps:// only: throws for an MQTT device). */
  get coap(): CoapClient {
    if (!this.#coap) throw new Error('not a CoAP device (the server URL is mqtt:// or mqtts://)');
    return this.#coap;
  }

  /** The TLS layer, when mqtts:// is configured (`last` is the current connection). */
  get tls(): TlsStreamFactory | undefined {
    return this.#tls;
  }

  /** A TLS handshake verified the server (MQTTS): keep the session for the next boot. */
  #onTlsHandshake(resumed: boolean): void {
    this.#platform.log.info(`TLS session established (${resumed ? 'resumed' : 'full handshake'})`);
    this.#saveSession(this.#tls?.session);
  }

  #saveSession(session: Uint8Array | null | undefined): void {
    const store = this.#config.storage?.session;
    if (!store || !session) return;
    try {
      store.save(this.#sessionTag, session);
    } catch (e) {
      this.#platform.log.warn(`DTLS session not saved: ${(e as Error).message}`);
    }
  }

  /** The DTLS (coaps://) or TLS (mqtts://) session to keep across sleep (pass back as dtls.session / tls.session), or null. */
  dtlsSession(): Uint8Array | null {
    return this.#dtls?.session() ?? this.#tls?.session ?? null;
  }

  /** The DTLS layer, when coaps:// is configured. */
  get dtls(): DtlsDatagram | undefined {
    return this.#dtls;
  }

  /**
   * A new DTLS session after the first one (server restart, reconnect after silence) carries no
   * observe relations: the server forgot them with the old session. Register them again.
   */
  #onDtlsConnected(resumed: boolean): void {
    this.#dtlsConnections++;
    this.#platform.log.info(`DTLS session established (${resumed ? 'resumed' : 'full handshake'})`);
    this.#saveSession(this.#dtls?.session());
    // With an external schedule the power layer re-registers after each wake's handshake itself,
    // before it sends the telemetry (src/power/cycle.ts): registering here too would double it.
    if (this.#dtlsConnections > 1 && this.#running && this.#subscriptions.length && this.#config.schedule !== 'external') void this.resubscribe();
  }

  /**
   * 4.01 inside a RESUMED X.509 session: ThingsBoard did not see our certificate on this session
   * (its certificate map is filled at full handshakes, keyed by address). Handshake in full once,
   * and let the caller retry, instead of stopping on a 4.01 that new credentials would not fix.
   */
  #recoverX509(e: unknown): boolean {
    const dtls = this.#dtls;
    if (!(e instanceof TbError) || e.code !== 'unauthorized' || !dtls?.resumed) return false;
    if (this.#config.credentials.kind !== 'x509' || this.#x509Recovered) return false;
    this.#x509Recovered = true;
    this.#platform.log.warn('4.01 on a resumed X.509 session (the server maps certificates at full handshakes): full handshake');
    this.tb.resume();
    dtls.reconnect(false);
    return true;
  }

  #onTransportError(error: DtlsError): void {
    if (!this.#dtls || typeof error.code !== 'string' || !DTLS_AUTH_FAILURES.has(error.code)) return;
    // Fail closed: no token and no data goes to a server we could not verify.
    const reason = new TbError('security', `DTLS ${error.code}: ${error.message}`);
    this.tb.halt(reason);
    this.#coap?.failPending(reason);
    this.onEvent?.({ type: 'stopped', reason: reason.message });
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
    if (this.#provisioned) return true;
    if (this.tb.stopped || !this.#config.provisioning) return false;
    const cfg = this.#config.provisioning;
    this.#provisioning ??= provision(this.tb, cfg, this.#platform.random, this.#platform.log)
      .then((outcome) => {
        if (outcome.kind === 'done' || outcome.kind === 'unverified') {
          this.tb.resume({ kind: 'token', token: outcome.token });
          this.#provisionUnverified = outcome.kind === 'unverified';
          this.#provisioned = true;
          return true;
        }
        if (outcome.kind === 'refused') {
          const reason = new TbError('unauthorized', outcome.reason);
          this.tb.halt(reason);
          this.onEvent?.({ type: 'stopped', reason: reason.message });
        } else this.#platform.log.warn(outcome.reason);
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
        if (this.#recoverX509(e)) continue;
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
    // MQTT refuses (CONNACK 5) or fails closed (TLS) on the connection, before any request: say so.
    if (stopped && this.#mqtt) this.onEvent?.({ type: 'stopped', reason: stopped.message });
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
    this.#coap?.close();
    this.#transport?.close();
    this.#mqtt?.close();
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
    if (!this.#provisioned) {
      // Not provisioned at start: try again now, and set up once it worked.
      if (!(await this.#ready())) return;
      await (this.#setup ??= this.#announceAndSubscribe());
    }
    const reportsBefore = this.#reports;
    await this.flush();
    if (this.#reports === reportsBefore) return;
    // A confirmed uplink just went out through the current NAT mapping. If it followed a silence
    // long enough for the old mapping to expire, or an outage, the server's observe relations may
    // point at a dead address: register them again from here.
    const refresh = this.#mqtt ? 0 : (this.#config.observeRefreshMs ?? OBSERVE_REFRESH_MS);
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
          if (this.#recoverX509(e)) continue;
          if ((e as { code?: unknown }).code === 'too-large' && batch.length > 1) {
            // The transport refused the request's datagram (larger than one DTLS record: the record
            // limit can be smaller than the block size chosen before the handshake). Halve the batch
            // and go on; the halves are sized from the transport's current limit.
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
          if (e instanceof TbError && (e.code === 'unauthorized' || (e.code === 'security' && this.#mqtt))) this.onEvent?.({ type: 'stopped', reason: err.message });
          if (e instanceof TbError && e.code === 'timeout') this.#timeouts++;
          // No answer inside an established DTLS session: the server may have restarted and silently
          // dropped our records. Handshake again (resuming if it still knows us). A CON timeout is
          // already a minute of silence; a NON one may be a single lost datagram, so wait for two.
          if (this.#dtls && this.#timeouts >= (this.#config.uplink === 'non' ? 2 : 1)) {
            this.#platform.log.warn('no response over DTLS: starting a new handshake');
            this.#timeouts = 0;
            this.#dtls.reconnect(true);
          }
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
