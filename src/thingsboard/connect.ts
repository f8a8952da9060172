/*
 * Builds the ThingsBoard device API for a server URL's scheme, with everything under it:
 *
 *   coap://   CoAP over UDP                      ThingsBoardClient
 *   coaps://  CoAP over DTLS 1.2 over UDP        ThingsBoardClient (+ DtlsDatagram)
 *   mqtt://   MQTT 3.1.1 over TCP                MqttThingsBoardClient
 *   mqtts://  MQTT 3.1.1 over TLS 1.2 over TCP   MqttThingsBoardClient (+ TlsStreamFactory)
 *
 * The device app (src/device) gets a ThingsBoardLink: the device API plus the few facts and hooks
 * that differ between transports (does the server check credentials when the connection opens,
 * can observations go stale behind a NAT, a security session to keep across reboots, what to do
 * when nothing answers), so it knows neither CoAP nor MQTT.
 */
import { CoapClient } from '../coap/client';
import type { TransmissionParams } from '../coap/types';
import { NBIOT_TRANSMISSION, RFC7252_TRANSMISSION } from '../coap/types';
import { DtlsDatagram } from '../dtls/datagram';
import { AUTH_FAILURES } from '../dtls/engine';
import type { DtlsError } from '../dtls/engine';
import { TlsStreamFactory } from '../mqtt/tls-stream';
import type { Datagram, Platform, StreamFactory } from '../platform/types';
import type { SessionStore } from '../storage/session';
import { sessionTag } from '../storage/session';
import type { ThingsBoardDeviceApi } from './api';
import type { Credentials, UplinkMode } from './client';
import { ThingsBoardClient } from './client';
import { TbError } from './errors';
import { MqttThingsBoardClient } from './mqtt-client';
import type { MqttThingsBoardOptions } from './mqtt-client';
import type { PayloadCodec } from './payload';

/**
 * CoAP over DTLS 1.2 (coaps://, port 5684), or the TLS of mqtts://. One-way: `ca` + `hostname`,
 * and the access token in the URL (CoAP) or as the MQTT user name. Mutual X.509: add `cert` +
 * `key`; the device then sends no token (credentials kind 'x509').
 */
