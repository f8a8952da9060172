/*
 * What `mcconfig -d -p lin` does with manifest.json before xsc/xsl, for the XS host
 * (tools/xs/host): reads the manifest and the manifests it includes (includes first, then the
 * manifest, then its platform section, later ones overriding earlier ones, as tools/mcmanifest.js
 * merges them), computes the module map (specifier -> file), the preload list (a wildcard pattern
 * matches JavaScript modules only, as mcconfig's filterPreload does), config (merged, then
 * command-line `key=value` overrides as strings, like mcconfig), creation (mcconfig's defaults), and
 * resources; compiles each TypeScript module to its own JavaScript file (esbuild transform, es2022,
 * never a bundle) and writes the plan the host reads.
 *
 * `$(MODDABLE)/...` includes are the SDK's: the host provides their modules itself (SDK_MANIFESTS);
 * an SDK manifest it does not know fails the build, naming it.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { transformSync } from 'esbuild';

export const ROOT = resolve(__dirname, '../..');
export const HOST_MODULES = join(ROOT, 'tools/xs/host/modules');
/** Built by tools/xs/host/Makefile (npm postinstall); not under build/, which `node-gyp rebuild` wipes. */
export const HOST_BINARY = join(ROOT, 'node_modules/.cache/xs-host/xshost');
export const PLATFORM = 'lin';

/** Native sources the host links (tools/xs/host/Makefile); a manifest naming another C file fails. */
const LINKED_NATIVES = ['xs_binding', 'dtls_core'];

interface SdkManifest {
  modules: Record<string, string>;
  preload: string[];
  include?: string[];
  /** "strip": xsl then freezes the built-ins even without preloads */
  strip?: boolean;
  /** the SDK manifest's config for lin; FILES_ROOT is replaced by the run's files directory */
  config?: Record<string, unknown>;
}

/** Placeholder for the run's own files directory (config.file.root), so runs never share files. */
const FILES_ROOT = '$(XS_HOST_FILES)/';
/**
 * The SDK manifests this firmware includes, as they resolve on lin (Moddable 8.2.3), and the host
 * module standing in for each module. Read from $MODDABLE/examples/manifest_*.json,
 * build/simulators/manifest.json, modules/io/manifests/lin, modules/network/net, modules/files/*.
 */
const SDK_MANIFESTS: Record<string, SdkManifest> = {
  'examples/manifest_base.json': {
    // + modules/files/resource (Resource), build/simulators (time, timer preloaded), instrumentation
    modules: { Resource: 'Resource.js', time: 'time.js', timer: 'timer.js' },
    preload: ['Resource', 'time', 'timer'],
    include: ['examples/manifest_typings.json'],
    strip: true, // "strip": "*"
  },
  'examples/manifest_typings.json': { modules: {}, preload: [] },
  // on lin: network/net, socket, sntp, wifi; the firmware uses net only
  'examples/manifest_net.json': { modules: { net: 'net.js' }, preload: [] },
  'modules/network/net/manifest.json': { modules: { net: 'net.js' }, preload: [] },
  // on lin: modules/io/manifests/lin: embedded:io/socket/{tcp,listener,udp} preloaded (tcp and udp here)
  'modules/io/manifest.json': {
    modules: { 'embedded:io/socket/udp': 'udp.js', 'embedded:io/socket/tcp': 'tcp.js' },
    preload: ['embedded:io/socket/udp', 'embedded:io/socket/tcp'],
    include: ['examples/manifest_net.json'],
  },
  'modules/files/resource/manifest.json': { modules: { Resource: 'Resource.js' }, preload: ['Resource'] },
  // the SDK has flash on esp/esp32/nrf52 only; on lin the host gives it an image file
  'modules/files/flash/manifest.json': { modules: { flash: 'flash.js' }, preload: ['flash'] },
  // lin: modules/files/file/lin (root /tmp/ there; here the run's files directory)
  'modules/files/file/manifest.json': { modules: { file: 'file.js' }, preload: ['file'], config: { file: { root: FILES_ROOT } } },
};

export interface Creation {
  chunk: { initial: number; incremental: number };
  heap: { initial: number; incremental: number };
  stack: number;
  keys: { initial: number; incremental: number; name: number; symbol: number };
  parser: { buffer: number; table: number };
  static: number;
  main: string;
}

export interface ModuleEntry {
  specifier: string;
  source: string;
  kind: 'js' | 'ts' | 'host' | 'config';
  /** the manifest that named it */
  from: string;
}

