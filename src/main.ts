/*
 * Device entry point on Moddable XS (built by mcconfig from manifest.json). Opens the storage
 * partition (credentials, settings, offline queue, DTLS session; src/storage), takes the server
 * and credentials from flash when a credentials record is there (`npm run provision` writes one),
 * else from the build's config (server, token, (D)TLS resources; the server URL's scheme picks CoAP
 * or MQTT: coap://, coaps://, mqtt://, mqtts://), opens the board's sensors through
 * the `board/sensors` module (src/board/esp32.ts on ESP32, src/board/lin.ts on the Moddable Linux
 * host), and starts the firmware app. The host simulator (tools/sim) wires the same app to host
 * implementations.
 */
import config from 'mc/config';
import Resource from 'Resource';
import { openBoard } from 'board/sensors';
import { create as createDtlsEngine } from 'dtls/native';
import { moddablePlatform } from './platform/moddable/index';
import { moddableTcp } from './platform/moddable/tcp';
import { moddableFlash } from './platform/moddable/flash';
import { openDeviceStorage, parseServerUrl } from './storage/index';
import { DEFAULT_PORTS } from './storage/credentials';
import type { ServerAddress, ServerScheme } from './storage/credentials';
import type { DeviceStorage } from './storage/index';
import { loadSecurity } from './device/provisioned';
import type { Security } from './device/provisioned';
import { DeviceApp } from './device/app';
import { protoCodec } from './thingsboard/proto-codec';
import { profile as deviceProtoProfile } from './proto/gen/device';
import type { DtlsConfig } from './thingsboard/connect';
import { linkFor } from './thingsboard/connect';
import type { BoardConfig } from './board/types';
import { openFirmwareSlots, platformHash } from 'ota/platform';
import { OtaAgent } from './ota/agent';
import { OtaStore } from './ota/store';
import type { FirmwareSlots, Flash } from './platform/types';

interface AppConfig extends BoardConfig {
  /**
   * "coap://host[:5683]", "coaps://host[:5684]", "mqtt://host[:1883]" or "mqtts://host[:8883]" (a
   * string, so `mcconfig ... server=...` can set it).
   */
  server: string;
  token: string;
  reportingInterval: number;
  transmission: 'rfc7252' | 'nbiot';
  firmware: { title: string; version: string };
  /** coaps:// and mqtts://: names of resources (DER or PEM files listed in the manifest's "resources"). */
  tls?: SecureConfig | null;
  /** The same block under its older name (kept working): DTLS for coaps://, TLS for mqtts://. */
  dtls?: SecureConfig | null;
  /** Seconds (0 = never; default 25): re-register Observe after an uplink when this long passed (NAT rebinding). */
  observeRefresh?: number;
  /** Name of the flash data partition (ESP32 partition table: hardware/esp32/partitions.csv). */
  partition?: string;
  /** Device name sent when provisioning over the network. */
  deviceName?: string;
  /** Payload format of the device profile: "json" (default) or "protobuf" (tools/proto/profiles/device), over CoAP and MQTT. */
  payload?: string;
  /** Firmware updates over the air (docs/ota.md): on unless false (`ota=false` on the command line). */
  ota?: boolean | string;
}

interface SecureConfig {
  hostname?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** coaps:// only: initial handshake retransmission timeout, ms. */
  retransmitMs?: number;
}

const cfg = config as unknown as AppConfig;
const { log, clock } = moddablePlatform;

/** Configuration errors stop the app at boot with the reason, before anything is sent. */
function configError(message: string): never {
  log.error(`config: ${message}`);
  throw new Error(`config: ${message}`);
}

function resource(name: string): Uint8Array {
  if (!Resource.exists(name)) configError(`resource "${name}" is not in the build (add it to the manifest's "resources")`);
  const r = new Resource(name);
  return new Uint8Array(r.slice(0, r.byteLength));
}

/** The build's server URL (the same parser as a credentials record in flash), or a config error. */
function parseServer(url: unknown): ServerAddress {
  const server = typeof url === 'string' ? parseServerUrl(url) : undefined;
  return server ?? configError(`server must be coap://, coaps://, mqtt:// or mqtts:// host[:port] (port 1-65535), got ${JSON.stringify(url)}`);
}

// Values set on the mcconfig command line arrive as strings.
const reportingInterval = Number(cfg.reportingInterval);
if (!(reportingInterval >= 1 && reportingInterval <= 86400)) configError('reportingInterval must be seconds, 1 to 86400');
const observeRefresh = cfg.observeRefresh === undefined ? undefined : Number(cfg.observeRefresh);
if (observeRefresh !== undefined && !(observeRefresh >= 0)) configError('observeRefresh must be seconds (0 = never)');

