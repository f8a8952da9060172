/*
 * Device entry point on Moddable XS (built by mcconfig from manifest.json). Reads the build's
 * config (server, token, DTLS resources), opens the board's sensors through the `board/sensors` module
 * (src/board/esp32.ts on ESP32, src/board/lin.ts on the Moddable Linux host), and starts the
 * firmware app. The host simulator (tools/sim) wires the same app to host implementations.
 */
import config from 'mc/config';
import Resource from 'Resource';
import { openBoard } from 'board/sensors';
import { create as createDtlsEngine } from 'dtls/native';
import { moddablePlatform } from './platform/moddable/index';
import { DeviceApp } from './device/app';
import type { DtlsConfig } from './device/app';
import type { BoardConfig } from './board/types';

interface AppConfig extends BoardConfig {
  /** "coap://host[:5683]" or "coaps://host[:5684]" (a string, so `mcconfig ... server=...` can set it). */
  server: string;
  token: string;
  reportingInterval: number;
  transmission: 'rfc7252' | 'nbiot';
  firmware: { title: string; version: string };
  /** coaps://: names of resources (DER or PEM files listed in the manifest's "resources"). */
  dtls?: { hostname?: string; ca?: string; cert?: string; key?: string; retransmitMs?: number } | null;
  /** Seconds (0 = never): re-register Observe after an uplink when this long passed (NAT rebinding). */
  observeRefresh?: number;
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

/** coap://host[:port] or coaps://host[:port]; IPv6 literals in brackets. */
function parseServer(url: unknown): { secure: boolean; host: string; port: number } {
  const m = typeof url === 'string' ? /^(coaps?):\/\/(\[[0-9a-fA-F:.]+\]|[^\/:\[\]]+)(?::(\d{1,5}))?\/?$/.exec(url) : null;
  if (!m) return configError(`server must be coap://host[:port] or coaps://host[:port], got ${JSON.stringify(url)}`);
  const secure = m[1] === 'coaps';
  const port = m[3] ? Number(m[3]) : secure ? 5684 : 5683;
  if (!(port > 0 && port < 65536)) configError(`server port ${port} is out of range 1-65535`);
  return { secure, host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

const server = parseServer(cfg.server);
// Values set on the mcconfig command line arrive as strings.
const reportingInterval = Number(cfg.reportingInterval);
if (!(reportingInterval >= 1 && reportingInterval <= 86400)) configError('reportingInterval must be seconds, 1 to 86400');
const observeRefresh = Number(cfg.observeRefresh ?? 0);
if (!(observeRefresh >= 0)) configError('observeRefresh must be seconds (0 = never)');
if (server.secure && !cfg.dtls?.ca) configError('coaps:// needs dtls.ca: the CA that signed the server certificate, as a resource');
if (!server.secure && cfg.dtls?.ca) configError('dtls is configured but server is coap://: use coaps:// (port 5684)');

let dtls: DtlsConfig | undefined;
if (server.secure && cfg.dtls?.ca) {
  dtls = { hostname: cfg.dtls.hostname || server.host, ca: resource(cfg.dtls.ca) };
  if (cfg.dtls.retransmitMs) dtls.retransmitMs = Number(cfg.dtls.retransmitMs);
  if (cfg.dtls.cert || cfg.dtls.key) {
    if (!cfg.dtls.cert || !cfg.dtls.key) configError('dtls.cert and dtls.key go together (mutual X.509)');
    dtls.cert = resource(cfg.dtls.cert);
    dtls.key = resource(cfg.dtls.key);
  }
}
const x509 = !!dtls?.cert;
if (!x509 && !cfg.token) configError('no access token (config.token): set it with `mcconfig ... token=...`, or use dtls.cert/dtls.key');

const board = openBoard(cfg, log, clock);
log.info(`board ${board.description}`);
log.info(`ThingsBoard ${dtls ? 'coaps' : 'coap'}://${server.host}:${server.port} (${x509 ? 'X.509' : 'access token'}), every ${reportingInterval} s`);

const app = new DeviceApp(
  { ...moddablePlatform, dtls: createDtlsEngine },
  {
    server: { host: server.host, port: server.port },
    credentials: x509 ? { kind: 'x509' } : { kind: 'token', token: cfg.token },
    ...(dtls ? { dtls } : {}),
    reportingIntervalMs: reportingInterval * 1000,
    transmission: cfg.transmission,
    firmware: cfg.firmware,
    ...(observeRefresh ? { observeRefreshMs: observeRefresh * 1000 } : {}),
  },
  board.sources,
);
app.start().catch((e: Error) => log.error(`start failed: ${e.message}`));