export interface Plan {
  dir: string;
  /** config.file.root when the manifest includes the SDK's file module (<dir>/files/, not /tmp/) */
  filesDir: string;
  planPath: string;
  resourcesDir: string;
  modules: Map<string, ModuleEntry>;
  preloads: string[];
  main: string;
  config: Record<string, unknown>;
  creation: Creation;
  /** the built-ins are frozen after the preload phase */
  freeze: boolean;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

type Json = Record<string, unknown>;
interface Merged {
  config: Json;
  creation: Json;
  modules: { key: string; path: string; dir: string; from: string }[];
  hostModules: Map<string, { file: string; from: string }>;
  preload: string[];
  resources: { path: string; dir: string }[];
  errors: string[];
  strip: boolean;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** mcmanifest's mergeProperties: objects merge recursively, anything else replaces. */
function mergeProperties(target: Json, source: unknown): void {
  if (!isObject(source)) return;
  for (const [k, v] of Object.entries(source)) {
    if (isObject(v) && isObject(target[k])) mergeProperties(target[k] as Json, v);
    else target[k] = isObject(v) ? structuredClone(v) : v;
  }
}

function matchPlatform(platforms: Json, name: string): Json | undefined {
  const parts = name.split('/');
  while (parts.length) {
    const partial = parts.join('/');
    for (const n of Object.keys(platforms)) {
      if (n.endsWith('/*') && partial.startsWith(n.slice(0, -1))) return platforms[n] as Json;
      if (n.startsWith('*/') && partial.endsWith(n.slice(1))) return platforms[n] as Json;
      if (partial === n) return platforms[n] as Json;
    }
    parts.length -= 1;
  }
  return '...' in platforms ? (platforms['...'] as Json) : undefined;
}

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? (v as string[]) : [v as string]);

function readManifest(path: string, merged: Merged, seen: Set<string>): void {
  if (seen.has(path)) return;
  seen.add(path);
  let manifest: Json;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new ManifestError(`${path}: invalid manifest: ${(e as Error).message}`);
  }
  const dir = dirname(path);
  const platform = isObject(manifest.platforms) ? matchPlatform(manifest.platforms, PLATFORM) : undefined;
  for (const include of [...list(manifest.include), ...list(platform?.include)]) {
    const sdk = /^\$\((MODDABLE|MODULES)\)\/(.*)$/.exec(include);
    if (sdk) includeSdk(sdk[1] === 'MODULES' ? `modules/${sdk[2]}` : sdk[2]!, path, merged, seen);
    else if (include.includes('$(')) throw new ManifestError(`${path}: include ${include}: unknown build variable`);
    else readManifest(resolve(dir, include), merged, seen);
  }
  for (const section of [manifest, platform]) {
    if (!section) continue;
    mergeProperties(merged.config, section.config);
    mergeProperties(merged.creation, section.creation);
    if (isObject(section.modules))
      for (const [key, value] of Object.entries(section.modules))
        for (const p of list(value)) merged.modules.push({ key, path: p, dir, from: path });
    merged.preload.push(...list(section.preload));
    if (section.strip !== undefined) merged.strip = true;
    if (isObject(section.resources))
      for (const value of Object.values(section.resources)) for (const p of list(value)) merged.resources.push({ path: p, dir });
    if (section === platform && typeof platform.error === 'string') merged.errors.push(`${path}: ${platform.error}`);
  }
}

function includeSdk(name: string, from: string, merged: Merged, seen: Set<string>): void {
  if (seen.has(`$(MODDABLE)/${name}`)) return;
  seen.add(`$(MODDABLE)/${name}`);
  const sdk = SDK_MANIFESTS[name];
  if (!sdk)
    throw new ManifestError(
      `${from}: includes $(MODDABLE)/${name}, which the XS host does not provide (known: ${Object.keys(SDK_MANIFESTS).join(', ')}); add its modules to tools/xs/host and tools/xs/manifest.ts`,
    );
  for (const inc of sdk.include ?? []) includeSdk(inc, `$(MODDABLE)/${name}`, merged, seen);
  for (const [spec, file] of Object.entries(sdk.modules)) merged.hostModules.set(spec, { file: join(HOST_MODULES, file), from: `$(MODDABLE)/${name}` });
  merged.preload.push(...sdk.preload);
  if (sdk.strip) merged.strip = true;
  mergeProperties(merged.config, sdk.config);
}