export interface DtlsConfig {
  ca: Uint8Array | string;
  /** Name checked against the server certificate; always verified. */
  hostname: string;
  cert?: Uint8Array | string;
  key?: Uint8Array | string;
  /** A session saved before sleep (ThingsBoardLink.securitySession()) to resume with an abbreviated handshake. */
  session?: Uint8Array;
  /** Initial handshake retransmission timeout, ms (DTLS only). */
  retransmitMs?: number;
  /**
   * Resume a saved session with an X.509 client certificate too (default false; DTLS only).
   * ThingsBoard maps a certificate to its device by the peer address at FULL handshakes only, so a
   * resumed session from a new address (the usual case after sleep behind NAT) gets 4.01
   * (reference §3.5): X.509 devices do a full handshake after sleep unless this is set. Token
   * devices always resume. Over MQTT the server checks the certificate per connection: always offered.
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

/** Where and how the device talks to ThingsBoard (from the server URL and the credentials). */
export interface LinkConfig {
  server: { host: string; port: number };
  credentials: Credentials;
  /**
   * The scheme's transport: 'coap' (default: coap://, or coaps:// with `dtls`) or 'mqtt' (mqtt://,
   * or mqtts:// with `tls`; needs Platform.tcp).
   */
  transport?: 'coap' | 'mqtt';
  /** Set for coaps://: the DTLS layer between CoAP and UDP. */
  dtls?: DtlsConfig;
  /**
   * Set for mqtts://: TLS 1.2 over TCP on the same mbedTLS core (Platform.dtls), with the fields of
   * DtlsConfig (`ca`, `hostname`, `cert` + `key` for mutual X.509, `session`; the datagram-only
   * ones are ignored).
   */
  tls?: DtlsConfig;
  /** MQTT client settings beyond the defaults (keep-alive, response timeout, reconnect back-off, a packet tap for traces). */
  mqtt?: Pick<MqttThingsBoardOptions, 'keepAliveMs' | 'responseTimeoutMs' | 'reconnect' | 'tap' | 'clientId'>;
  /** CoAP retransmission parameters: RFC 7252's, NB-IoT's (longer), or RFC 7252's with changes. */
  transmission?: 'rfc7252' | 'nbiot' | Partial<TransmissionParams>;
  /**
   * How CoAP reports travel (ThingsBoardClientOptions.uplink): 'con' (default) and 'non' are both
   * confirmed by the server's 2.01 and kept queued until it comes ('non' saves the ACK and the
   * separate CON response: two datagrams instead of three); 'non-no-response' is one datagram and
   * unconfirmed: a lost datagram is a lost reading. MQTT uplinks are QoS 1, confirmed by PUBACK.
   */
  uplink?: UplinkMode;
  /** Payload format of the device profile (default JSON). */
  codec?: PayloadCodec;
}

/** Where to connect and how to authenticate: the part of LinkConfig a server URL and the credentials decide. */
export type LinkSecurity = Pick<LinkConfig, 'server' | 'credentials' | 'transport' | 'dtls' | 'tls'>;

/**
 * The LinkSecurity for a parsed server URL (storage/credentials parseServerUrl): the scheme picks
 * the transport, and `secure` (CA, host name, certificate + key) becomes the DTLS block of coaps://
 * or the TLS block of mqtts:// (same fields); it is ignored for coap:// and mqtt://.
 */
export function linkFor(url: { host: string; port: number; secure: boolean; mqtt: boolean }, credentials: Credentials, secure?: DtlsConfig): LinkSecurity {
  const sec = url.secure && secure ? (url.mqtt ? { tls: secure } : { dtls: secure }) : {};
  return { server: { host: url.host, port: url.port }, credentials, ...(url.mqtt ? { transport: 'mqtt' as const } : {}), ...sec };
}

/** What the link tells its owner (the device app). */
export interface LinkEvents {
  /** Sending stopped for a security reason found below the ThingsBoard API (an unverifiable server). */
  onStopped?: (reason: TbError) => void;
  /**
   * A security session (DTLS or TLS) was established; `count` counts them. A new DTLS session
   * after the first carries no observations: the server forgot them with the old one.
   */
  onSecureSession?: (info: { resumed: boolean; count: number; forgetsObservations: boolean }) => void;
}

/** The device API over one transport, and what the app needs to know about that transport. */
export class ThingsBoardLink {
  readonly tb: ThingsBoardDeviceApi;
  /** 'coap' or 'mqtt', for logs and traces. */
  readonly scheme: 'coap' | 'coaps' | 'mqtt' | 'mqtts';
  /**
   * The server checks the credentials when the connection opens (MQTT CONNACK, TLS), so a refusal
   * shows before any request; and the client keeps its subscriptions across reconnects itself, so
   * they never go stale behind a NAT (CoAP Observe relations do: the server notifies the address
   * it saw at registration).
   */
  readonly connectionOriented: boolean;
  /** The CoAP client (coap:// and coaps://), for stats and tools; undefined over MQTT. */
  readonly coap: CoapClient | undefined;
  /** The DTLS layer (coaps://): the power layer saves, restores and re-handshakes it around sleep. */
  readonly dtls: DtlsDatagram | undefined;
  /** The TLS layer (mqtts://); `last` is the current connection. */
  readonly tls: TlsStreamFactory | undefined;
  #datagram: Datagram | undefined;
  #mqtt: MqttThingsBoardClient | undefined;
  #platform: Platform;
  #config: LinkConfig;
  #sessions: SessionStore | undefined;
  #sessionTag = 0;
  #secureSessions = 0;
  #x509Recovered = false;
  #events: LinkEvents;

  /**
   * `datagram`: a UDP transport to use instead of opening one (simulators, a modem); owned by the
   * link from then on (closed by close(), even over MQTT). `sessions`: the flash store that keeps
   * the DTLS/TLS session across reboots.
   */
  constructor(platform: Platform, config: LinkConfig, options: { datagram?: Datagram; sessions?: SessionStore; events?: LinkEvents } = {}) {
    this.#platform = platform;
    this.#config = config;
    this.#sessions = options.sessions;
    this.#events = options.events ?? {};
    if (config.transport === 'mqtt') {
      if (config.dtls) throw new Error('dtls is for coaps:// (mqtts:// takes tls)');
      this.#datagram = options.datagram;
      this.connectionOriented = true;
      this.coap = undefined;
      this.dtls = undefined;
      const { client, tls } = this.#openMqtt(platform, config);
      this.#mqtt = client;
      this.tls = tls;
      this.tb = client;
      this.scheme = tls ? 'mqtts' : 'mqtt';
    } else {
      if (config.tls) throw new Error('tls is for mqtts:// (coaps:// takes dtls)');
      this.connectionOriented = false;
      this.tls = undefined;
      const { tb, coap, dtls } = this.#openCoap(platform, config, options.datagram);
      this.tb = tb;
      this.coap = coap;
      this.dtls = dtls;
      this.scheme = dtls ? 'coaps' : 'coap';
    }
  }

