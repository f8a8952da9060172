// tb-server CLI: `npm run tb-server -- <command> [options]` (`--help` for the commands, `<command> --help` for one).

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { startTbServer } from './server';
import { adminTokenPath, readAdminToken, resetState } from './admin-auth';
import {
  EXIT, HELP_OPTION, UsageError, flag, helpText, integer, parseCommandLine, port, runMain, str,
} from '../cli/options';
import type { CommandSpec, OptionSpec, Parsed } from '../cli/options';

const DEFAULT_HTTP_PORT = 8080;
const DEFAULT_DATA = '.tb-server';

const ADMIN_OPTIONS: OptionSpec[] = [
  { name: 'http', type: 'string', value: 'URL', help: 'admin HTTP of the running endpoint', default: `http://127.0.0.1:${DEFAULT_HTTP_PORT}` },
  { name: 'data', type: 'string', value: 'DIR', help: 'the endpoint\'s state folder, where its admin token is (admin-token, mode 0600)', default: DEFAULT_DATA },
  HELP_OPTION,
];

const ADMIN_NOTE = 'The admin token is read from DIR/admin-token (or TB_ADMIN_TOKEN in the environment).';

export interface Command {
  spec: CommandSpec;
  run(p: Parsed, args: string[]): Promise<number>;
}

const cmd = (usage: string, summary: string, options: OptionSpec[], examples: string[], notes: string[] = [ADMIN_NOTE]): CommandSpec => ({
  usage: [`npm run tb-server -- ${usage}`],
  summary,
  options: [...options, ...ADMIN_OPTIONS.filter((o) => !options.some((x) => x.name === o.name))],
  examples: examples.map((e) => `npm run tb-server -- ${e}`),
  notes,
  positionals: true,
});

const SERVE = cmd(
  'serve [options]',
  'Runs the ThingsBoard-compatible CoAP endpoint in the foreground and prints one line per request (tokens are never printed). ' +
    'With --cert/--key it also serves CoAPs (DTLS 1.2); --ca asks clients for a certificate (optional, as ThingsBoard does) and maps it to X.509 devices.',
  [
    { name: 'coap-port', type: 'string', value: 'PORT', help: 'CoAP UDP port (0: any free port)', default: '5683' },
    { name: 'http-port', type: 'string', value: 'PORT', help: 'admin HTTP port (0: any free port)', default: String(DEFAULT_HTTP_PORT) },
    { name: 'coaps-port', type: 'string', value: 'PORT', help: 'CoAPs UDP port, with --cert/--key', default: '5684' },
    { name: 'host', type: 'string', value: 'ADDRESS', help: 'bind address', default: '127.0.0.1' },
    { name: 'data', type: 'string', value: 'DIR', help: 'state folder (state.json, admin-token)', default: DEFAULT_DATA },
    { name: 'cert', type: 'string', value: 'FILE', help: 'server certificate (PEM) for CoAPs' },
    { name: 'key', type: 'string', value: 'FILE', help: 'server private key (PEM) for CoAPs' },
    { name: 'ca', type: 'string', value: 'FILE', help: 'CA of the client certificates (X.509 devices)' },
    { name: 'response-delay', type: 'string', value: 'MS', help: 'delay attribute requests and client RPC answers (exercises separate responses)', default: '0' },
    { name: 'piggyback', type: 'boolean', help: 'RFC-style piggybacked responses instead of ThingsBoard\'s separate CON responses' },
    { name: 'mqtt', type: 'boolean', help: 'also serve MQTT on TCP 1883 and, with --cert/--key, MQTTS on 8883 (docs/mqtt.md)' },
    { name: 'quiet', type: 'boolean', help: 'no line per request' },
    HELP_OPTION,
  ],
  ['serve', 'serve --coap-port 5683 --http-port 8080 --data .tb-server', 'serve --cert .certs/server.pem --key .certs/server.key --ca .certs/ca.pem'],
  ['Admin commands (npm run tb-server -- --help) authenticate with the bearer token the endpoint writes to DIR/admin-token (mode 0600).'],
);

