// tb-server CLI: `npx tsx tools/tb-server/cli.ts <command>` (see usage below).

import { readFileSync } from 'node:fs';
import { startTbServer } from './server';

function fail(message: string): never {
  throw new Error(message);
}

const DEFAULT_HTTP_PORT = 8080;

const USAGE = `usage: tsx tools/tb-server/cli.ts <command> [options]

server:
  serve [--coap-port N] [--http-port N] [--data DIR] [--host H]
        [--response-delay MS] [--piggyback] [--quiet]
        [--coaps-port N --cert server.pem --key server.key [--ca ca.pem]]
      run the ThingsBoard-compatible CoAP endpoint in the foreground; prints one line per request
      (tokens are never printed). Defaults: CoAP 5683, HTTP ${DEFAULT_HTTP_PORT}, data .tb-server.
      With --cert/--key it also serves CoAPs (DTLS 1.2; default port 5684); --ca asks clients for a
      certificate (optional, as ThingsBoard does) and maps it to X.509 devices

admin (talks to a running server; --http URL, default http://127.0.0.1:${DEFAULT_HTTP_PORT}):
  add-device NAME [--token T] [--cert device.pem]
                                       create a device (random token if none); prints its token;
                                       --cert registers its X.509 client certificate (mutual DTLS)
  devices                              list devices
  telemetry NAME [--keys a,b]          telemetry history, newest first
  attributes NAME                      client and shared attributes
  set-shared NAME key=value ...        set shared attributes (values parsed as JSON when possible)
  delete-shared NAME key ...           delete shared attributes
  rpc NAME METHOD [PARAMS_JSON] [--timeout MS] [--persistent]
                                       server-side RPC; waits for the device's reply
  power NAME PSM|DRX|E_DRX [--activity MS] [--paging MS]
  add-profile KEY SECRET [ALLOW_CREATE_NEW_DEVICES|CHECK_PRE_PROVISIONED_DEVICES]
`;

interface Parsed { pos: string[]; flags: Map<string, string | true> }

function parseArgs(argv: string[]): Parsed {
  const pos: string[] = [];
  const flags = new Map<string, string | true>();
  const boolFlags = new Set(['piggyback', 'quiet', 'persistent']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else if (boolFlags.has(a.slice(2)) || i + 1 >= argv.length) flags.set(a.slice(2), true);
      else flags.set(a.slice(2), argv[++i]);
    } else {
      pos.push(a);
    }
  }
  return { pos, flags };
}

function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function num(p: Parsed, name: string): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number`);
  return n;
}

function jsonOrString(v: string): unknown {
  try { return JSON.parse(v); } catch { return v; }
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : undefined,
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) as unknown : null;
  if (!res.ok) {
    const err = (data as { error?: string } | null)?.error ?? res.statusText;
    throw new Error(`HTTP ${res.status}: ${err}`);
  }
  return data;
}

const out = (v: unknown): void => { console.log(JSON.stringify(v, null, 2)); };

async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  const [cmd, ...rest] = p.pos;
  const base = (str(p, 'http') ?? `http://127.0.0.1:${DEFAULT_HTTP_PORT}`).replace(/\/$/, '');
  const dev = (): string => {
    if (!rest[0]) throw new Error('device NAME is required');
    return encodeURIComponent(rest[0]);
  };
  switch (cmd) {
    case 'serve': {
      const quiet = p.flags.has('quiet');
      const tb = await startTbServer({
        host: str(p, 'host'),
        coapPort: num(p, 'coap-port'),
        httpPort: num(p, 'http-port') ?? DEFAULT_HTTP_PORT,
        dataDir: str(p, 'data'),
        responseDelayMs: num(p, 'response-delay'),
        conResponses: p.flags.has('piggyback') ? 'piggyback' : 'thingsboard',
        ...(str(p, 'cert') || str(p, 'key')
          ? {
              dtls: {
                port: num(p, 'coaps-port') ?? 5684,
                cert: readFileSync(str(p, 'cert') ?? fail('--cert is required with --key')),
                key: readFileSync(str(p, 'key') ?? fail('--key is required with --cert')),
                ...(str(p, 'ca') ? { ca: readFileSync(str(p, 'ca')!) } : {}),
              },
            }
          : {}),
        log: (l) => { if (!quiet || l.startsWith('tb-server:')) console.log(l); },
      });
      tb.events.on('telemetry', (e: { device: string; entries: { values: Record<string, unknown> }[] }) => {
        if (!quiet) console.log(`  telemetry ${e.device}: ${e.entries.map((x) => JSON.stringify(x.values)).join(' ')}`);
      });
      const stop = (): void => { void tb.close().then(() => process.exit(0)); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return new Promise<number>(() => {});
    }
    case 'add-device': {
      const token = str(p, 'token');
      const cert = str(p, 'cert');
      out(await api(base, 'POST', '/api/devices', { name: rest[0], ...(token ? { token } : {}), ...(cert ? { certPem: readFileSync(cert, 'utf8') } : {}) }));
      return 0;
    }
    case 'devices': out(await api(base, 'GET', '/api/devices')); return 0;
    case 'telemetry': {
      const keys = str(p, 'keys');
      out(await api(base, 'GET', `/api/devices/${dev()}/telemetry${keys ? `?keys=${encodeURIComponent(keys)}` : ''}`));
      return 0;
    }
    case 'attributes': out(await api(base, 'GET', `/api/devices/${dev()}/attributes`)); return 0;
    case 'set-shared': {
      const body: Record<string, unknown> = {};
      for (const kv of rest.slice(1)) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new Error(`expected key=value, got ${kv}`);
        body[kv.slice(0, i)] = jsonOrString(kv.slice(i + 1));
      }
      if (!Object.keys(body).length) throw new Error('nothing to set');
      out(await api(base, 'POST', `/api/devices/${dev()}/attributes/shared`, body));
      return 0;
    }
    case 'delete-shared':
      out(await api(base, 'DELETE', `/api/devices/${dev()}/attributes/shared?keys=${encodeURIComponent(rest.slice(1).join(','))}`));
      return 0;
    case 'rpc': {
      if (!rest[1]) throw new Error('METHOD is required');
      out(await api(base, 'POST', `/api/devices/${dev()}/rpc`, {
        method: rest[1],
        params: rest[2] !== undefined ? jsonOrString(rest[2]) : null,
        ...(num(p, 'timeout') !== undefined ? { timeoutMs: num(p, 'timeout') } : {}),
        persistent: p.flags.has('persistent'),
      }));
      return 0;
    }
    case 'power': {
      const mode = rest[1];
      if (mode !== 'PSM' && mode !== 'DRX' && mode !== 'E_DRX') throw new Error('mode must be PSM, DRX or E_DRX');
      out(await api(base, 'PUT', `/api/devices/${dev()}/power`, {
        powerMode: mode,
        ...(num(p, 'activity') !== undefined ? { psmActivityTimer: num(p, 'activity') } : {}),
        ...(num(p, 'paging') !== undefined ? { pagingTransmissionWindow: num(p, 'paging') } : {}),
      }));
      return 0;
    }
    case 'add-profile':
      out(await api(base, 'POST', '/api/provision-profiles', { key: rest[0], secret: rest[1], strategy: rest[2] ?? 'ALLOW_CREATE_NEW_DEVICES' }));
      return 0;
    default:
      process.stderr.write(cmd ? `unknown command: ${cmd}\n${USAGE}` : USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
});
