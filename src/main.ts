/*
 * Device entry point on Moddable XS (built by mcconfig from manifest.json). Reads the build's
 * config (server, token, board wiring), opens the sensors through embedded:io, and starts the
 * firmware app. The host simulator (tools/sim) wires the same app to host implementations.
 */
import config from 'mc/config';
import Timer from 'timer';
import I2C from 'embedded:io/i2c';
import Analog from 'embedded:io/analog';
import Resource from 'Resource';
import { create as createDtlsEngine } from 'dtls/native';
import { moddablePlatform } from './platform/moddable/index';
import { DeviceApp } from './device/app';
import type { DtlsConfig, TelemetrySource } from './device/app';
import { boardSensors } from './device/sources';
import type { SampledSensor } from './device/sources';
import { Sht3x } from './sensors/sht3x';
import { Bme280 } from './sensors/bme280';
import { Battery } from './sensors/battery';
import type { I2CIoConstructor, AnalogIoConstructor } from './platform/types';

interface BoardConfig {
  server: { host: string; port: number };
  token: string;
  reportingInterval: number;
  transmission: 'rfc7252' | 'nbiot';
  firmware: { title: string; version: string };
  /** coaps://: names of resources (DER or PEM files listed in the manifest's "resources"). */
  dtls?: { hostname: string; ca: string; cert?: string; key?: string } | null;
  i2c?: { data: number; clock: number; hz: number };
  sht3x?: { address: number };
  bme280?: { address: number };
  battery?: { pin: number; divider: number; vref: number };
}

const cfg = config as unknown as BoardConfig;
const { log } = moddablePlatform;
const delay = (ms: number) => (Timer as unknown as { delay(ms: number): void }).delay(ms);

/** A part that fails to open (absent, wrong chip id) is left out, with the reason logged. */
function open<T>(name: string, make: () => T): T | undefined {
  try {
    return make();
  } catch (e) {
    log.warn(`${name} not available: ${(e as Error).message}`);
    return undefined;
  }
}

const onError = (e: Error) => log.warn(`sensor: ${e.message}`);
const parts: { sht3x?: SampledSensor; bme280?: SampledSensor; battery?: SampledSensor } = {};
if (cfg.i2c) {
  const bus = { io: I2C as unknown as I2CIoConstructor, ...cfg.i2c, delay };
  if (cfg.sht3x) parts.sht3x = open('SHT3x', () => new Sht3x({ sensor: { ...bus, ...cfg.sht3x }, onError }));
  if (cfg.bme280) parts.bme280 = open('BME280', () => new Bme280({ sensor: { ...bus, ...cfg.bme280 }, onError }));
}
if (cfg.battery) {
  const b = cfg.battery;
  parts.battery = open('battery', () => new Battery({ sensor: { io: Analog as unknown as AnalogIoConstructor, pin: b.pin }, divider: b.divider, vref: b.vref, onError }));
}
const sources: TelemetrySource[] = [boardSensors(parts)];

const resource = (name: string) => new Uint8Array(new Resource(name));
let dtls: DtlsConfig | undefined;
if (cfg.dtls) {
  dtls = { hostname: cfg.dtls.hostname, ca: resource(cfg.dtls.ca) };
  if (cfg.dtls.cert && cfg.dtls.key) {
    dtls.cert = resource(cfg.dtls.cert);
    dtls.key = resource(cfg.dtls.key);
  }
}
const x509 = !!dtls?.cert;
if (!x509 && !cfg.token) log.error('no access token configured (config.token): provision the device first');
const app = new DeviceApp(
  { ...moddablePlatform, dtls: createDtlsEngine },
  {
    server: cfg.server,
    credentials: x509 ? { kind: 'x509' } : { kind: 'token', token: cfg.token },
    ...(dtls ? { dtls } : {}),
    reportingIntervalMs: cfg.reportingInterval * 1000,
    transmission: cfg.transmission,
    firmware: cfg.firmware,
  },
  sources,
);
app.start().catch((e: Error) => log.error(`start failed: ${e.message}`));