  /** coap:// or coaps://: CoAP over UDP, or over DTLS when `dtls` is set. */
  #openCoap(platform: Platform, config: LinkConfig, datagram: Datagram | undefined): { tb: ThingsBoardClient; coap: CoapClient; dtls: DtlsDatagram | undefined } {
    let udp = datagram ?? platform.net.open(config.server.host, config.server.port);
    let dtls: DtlsDatagram | undefined;
    if (config.dtls) {
      if (!platform.dtls) throw new Error('coaps:// configured but this platform has no DTLS engine');
      let d = config.dtls;
      const store = this.#sessions;
      if (store) {
        this.#sessionTag = sessionTag([config.server.host, String(config.server.port), d.hostname, d.cert, d.key]);
        const saved = d.session ? undefined : store.load(this.#sessionTag);
        if (saved) d = { ...d, session: saved };
      }
      // The connection saved before the last deep sleep (saveSecurityContext): used at once, no
      // handshake; invalidated in flash before its first record leaves (onRestore), so a reboot
      // never loads it twice. X.509 too: restored from the same address the server still maps our
      // certificate; from a new one it does not answer (no CID), and the fallback follows the rule above.
      const context = store?.loadContext(this.#sessionTag);
      dtls = new DtlsDatagram({
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
        ...(context ? { context } : {}),
        ...(store ? { onRestore: () => this.#clearContext() } : {}),
        // A restored connection is the same one: the server kept its observations.
        onConnected: (info) => this.#onSecureSession('DTLS', info.resumed, info.path !== 'restored', info.path === 'restored'),
      });
      udp = dtls;
    }
    this.#datagram = udp;
    const t = config.transmission;
    const transmission = t === 'nbiot' ? NBIOT_TRANSMISSION : t === 'rfc7252' || t === undefined ? RFC7252_TRANSMISSION : { ...RFC7252_TRANSMISSION, ...t };
    const coap = new CoapClient(udp, {
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      transmission,
      tokenLength: dtls ? TOKEN_LENGTH.dtls : TOKEN_LENGTH.udp,
    });
    const tb = new ThingsBoardClient(coap, {
      credentials: config.credentials,
      clock: platform.clock,
      log: platform.log,
      uplink: config.uplink ?? 'con',
      ...(config.codec ? { codec: config.codec } : {}),
    });
    coap.onTransportError = (e) => this.#onTransportError(e as DtlsError);
    return { tb, coap, dtls };
  }

  /** mqtt:// or mqtts://: MQTT over the platform's TCP, in TLS when `tls` is set. */
  #openMqtt(platform: Platform, config: LinkConfig): { client: MqttThingsBoardClient; tls: TlsStreamFactory | undefined } {
    const tcp = platform.tcp;
    if (!tcp) throw new Error('mqtt:// configured but this platform has no TCP');
    let stream: StreamFactory = tcp;
    let tls: TlsStreamFactory | undefined;
    const t = config.tls;
    if (t) {
      if (!platform.dtls) throw new Error('mqtts:// configured but this platform has no TLS engine');
      let session = t.session;
      const store = this.#sessions;
      if (store) {
        this.#sessionTag = sessionTag(['mqtts', config.server.host, String(config.server.port), t.hostname, t.cert, t.key]);
        session ??= store.load(this.#sessionTag);
      }
      tls = new TlsStreamFactory(tcp, {
        clock: platform.clock,
        createEngine: platform.dtls,
        engine: { ca: t.ca, hostname: t.hostname, ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}) },
        ...(session ? { session } : {}),
        onHandshake: (info) => this.#onSecureSession('TLS', info.resumed, false),
      });
      stream = tls;
    }
    const client = new MqttThingsBoardClient({
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
    return { client, tls };
  }

  /** A DTLS or TLS handshake verified the server: keep the session for the next boot, tell the app. */
  #onSecureSession(kind: 'DTLS' | 'TLS', resumed: boolean, forgetsObservations: boolean, restored = false): void {
    this.#secureSessions++;
    this.#platform.log.info(`${kind} session established (${restored ? 'restored: no handshake' : resumed ? 'resumed' : 'full handshake'})`);
    this.#saveSession(this.securitySession());
    this.#events.onSecureSession?.({ resumed, count: this.#secureSessions, forgetsObservations });
  }

  #saveSession(session: Uint8Array | null): void {
    const store = this.#sessions;
    if (!store || !session) return;
    try {
      store.save(this.#sessionTag, session);
    } catch (e) {
      this.#platform.log.warn(`${this.dtls ? 'DTLS' : 'TLS'} session not saved: ${(e as Error).message}`);
    }
  }

  /** The DTLS (coaps://) or TLS (mqtts://) session to keep across sleep (pass back as dtls.session / tls.session), or null. */
  securitySession(): Uint8Array | null {
    return this.dtls?.session() ?? this.tls?.session ?? null;
  }

  /**
   * Before deep sleep (coaps://): the whole DTLS connection into the flash store beside the session
   * (DtlsDatagram.saveContext(): the datagram is suspended until the wake restores it). True when
   * saved; false when the connection cannot be saved now (the wake then resumes the session).
   */
  saveSecurityContext(): boolean {
    const dtls = this.dtls;
    if (!dtls) return false;
    this.#saveSession(dtls.session());
    const ctx = dtls.saveContext();
    if (!ctx) return false;
    const store = this.#sessions;
    if (store) {
      try {
        store.saveContext(this.#sessionTag, ctx);
      } catch (e) {
        this.#platform.log.warn(`DTLS connection not saved to flash: ${(e as Error).message}`);
      }
    }
    return true;
  }

  #clearContext(): void {
    try {
      this.#sessions?.clearContext();
    } catch (e) {
      this.#platform.log.warn(`saved DTLS connection not cleared: ${(e as Error).message}`);
    }
  }

  #onTransportError(error: DtlsError): void {
    if (!this.dtls || typeof error.code !== 'string' || !AUTH_FAILURES.includes(error.code)) return;
    // Fail closed: no token and no data goes to a server we could not verify.
    const reason = new TbError('security', `DTLS ${error.code}: ${error.message}`);
    this.tb.halt(reason);
    this.coap?.failPending(reason);
    this.#events.onStopped?.(reason);
  }

  /**
   * A request was refused with `e`. 4.01 inside a RESUMED X.509 DTLS session: ThingsBoard did not
   * see our certificate on this session (its certificate map is filled at full handshakes, keyed by
   * address). Handshake in full once and return true (the caller retries), instead of stopping on
   * a 4.01 that new credentials would not fix.
   */
  recoverUnauthorized(e: unknown): boolean {
    const dtls = this.dtls;
    // A restored connection counts as resumed here: with Connection ID it is answered from a new
    // address too, where ThingsBoard's certificate map (keyed by address) does not find us.
    if (!(e instanceof TbError) || e.code !== 'unauthorized' || !(dtls?.resumed || dtls?.path === 'restored')) return false;
    if (this.#config.credentials.kind !== 'x509' || this.#x509Recovered) return false;
    this.#x509Recovered = true;
    this.#platform.log.warn('4.01 on a resumed X.509 session (the server maps certificates at full handshakes): full handshake');
    this.tb.resume();
    dtls.reconnect(false);
    return true;
  }

  /**
   * `consecutive` reports in a row got no answer at all. Inside an established DTLS session the
   * server may have restarted and silently dropped our records: handshake again (resuming if it
   * still knows us). A CON timeout is already a minute of silence; a NON one may be a single lost
   * datagram, so wait for two. Returns true when it started a new handshake (the caller resets
   * its count). MQTT detects a dead connection itself (keep-alive) and reconnects.
   */
  noAnswer(consecutive: number): boolean {
    if (!this.dtls || consecutive < (this.#config.uplink === 'non' ? 2 : 1)) return false;
    this.#platform.log.warn('no response over DTLS: starting a new handshake');
    this.dtls.reconnect(true);
    return true;
  }

  /**
   * The device's certificate was just registered at the server (X.509 provisioning): ThingsBoard
   * maps a certificate to its device only while verifying it, and the DTLS session the request went
   * through predates the registration, so handshake in full now. Over MQTT the server checks the
   * certificate at CONNECT on the connection opened next: nothing to do.
   */
  certificateRegistered(): void {
    this.dtls?.reconnect(false);
  }

  close(): void {
    this.coap?.close();
    this.#datagram?.close();
    this.#mqtt?.close();
  }
}