/** Server, credentials and (D)TLS from the build's config (used when flash holds no credentials). */
function securityFromConfig(): Security {
  const server = parseServer(cfg.server);
  if (cfg.tls && cfg.dtls) configError('set tls or dtls (the same block under its older name), not both');
  const sec = cfg.tls ?? cfg.dtls;
  const block = cfg.tls ? 'tls' : 'dtls';
  if (server.secure && !sec?.ca) configError(`${server.scheme}:// needs ${block}.ca: the CA that signed the server certificate, as a resource`);
  if (!server.secure && sec?.ca) configError(`${block} is configured but server is ${server.scheme}://: use ${server.scheme}s:// (port ${DEFAULT_PORTS[`${server.scheme}s` as ServerScheme]})`);
  let secure: DtlsConfig | undefined;
  if (server.secure && sec?.ca) {
    secure = { hostname: sec.hostname || server.host, ca: resource(sec.ca) };
    if (sec.retransmitMs && !server.mqtt) secure.retransmitMs = Number(sec.retransmitMs);
    if (sec.cert || sec.key) {
      if (!sec.cert || !sec.key) configError(`${block}.cert and ${block}.key go together (mutual X.509)`);
      secure.cert = resource(sec.cert);
      secure.key = resource(sec.key);
    }
  }
  const x509 = !!secure?.cert;
  if (!x509 && !cfg.token) configError('no access token (config.token) and no credentials in flash: provision the device (npm run provision), or build with token=...');
  return linkFor(server, x509 ? { kind: 'x509' } : { kind: 'token', token: cfg.token }, secure);
}

// The storage partition is opened once: two stores over the same flash would corrupt it.
const partition = cfg.partition || 'storage';
let storage: DeviceStorage;
let flash: Flash;
try {
  flash = moddableFlash(partition);
  storage = openDeviceStorage(flash);
} catch (e) {
  configError(`flash partition "${partition}": ${(e as Error).message} (ESP32: hardware/esp32/partitions.csv must be the build's partition table)`);
}

let security: Security;
let source: string;
if (storage.credentials.present) {
  // Checked at boot, not only at the first handshake: DER and dates, and the key against the
  // certificate by mbedTLS (src/device/provisioned.ts). Dates wait for the clock when it is not set.
  const s = loadSecurity(storage.credentials, log, { clock, dtls: createDtlsEngine });
  if (!s) configError('the credentials record in flash was rejected (see above): write a new one with npm run provision');
  security = s;
  source = 'flash';
} else {
  security = securityFromConfig();
  source = 'the build config';
}
const x509 = security.credentials.kind === 'x509';

const payload = cfg.payload || 'json';
if (payload !== 'json' && payload !== 'protobuf') configError(`payload must be json or protobuf, got ${JSON.stringify(payload)}`);

const board = openBoard(cfg, log, clock);
log.info(`board ${board.description}`);
const scheme = `${security.transport === 'mqtt' ? 'mqtt' : 'coap'}${security.dtls || security.tls ? 's' : ''}`;
log.info(`ThingsBoard ${scheme}://${security.server.host}:${security.server.port} (${x509 ? 'X.509' : 'access token'}, from ${source}), ${payload === 'protobuf' ? `Protobuf (profile ${deviceProtoProfile.name})` : 'JSON'}`);

// Firmware updates (docs/ota.md): the platform's A/B slots (ESP32: ota_0/ota_1 with ESP-IDF
// rollback; lin: a stand-in over files), progress and unsent fw_state in the storage partition.
let slots: FirmwareSlots | undefined;
if (cfg.ota === false || cfg.ota === 'false' || cfg.ota === '0') log.info('firmware updates off (config ota=false)');
else
  try {
    slots = openFirmwareSlots({ partition, firmware: cfg.firmware, log, kv: storage.kv, onRestart: () => restartInPlace() });
  } catch (e) {
    log.warn(`firmware updates off: ${(e as Error).message}`);
  }

let app: DeviceApp;
/** Starts the firmware app (again after a lin stand-in restart: a reboot in place, same storage). */
function startFirmware(): void {
  const ota = slots && new OtaAgent({ slots, clock, log, store: new OtaStore(storage.kv), ...(platformHash ? { hash: platformHash } : {}) });
  app = new DeviceApp(
    { ...moddablePlatform, flash, dtls: createDtlsEngine, tcp: moddableTcp },
    {
      ...security,
      reportingIntervalMs: reportingInterval * 1000,
      transmission: cfg.transmission,
      firmware: slots ? slots.running() : cfg.firmware,
      ...(ota ? { ota } : {}),
      ...(observeRefresh !== undefined ? { observeRefreshMs: observeRefresh * 1000 } : {}),
      storage: { queue: storage.queue, settings: storage.settings, session: storage.session },
      // Created here, at run time: the codec owns a scratch buffer, which a preloaded module could not write.
      ...(payload === 'protobuf' ? { codec: protoCodec(deviceProtoProfile) } : {}),
      ...(storage.credentials.present ? { provisioning: { store: storage.credentials, deviceName: cfg.deviceName || 'tb-coap-device' } } : {}),
    },
    board.sources,
  );
  app.start().catch((e: Error) => log.error(`start failed: ${e.message}`));
}

/** lin stand-in's restart(): stop everything, then start as after a reset (ESP32 restarts for real). */
function restartInPlace(): void {
  app.stop();
  clock.setTimer(() => startFirmware(), 1000);
}

startFirmware();
