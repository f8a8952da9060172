/*
 * Wires the unchanged firmware (src/device) to host implementations of src/platform:
 * real UDP on loopback, a scaled virtual clock, a crypto RNG and a console log.
 */
import type { DeviceConfig, TelemetrySource } from '../../src/device/app';
import { DeviceApp } from '../../src/device/app';
import type { Clock, Flash, Log, LogLevel, Platform } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import type { DeviceStorage, StorageLayout } from '../../src/storage/index';
import { loadSecurity } from '../../src/device/provisioned';
import type { Security } from '../../src/device/provisioned';
import { ScaledClock } from './clock';
import { cryptoRandom } from './random';
import { createSimBoard } from './board';
import { describeDatagram } from './trace';
import type { PayloadDescriber } from './trace';
import { UdpDatagram } from './udp';
import { TcpStreamFactory } from './tcp';
import { describeMqtt } from './mqtt-trace';
import { loadDtlsEngine } from '../../hardware/dtls/index';

export interface SimDeviceOptions extends DeviceConfig {
  /** Virtual time speed-up over wall time (ScaledClock); ignored when `clock` is given. */
  speed?: number;
  clock?: Clock;
  sources?: (clock: Clock) => TelemetrySource[];
  log?: Log;
  /** Receives one line per datagram, e.g. "-> CON POST /api/v1/***\/telemetry ...". */
  trace?: (line: string) => void;
  /** Renders binary (Content-Format 42) payloads in the trace, e.g. Protobuf decoded (proto-trace.ts). */
  describePayload?: PayloadDescriber;
  /**
   * The device's storage partition (a FileFlash image, or a MemFlash in tests): the offline queue
   * and the server's settings then live in it, as on the device (src/storage).
   */
  flash?: Flash;
  storageLayout?: StorageLayout;
  /** With `flash`: the name to provision under when its credentials ask for network provisioning. */
  deviceName?: string;
  /** With `flash`: ProvisioningConfig.retryMs (back-off after NOT_FOUND / FAILURE). */
  provisionRetryMs?: { first?: number; max?: number };
  /** Bind the UDP socket to this local port: a device that comes back from the same address. */
  localPort?: number;
}

export interface SimDevice {
  app: DeviceApp;
  /** CoAP's socket (closed unused over MQTT). */
  udp: UdpDatagram;
  /** MQTT's connections (node:net), for transport 'mqtt'. */
  tcp: TcpStreamFactory;
  clock: Clock;
  platform: Platform;
  /** Open stores of `options.flash`, when given. */
  storage?: DeviceStorage;
}

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function consoleLog(minLevel: LogLevel = 'info', clock?: Clock, write: (line: string) => void = (l) => console.log(l)): Log {
  const min = LEVELS.indexOf(minLevel);
  const make = (level: LogLevel) => (message: string) => {
    if (LEVELS.indexOf(level) < min) return;
    const t = clock ? `[${(clock.now() / 1000).toFixed(1).padStart(8)} s] ` : '';
    write(`${t}${level.toUpperCase().padEnd(5)} ${message}`);
  };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}

export function createSimDevice(options: SimDeviceOptions): SimDevice {
  const clock = options.clock ?? new ScaledClock(options.speed ?? 1);
  const udp = new UdpDatagram(options.server.host, options.server.port, { localPort: options.localPort ?? 0 });
  if (options.trace) {
    const trace = options.trace;
    udp.tap = (dir, data) => trace(`${dir === 'out' ? '->' : '<-'} ${describeDatagram(data, options.describePayload)}`);
  }
  const log = options.log ?? consoleLog('info', clock);
  const tcp = new TcpStreamFactory();
  const platform: Platform = { clock, random: cryptoRandom, log, net: { open: () => udp }, tcp };
  if (options.dtls || options.tls) platform.dtls = loadDtlsEngine().create;
  let storage: DeviceStorage | undefined;
  let config: DeviceConfig = options;
  if (options.transport === 'mqtt' && options.trace && !options.mqtt?.tap) {
    // One line per MQTT packet (the CONNECT's user name shown as ***), inside TLS for mqtts.
    const trace = options.trace;
    config = { ...config, mqtt: { ...options.mqtt, tap: (dir, p, bytes) => trace(`${dir === 'out' ? '->' : '<-'} ${describeMqtt(p, bytes, options.describePayload, dir)}`) } };
  }
  if (options.flash) {
    platform.flash = options.flash;
    storage = openDeviceStorage(options.flash, options.storageLayout);
    config = {
      ...config,
      ...(options.storage ? {} : { storage: { queue: storage.queue, settings: storage.settings, session: storage.session } }),
      // The same store instance as the queue's: one KvStore per partition (it caches its index).
      ...(options.provisioning || !storage.credentials.present ? {} : { provisioning: { store: storage.credentials, deviceName: options.deviceName ?? 'sim-device', ...(options.provisionRetryMs ? { retryMs: options.provisionRetryMs } : {}) } }),
    };
  }
  const sources = options.sources ? options.sources(clock) : [createSimBoard(clock, log).source];
  // Over MQTT the UDP socket is not used: closed at once (SimDevice.udp stays defined for the CoAP tests).
  if (options.transport === 'mqtt') udp.close();
  const app = new DeviceApp(platform, config, sources, options.transport === 'mqtt' ? undefined : udp);
  const dtls = app.dtls;
  if (dtls && options.trace) {
    // Show the CoAP inside the DTLS records too ("=>" / "<=" = plaintext, "->" / "<-" = wire).
    const trace = options.trace;
    const send = dtls.send.bind(dtls);
    dtls.send = (data) => {
      trace(`=> ${describeDatagram(data, options.describePayload)}`);
      send(data);
    };
    const receive = dtls.onReceive;
    dtls.onReceive = (data) => {
      trace(`<= ${describeDatagram(data, options.describePayload)}`);
      receive?.(data);
    };
  }
  return { app, udp, tcp, clock, platform, ...(storage ? { storage } : {}) };
}

/**
 * Server, credentials and DTLS settings from the credentials record in a flash image (written by
 * `npm run provision -- --flash FILE`), as the device does at boot; undefined (reason logged) when
 * there is none or it is invalid.
 */
export function securityFromFlash(flash: Flash, log: Log, layout?: StorageLayout): Security | undefined {
  return loadSecurity(openDeviceStorage(flash, layout).credentials, log);
}