/** Files a manifest module path names: "./src/main" -> src/main.ts, "./src/coap/*" -> every module in src/coap. */
function expandModulePath(dir: string, path: string): { name: string; file: string }[] {
  const full = isAbsolute(path) ? path : resolve(dir, path);
  const usable = (f: string) => /\.(ts|js|c)$/.test(f) && !f.endsWith('.d.ts');
  if (full.endsWith('*')) {
    const d = dirname(full);
    if (!existsSync(d)) return [];
    return readdirSync(d)
      .filter((f) => usable(f) && statSync(join(d, f)).isFile())
      .map((f) => ({ name: f.replace(/\.(ts|js|c)$/, ''), file: join(d, f) }));
  }
  for (const ext of ['.js', '.ts', '.c']) if (existsSync(full + ext)) return [{ name: basename(full), file: full + ext }];
  if (existsSync(full) && usable(full)) return [{ name: basename(full).replace(/\.(ts|js|c)$/, ''), file: full }];
  return [];
}

function creationWithDefaults(c: Json): Creation {
  const o = (v: unknown) => (isObject(v) ? v : {});
  const n = (v: unknown, d: number) => (typeof v === 'number' && v > 0 ? v : d);
  const chunk = o(c.chunk);
  const heap = o(c.heap);
  const keys = o(c.keys);
  const parser = o(c.parser);
  // mcconfig's filterCreation defaults
  return {
    chunk: { initial: n(chunk.initial, 32768), incremental: typeof chunk.incremental === 'number' ? chunk.incremental : 1024 },
    heap: { initial: n(heap.initial, 2048), incremental: typeof heap.incremental === 'number' ? heap.incremental : 64 },
    stack: typeof c.stack === 'number' ? c.stack : 384,
    keys: {
      initial: n(keys.initial ?? keys.available, 256),
      incremental: typeof keys.incremental === 'number' ? keys.incremental : 0,
      name: n(keys.name, 127),
      symbol: n(keys.symbol, 127),
    },
    parser: { buffer: n(parser.buffer, 32768), table: n(parser.table, 1993) },
    static: typeof c.static === 'number' ? c.static : 0,
    main: typeof c.main === 'string' ? c.main : 'main',
  };
}

/** mcconfig's command line: `key=value` sets config[key] to the string value. */
export function parseConfigArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of args) {
    const i = a.indexOf('=');
    if (i <= 0) throw new ManifestError(`not key=value: ${a}`);
    out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}

/**
 * XS keys the host needs on top of creation.keys: a device gets the built-ins' and the preloaded
 * modules' keys from flash (xsl puts them there); here they are created at run time.
 */
const HOST_EXTRA_KEYS = 4096;

export interface BuildOptions {
  manifest: string;
  outDir: string;
  /** `key=value` overrides, as on mcconfig's command line (values stay strings). */
  overrides?: Record<string, string>;
}