export const COMMANDS: Record<string, Command> = {
  serve: {
    spec: SERVE,
    async run(p) {
      const quiet = flag(p, 'quiet');
      const cert = str(p, 'cert');
      const key = str(p, 'key');
      if (!!cert !== !!key) throw new UsageError('--cert and --key go together (CoAPs)');
      const ca = str(p, 'ca');
      const readPem = (f: string, what: string) => {
        try {
          return readFileSync(f);
        } catch (e) {
          throw new UsageError(`${what} ${f}: ${(e as { code?: string }).code ?? (e as Error).message}`);
        }
      };
      const tb = await startTbServer({
        host: str(p, 'host'),
        coapPort: port(p, 'coap-port', 5683, true),
        httpPort: port(p, 'http-port', DEFAULT_HTTP_PORT, true),
        dataDir: str(p, 'data'),
        responseDelayMs: integer(p, 'response-delay', 0),
        conResponses: flag(p, 'piggyback') ? 'piggyback' : 'thingsboard',
        ...(cert && key
          ? { dtls: { port: port(p, 'coaps-port', 5684, true), cert: readPem(cert, '--cert'), key: readPem(key, '--key'), ...(ca ? { ca: readPem(ca, '--ca') } : {}) } }
          : {}),
        ...(flag(p, 'mqtt') ? { mqtt: { port: 1883, ...(cert && key ? { tls: { port: 8883, cert: readPem(cert, '--cert'), key: readPem(key, '--key') } } : {}) } } : {}),
        log: (l) => { if (!quiet || l.startsWith('tb-server:')) console.log(l); },
      }).catch((e: Error & { code?: string }) => {
        if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') throw new UsageError(`cannot listen: ${e.message}`);
        throw e;
      });
      tb.events.on('telemetry', (e: { device: string; entries: { values: Record<string, unknown> }[] }) => {
        if (!quiet) console.log(`  telemetry ${e.device}: ${e.entries.map((x) => JSON.stringify(x.values)).join(' ')}`);
      });
      return new Promise<number>((resolve) => {
        const stop = (): void => { void tb.close().then(() => resolve(EXIT.OK)); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    },
  },
  reset: {
    spec: cmd('reset [--data DIR]', 'Clears the endpoint\'s state (devices, telemetry, attributes, provisioning profiles, RPC log, OTA packages): removes DIR/state.json and DIR/ota-packages.json. The admin token is kept. Refused while an endpoint answers on --http.',
      [], ['reset', 'reset --data /tmp/tb-state'], []),
    async run(p) {
      const dir = path.resolve(str(p, 'data') ?? DEFAULT_DATA);
      const base = baseUrl(p);
      if (await answers(base)) throw new UsageError(`an endpoint is running at ${base}: stop it first (it would write its state back), then reset`);
      const removed = resetState(dir);
      console.log(removed.length ? `reset: removed ${removed.join(', ')} in ${dir}` : `reset: no state in ${dir} (nothing to do)`);
      return EXIT.OK;
    },
  },
  'add-device': {
    spec: cmd('add-device NAME [--token-file FILE | --token T] [--cert device.pem]', 'Creates a device (random token if none given) and prints it with its token; --cert registers its X.509 client certificate (mutual DTLS).',
      [
        { name: 'token', type: 'string', value: 'TOKEN', help: 'the access token to give it', default: 'random, 20 characters' },
        { name: 'token-file', type: 'string', value: 'FILE', help: 'read the token to give it from FILE' },
        { name: 'cert', type: 'string', value: 'FILE', help: 'X.509 client certificate (PEM) of the device' },
      ], ['add-device thermo-1', 'add-device thermo-2 --token-file token.txt', 'add-device x509-1 --cert .certs/device.pem']),
    async run(p, args) {
      const name = need(args[0], 'NAME');
      if (str(p, 'token') && str(p, 'token-file')) throw new UsageError('--token and --token-file: give one');
      const token = str(p, 'token') ?? (str(p, 'token-file') ? readText(str(p, 'token-file')!, '--token-file').trim() : undefined);
      const cert = str(p, 'cert');
      out(await api(p, 'POST', '/api/devices', { name, ...(token ? { token } : {}), ...(cert ? { certPem: readText(cert, '--cert') } : {}) }));
      return EXIT.OK;
    },
  },
  devices: {
    spec: cmd('devices [--show-secrets]', 'Lists the devices; access tokens are masked unless --show-secrets.',
      [{ name: 'show-secrets', type: 'boolean', help: 'print the access tokens too' }], ['devices', 'devices --show-secrets']),
    async run(p) {
      const list = (await api(p, 'GET', '/api/devices')) as { token?: string }[];
      if (!flag(p, 'show-secrets')) for (const d of list) if (typeof d.token === 'string') d.token = `*** (${d.token.length} characters; --show-secrets prints it)`;
      out(list);
      return EXIT.OK;
    },
  },
  telemetry: {
    spec: cmd('telemetry NAME [--keys a,b]', 'Telemetry history of a device, newest first.',
      [{ name: 'keys', type: 'string', value: 'LIST', help: 'only these keys (comma separated)', default: 'all' }], ['telemetry sim-device-1', 'telemetry sim-device-1 --keys temperature']),
    async run(p, args) {
      const keys = str(p, 'keys');
      out(await api(p, 'GET', `/api/devices/${dev(args)}/telemetry${keys ? `?keys=${encodeURIComponent(keys)}` : ''}`));
      return EXIT.OK;
    },
  },
  attributes: {
    spec: cmd('attributes NAME', 'Client and shared attributes of a device.', [], ['attributes sim-device-1']),
    async run(p, args) {
      out(await api(p, 'GET', `/api/devices/${dev(args)}/attributes`));
      return EXIT.OK;
    },
  },
  'set-shared': {
    spec: cmd('set-shared NAME key=value ...', 'Sets shared attributes (values parsed as JSON when possible); observers are notified.', [], ['set-shared sim-device-1 reportingInterval=5']),
    async run(p, args) {
      const body: Record<string, unknown> = {};
      for (const kv of args.slice(1)) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new UsageError(`expected key=value, got '${kv}'`);
        body[kv.slice(0, i)] = jsonOrString(kv.slice(i + 1));
      }
      const name = dev(args);
      if (!Object.keys(body).length) throw new UsageError('nothing to set: give key=value ...');
      out(await api(p, 'POST', `/api/devices/${name}/attributes/shared`, body));
      return EXIT.OK;
    },
  },
  'delete-shared': {
    spec: cmd('delete-shared NAME key ...', 'Deletes shared attributes; observers get {"deleted":[...]}.', [], ['delete-shared sim-device-1 reportingInterval']),
    async run(p, args) {
      const name = dev(args);
      if (args.length < 2) throw new UsageError('give the keys to delete');
      out(await api(p, 'DELETE', `/api/devices/${name}/attributes/shared?keys=${encodeURIComponent(args.slice(1).join(','))}`));
      return EXIT.OK;
    },
  },
  rpc: {
    spec: cmd('rpc NAME METHOD [PARAMS_JSON] [--timeout MS] [--persistent]', 'Server-side RPC: waits for the device\'s reply (exit 1 on timeout).',
      [
        { name: 'timeout', type: 'string', value: 'MS', help: 'how long to wait for the reply', default: '10000' },
        { name: 'persistent', type: 'boolean', help: 'persistent RPC (kept for a sleeping device)' },
      ], ['rpc sim-device-1 getState', `rpc sim-device-1 setInterval '{"interval":30}'`]),
    async run(p, args) {
      const name = dev(args);
      const method = need(args[1], 'METHOD');
      const timeoutMs = integer(p, 'timeout', undefined, 1);
      out(await api(p, 'POST', `/api/devices/${name}/rpc`, {
        method,
        params: args[2] !== undefined ? jsonOrString(args[2]) : null,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        persistent: flag(p, 'persistent'),
      }));
      return EXIT.OK;
    },
  },
  power: {
    spec: cmd('power NAME PSM|DRX|E_DRX [--activity MS] [--paging MS]', 'Sets a device\'s power mode (PSM and eDRX queue downlink while it sleeps).',
      [
        { name: 'activity', type: 'string', value: 'MS', help: 'PSM activity timer', default: '10000' },
        { name: 'paging', type: 'string', value: 'MS', help: 'eDRX paging transmission window', default: '10000' },
      ], ['power sim-device-1 PSM --activity 2000']),
    async run(p, args) {
      const name = dev(args);
      const mode = args[1];
      if (mode !== 'PSM' && mode !== 'DRX' && mode !== 'E_DRX') throw new UsageError(`mode must be PSM, DRX or E_DRX (got '${mode ?? ''}')`);
      const activity = integer(p, 'activity');
      const paging = integer(p, 'paging');
      out(await api(p, 'PUT', `/api/devices/${name}/power`, {
        powerMode: mode,
        ...(activity !== undefined ? { psmActivityTimer: activity } : {}),
        ...(paging !== undefined ? { pagingTransmissionWindow: paging } : {}),
      }));
      return EXIT.OK;
    },
  },
  payload: {
    spec: cmd('payload NAME json|protobuf [--schemas DIR] [--telemetry F] [--attributes F] [--rpc-request F] [--rpc-response F]',
      'Sets the transport payload type of a device\'s profile. protobuf takes the four schemas from DIR (telemetry.proto, attributes.proto, rpc-request.proto, rpc-response.proto) or from single files; any not given are ThingsBoard\'s UI defaults.',
      [
        { name: 'schemas', type: 'string', value: 'DIR', help: 'a profile directory such as tools/proto/profiles/device' },
        { name: 'telemetry', type: 'string', value: 'FILE', help: 'telemetry schema (.proto)' },
        { name: 'attributes', type: 'string', value: 'FILE', help: 'attributes schema' },
        { name: 'rpc-request', type: 'string', value: 'FILE', help: 'server-side RPC request schema' },
        { name: 'rpc-response', type: 'string', value: 'FILE', help: 'server-side RPC response schema' },
      ], ['payload sim-device-1 protobuf --schemas tools/proto/profiles/device', 'payload sim-device-1 json']),
    async run(p, args) {
      const name = dev(args);
      const type = (args[1] ?? '').toLowerCase();
      if (type !== 'json' && type !== 'protobuf') throw new UsageError(`payload type must be json or protobuf (got '${args[1] ?? ''}')`);
      const body: Record<string, string> = { transportPayloadType: type === 'json' ? 'JSON' : 'PROTOBUF' };
      if (type === 'protobuf') {
        const dir = str(p, 'schemas');
        for (const [key, opt, file] of [['telemetry', 'telemetry', 'telemetry.proto'], ['attributes', 'attributes', 'attributes.proto'], ['rpcRequest', 'rpc-request', 'rpc-request.proto'], ['rpcResponse', 'rpc-response', 'rpc-response.proto']] as const) {
          const f = str(p, opt) ?? (dir ? path.join(dir, file) : undefined);
          if (f) body[key] = readText(f, `--${opt}`);
        }
      }
      // the device's name and payload type only: the reply also carries its access token, never printed
      const r = (await api(p, 'PUT', `/api/devices/${name}/payload`, body)) as { name?: string; transportPayloadType?: string };
      out({ name: r.name ?? name, transportPayloadType: r.transportPayloadType ?? body.transportPayloadType! });
      return EXIT.OK;
    },
  },
  'ota-upload': {
    spec: cmd('ota-upload FILE --title T --version V [--algorithm A] [--checksum HEX]', 'Uploads a firmware package (as ThingsBoard does: the checksum computed with the algorithm, or given). Assign it with ota-assign.',
      [
        { name: 'title', type: 'string', value: 'T', help: 'package title (fw_title)' },
        { name: 'version', type: 'string', value: 'V', help: 'package version (fw_version)' },
        { name: 'algorithm', type: 'string', value: 'A', help: 'MD5, SHA256, SHA384, SHA512, CRC32, MURMUR3_32 or MURMUR3_128', default: 'SHA256' },
        { name: 'checksum', type: 'string', value: 'HEX', help: 'the checksum to publish instead of the computed one', default: 'computed' },
      ], ['ota-upload build/fw-1.1.bin --title sim-fw --version 1.1.0 --algorithm CRC32']),
    async run(p, args) {
      const file = need(args[0], 'FILE');
      const title = str(p, 'title'), version = str(p, 'version');
      if (!title || !version) throw new UsageError('--title and --version are required');
      let data: Buffer;
      try { data = readFileSync(file); } catch (e) { throw new UsageError(`FILE: cannot read ${file}: ${(e as Error).message}`); }
      out(await api(p, 'POST', '/api/ota/packages', { title, version, data: data.toString('base64'), checksumAlgorithm: str(p, 'algorithm') ?? 'SHA256', ...(str(p, 'checksum') ? { checksum: str(p, 'checksum') } : {}) }));
      return EXIT.OK;
    },
  },
  'ota-packages': {
    spec: cmd('ota-packages', 'Lists the uploaded firmware packages (title, version, size, checksum).', [], ['ota-packages']),
    async run(p) {
      out(await api(p, 'GET', '/api/ota/packages'));
      return EXIT.OK;
    },
  },
  'ota-assign': {
    spec: cmd('ota-assign NAME TITLE VERSION', 'Assigns an uploaded firmware package to a device: sets its fw_* shared attributes, which the device observes.', [], ['ota-assign sim-device-1 sim-fw 1.1.0']),
    async run(p, args) {
      const name = dev(args);
      out(await api(p, 'POST', `/api/devices/${name}/ota`, { title: need(args[1], 'TITLE'), version: need(args[2], 'VERSION') }));
      return EXIT.OK;
    },
  },
  'fw-state': {
    spec: cmd('fw-state NAME', 'The fw_state history a device reported (QUEUED, DOWNLOADING ... UPDATED or FAILED with fw_error), oldest first.', [], ['fw-state sim-device-1']),
    async run(p, args) {
      out(await api(p, 'GET', `/api/devices/${dev(args)}/fw-state`));
      return EXIT.OK;
    },
  },
  'add-profile': {
    spec: cmd('add-profile KEY (--secret-file FILE | SECRET) [ALLOW_CREATE_NEW_DEVICES|CHECK_PRE_PROVISIONED_DEVICES]', 'Adds a device provisioning profile (key + secret).',
      [{ name: 'secret-file', type: 'string', value: 'FILE', help: 'read the provisioning secret from FILE instead of the command line' }],
      ['add-profile my-key --secret-file secret.txt', 'add-profile my-key my-secret CHECK_PRE_PROVISIONED_DEVICES']),
    async run(p, args) {
      const key = need(args[0], 'KEY');
      const fromFile = str(p, 'secret-file');
      const secret = fromFile ? readText(fromFile, '--secret-file').trim() : need(args[1], 'SECRET (or --secret-file FILE)');
      const strategy = (fromFile ? args[1] : args[2]) ?? 'ALLOW_CREATE_NEW_DEVICES';
      if (strategy !== 'ALLOW_CREATE_NEW_DEVICES' && strategy !== 'CHECK_PRE_PROVISIONED_DEVICES') throw new UsageError(`strategy must be ALLOW_CREATE_NEW_DEVICES or CHECK_PRE_PROVISIONED_DEVICES (got '${strategy}')`);
      out(await api(p, 'POST', '/api/provision-profiles', { key, secret, strategy }));
      return EXIT.OK;
    },
  },
};

const USAGE = `usage: npm run tb-server -- <command> [options]        (npm run tb-server -- <command> --help: its options)

server:
  serve [--coap-port N] [--http-port N] [--data DIR] [--host H] [--response-delay MS] [--piggyback] [--quiet]
        [--coaps-port N --cert server.pem --key server.key [--ca ca.pem]]
                                       run the ThingsBoard-compatible CoAP endpoint in the foreground
  reset [--data DIR]                   clear the endpoint's state (devices, telemetry, attributes)

admin (talks to a running server: --http URL, default http://127.0.0.1:${DEFAULT_HTTP_PORT}; admin token from
       --data DIR/admin-token, default ${DEFAULT_DATA}, or TB_ADMIN_TOKEN):
  add-device NAME [--token-file F | --token T] [--cert device.pem]
                                       create a device (random token if none); prints its token
  devices [--show-secrets]             list devices (tokens masked unless --show-secrets)
  telemetry NAME [--keys a,b]          telemetry history, newest first
  attributes NAME                      client and shared attributes
  set-shared NAME key=value ...        set shared attributes (values parsed as JSON when possible)
  delete-shared NAME key ...           delete shared attributes
  rpc NAME METHOD [PARAMS_JSON] [--timeout MS] [--persistent]
                                       server-side RPC; waits for the device's reply
  power NAME PSM|DRX|E_DRX [--activity MS] [--paging MS]
  payload NAME json|protobuf [--schemas DIR]
                                       device profile payload type; protobuf with the profile's .proto files
  ota-upload FILE --title T --version V [--algorithm A] [--checksum HEX]
                                       upload a firmware package (assign it with ota-assign)
  ota-packages                         list the uploaded firmware packages
  ota-assign NAME TITLE VERSION        assign a package to a device (its fw_* shared attributes)
  fw-state NAME                        the fw_state history the device reported
  add-profile KEY (SECRET | --secret-file F) [ALLOW_CREATE_NEW_DEVICES|CHECK_PRE_PROVISIONED_DEVICES]

examples:
  npm run tb-server -- serve
  npm run tb-server -- set-shared sim-device-1 reportingInterval=5
  npm run tb-server -- rpc sim-device-1 getState

exit codes: 0 done, 1 runtime failure (no endpoint, HTTP error, RPC timeout), 2 usage or configuration error
`;

function need(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`${what} is required`);
  return v;
}

function dev(args: string[]): string {
  return encodeURIComponent(need(args[0], 'device NAME'));
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${what} ${file}: ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
}

function jsonOrString(v: string): unknown {
  try { return JSON.parse(v); } catch { return v; }
}

function baseUrl(p: Parsed): string {
  const b = str(p, 'http') ?? `http://127.0.0.1:${DEFAULT_HTTP_PORT}`;
  let u: URL;
  try {
    u = new URL(b);
  } catch {
    throw new UsageError(`--http must be a URL such as http://127.0.0.1:8080 (got '${b}')`);
  }
  if (u.protocol !== 'http:') throw new UsageError(`--http must be an http:// URL (got '${b}')`);
  return b.replace(/\/$/, '');
}

async function answers(base: string): Promise<boolean> {
  try {
    await fetch(`${base}/api/devices`, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

function adminToken(p: Parsed): string {
  const env = process.env.TB_ADMIN_TOKEN;
  if (env) return env;
  const dir = path.resolve(str(p, 'data') ?? DEFAULT_DATA);
  const t = readAdminToken(dir);
  if (!t) throw new UsageError(`no admin token in ${adminTokenPath(dir)}: start the endpoint (npm run tb-server -- serve) or give --data DIR of the running one`);
  return t;
}

async function api(p: Parsed, method: string, urlPath: string, body?: unknown): Promise<unknown> {
  const base = baseUrl(p);
  const token = adminToken(p);
  let res: Response;
  try {
    res = await fetch(base + urlPath, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new Error(`no endpoint answers at ${base} (${cause}): start it with npm run tb-server -- serve, or give --http`);
  }
  const text = await res.text();
  let data: unknown = null;
  try { data = text ? JSON.parse(text) as unknown : null; } catch { data = text; }
  if (!res.ok) {
    const err = (data as { error?: string } | null)?.error ?? res.statusText;
    throw new Error(`HTTP ${res.status}: ${err}${res.status === 401 ? ` (the token in ${str(p, 'data') ?? DEFAULT_DATA}/admin-token is not this endpoint's: give --data DIR of the running endpoint)` : ''}`);
  }
  return data;
}

const out = (v: unknown): void => { console.log(JSON.stringify(v, null, 2)); };

async function main(argv: string[]): Promise<number> {
  // The command is the first argument that is neither an option nor an option's value.
  const takesValue = new Set(Object.values(COMMANDS).flatMap((c) => c.spec.options.filter((o) => o.type === 'string').map((o) => `--${o.name}`)));
  let i = -1;
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (a === '--') break;
    if (!a.startsWith('-')) { i = k; break; }
    if (takesValue.has(a)) k++;
  }
  const name = i >= 0 ? argv[i]! : undefined;
  const rest = i >= 0 ? [...argv.slice(0, i), ...argv.slice(i + 1)] : argv;
  if (!name) {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(USAGE);
      return EXIT.OK;
    }
    process.stderr.write(USAGE);
    return EXIT.USAGE;
  }
  const c = COMMANDS[name];
  if (!c) {
    process.stderr.write(`unknown command: ${name}\n${USAGE}`);
    return EXIT.USAGE;
  }
  // Options may come before or after the command; everything else is the command's arguments.
  const p = parseCommandLine(c.spec, rest);
  if (flag(p, 'help')) {
    console.log(helpText(c.spec, 'exit codes: 0 done, 1 runtime failure, 2 usage or configuration error'));
    return EXIT.OK;
  }
  return c.run(p, p.positionals);
}

if (require.main === module) runMain('tb-server', () => main(process.argv.slice(2)));