export function buildFirmware(options: BuildOptions): Plan {
  const merged: Merged = { config: {}, creation: {}, modules: [], hostModules: new Map(), preload: [], resources: [], errors: [], strip: false };
  readManifest(resolve(options.manifest), merged, new Set());
  if (merged.errors.length) throw new ManifestError(`manifest error for platform ${PLATFORM}:\n  ${merged.errors.join('\n  ')}`);

  const modules = new Map<string, ModuleEntry>();
  for (const [spec, { file, from }] of merged.hostModules) modules.set(spec, { specifier: spec, source: file, kind: 'host', from });
  for (const m of merged.modules) {
    const files = expandModulePath(m.dir, m.path);
    if (!files.length) throw new ManifestError(`${m.from}: module "${m.key}": ${m.path} names no .js or .ts file`);
    for (const f of files) {
      if (f.file.endsWith('.c')) {
        if (!LINKED_NATIVES.includes(f.name))
          throw new ManifestError(`${m.from}: native ${f.file} is not linked into the XS host (tools/xs/host/Makefile links ${LINKED_NATIVES.join(', ')})`);
        continue;
      }
      const spec = m.key === '*' ? f.name : m.key.endsWith('*') ? m.key.slice(0, -1) + f.name : m.key;
      modules.set(spec, { specifier: spec, source: f.file, kind: f.file.endsWith('.ts') ? 'ts' : 'js', from: m.from });
    }
  }

  const config: Record<string, unknown> = merged.config;
  for (const [k, v] of Object.entries(options.overrides ?? {})) config[k] = v;
  const dir = resolve(options.outDir);
  const filesDir = join(dir, 'files');
  mkdirSync(filesDir, { recursive: true });
  const file = config.file as { root?: unknown } | undefined;
  if (file && file.root === FILES_ROOT) config.file = { ...file, root: filesDir + '/' };
  modules.set('mc/config', { specifier: 'mc/config', source: '', kind: 'config', from: 'mcconfig' });

  // mcconfig's filterPreload: "x/*" matches JavaScript modules only; a name matches .js or .ts
  const preloads: string[] = [];
  for (const pattern of merged.preload) {
    const star = pattern.lastIndexOf('*');
    for (const m of modules.values()) {
      const match =
        star >= 0 ? (m.kind === 'js' || m.kind === 'host') && m.specifier.startsWith(pattern.slice(0, star)) : m.specifier === pattern;
      if (match && !preloads.includes(m.specifier)) preloads.push(m.specifier);
    }
  }
  if (preloads.length) preloads.push('mc/config');

  const creation = creationWithDefaults(merged.creation);
  if (!modules.has(creation.main)) throw new ManifestError(`creation.main "${creation.main}" is not a module of the manifest`);

  const modsDir = join(dir, 'mods');
  const resourcesDir = join(dir, 'resources');
  mkdirSync(modsDir, { recursive: true });
  mkdirSync(resourcesDir, { recursive: true });
  const lines: string[] = [];
  const c = creation;
  lines.push(
    `creation\t${c.chunk.initial} ${c.chunk.incremental} ${c.heap.initial} ${c.heap.incremental} ${c.stack} ${c.keys.initial + HOST_EXTRA_KEYS} ${Math.max(c.keys.incremental, 256)} ${c.keys.name} ${c.keys.symbol} ${c.parser.buffer} ${c.parser.table} ${c.static}`,
  );
  for (const m of modules.values()) {
    let out: string;
    if (m.kind === 'host') out = m.source;
    else {
      out = join(modsDir, m.specifier.replace(/[^A-Za-z0-9_./-]/g, '_') + '.js');
      mkdirSync(dirname(out), { recursive: true });
      if (m.kind === 'config') writeFileSync(out, configModule(config));
      else if (m.kind === 'js') copyFileSync(m.source, out); // xsc compiles .js as it is (host functions: `@ "name"`)
      else writeFileSync(out, compileTs(m.source));
    }
    lines.push(`module\t${m.specifier}\t${out}`);
  }
  for (const p of preloads) lines.push(`preload\t${p}`);
  lines.push(`main\t${creation.main}`);
  // xsl freezes the built-ins when there are preloads or "strip" (manifest_base strips)
  const freeze = preloads.length > 0 || merged.strip;
  lines.push(`freeze\t${freeze ? 1 : 0}`);
  for (const r of merged.resources)
    for (const f of expandResource(r.dir, r.path)) copyFileSync(f, join(resourcesDir, basename(f)));
  const planPath = join(dir, 'plan.txt');
  writeFileSync(planPath, lines.join('\n') + '\n');
  return { dir, filesDir, planPath, resourcesDir, modules, preloads, main: creation.main, config, creation, freeze };
}

function expandResource(dir: string, path: string): string[] {
  const full = isAbsolute(path) ? path : resolve(dir, path);
  if (full.endsWith('*')) {
    const d = dirname(full);
    return readdirSync(d).map((f) => join(d, f)).filter((f) => statSync(f).isFile());
  }
  for (const f of [full, ...['.der', '.pem', '.bin', '.json'].map((e) => full + e)]) if (existsSync(f)) return [f];
  throw new ManifestError(`resource ${path} not found (from ${dir})`);
}

/** mcconfig's mc.config.js */
function configModule(config: Record<string, unknown>): string {
  const body = Object.entries(config)
    .map(([k, v]) => `\t${JSON.stringify(k)}: ${JSON.stringify(v, null, '\t')},`)
    .join('\n');
  return `/* generated by tools/xs/manifest.ts, as mcconfig's mc.config.js */\nexport default Object.freeze({\n${body}\n}, true);\n`;
}

function compileTs(file: string): string {
  const source = readFileSync(file, 'utf8');
  try {
    return transformSync(source, {
      loader: 'ts',
      format: 'esm',
      target: 'es2022',
      sourcefile: file,
      tsconfigRaw: { compilerOptions: { useDefineForClassFields: true, verbatimModuleSyntax: false } },
    }).code;
  } catch (e) {
    throw new ManifestError(`${file}: does not compile: ${(e as Error).message}`);
  }
}

