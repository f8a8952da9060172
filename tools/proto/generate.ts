/*
 * Protobuf device-profile schemas -> static TypeScript encoders/decoders for the device.
 *
 *   npm run proto            regenerates src/proto/gen/ from tools/proto/profiles/* and
 *                            tools/proto/thingsboard.proto
 *   npm run proto -- --check fails if a generated file is not what the schemas give
 *
 * The .proto files are parsed with protobufjs here, at build time; the device carries no parser
 * and no reflection, only the straight-line code written below over src/proto/wire.ts.
 *
 * A profile directory holds ThingsBoard's four user schemas (telemetry.proto, attributes.proto,
 * rpc-request.proto, rpc-response.proto) and profile.json:
 *   { "description": "...",
 *     "keys": { "<app telemetry key>": "<field name>" },   // optional renames; default: same name
 *     "checkAppKeys": true }                                  // false only for reference schemas
 * Each schema's root is its LAST top-level message (ThingsBoard's DynamicProtoUtils). A telemetry
 * root with `ts` (int64) and `values` (message) is the timestamped form.
 *
 * Build-time mapping check (checkAppKeys): every telemetry key the app reports
 * (src/device/sources.ts) must have a field in the telemetry values message, and the field's type
 * must hold the value (the app's readings are fractional numbers: double or float, as a scalar
 * with or without `optional`). A missing field or an integer/string/bool/bytes/message field is a
 * build error, never a silently dropped value.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import protobuf from 'protobufjs';

const ROOT = path.resolve(__dirname, '../..');
const PROFILES = path.join(__dirname, 'profiles');
const OUT = path.join(ROOT, 'src/proto/gen');

export class SchemaError extends Error {}

// ---------------------------------------------------------------------------- schema model

type Scalar =
  | 'double' | 'float' | 'int32' | 'int64' | 'uint32' | 'uint64' | 'sint32' | 'sint64'
  | 'fixed32' | 'fixed64' | 'sfixed32' | 'sfixed64' | 'bool' | 'string' | 'bytes';

const SCALARS = new Set<string>(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'bool', 'string', 'bytes']);
const WIRE: Record<string, number> = {
  double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5,
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0, enum: 0, string: 2, bytes: 2, message: 2,
};
const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

interface FieldModel {
  name: string; // proto name
  json: string; // lowerCamelCase JSON name (JsonFormat), also the TS property
  id: number;
  kind: Scalar | 'enum' | 'message';
  typeRef?: string; // TS name of the message/enum
  repeated: boolean;
  packed: boolean;
  presence: boolean; // optional / oneof member / message
  oneof?: string[]; // sibling json names (real oneofs only)
}

interface MessageModel {
  fullName: string;
  ts: string;
  fields: FieldModel[];
}

interface EnumModel {
  ts: string;
  values: [string, number][];
}

interface SchemaModel {
  messages: MessageModel[];
  enums: EnumModel[];
  root: MessageModel;
  topLevel: MessageModel[];
}

/** protobuf-java's ToJsonName: '_' dropped, the next character upper-cased. */
export function jsonName(name: string): string {
  let out = '';
  let cap = false;
  for (const ch of name) {
    if (ch === '_') cap = true;
    else if (cap) {
      out += ch.toUpperCase();
      cap = false;
    } else out += ch;
  }
  return out;
}

export function parseSchema(text: string, prefix: string, file: string): SchemaModel {
  let parsed: protobuf.IParserResult;
  try {
    parsed = protobuf.parse(text, { keepCase: true, alternateCommentMode: true });
  } catch (e) {
    throw new SchemaError(`${file}: ${(e as Error).message}`);
  }
  if (!/^\s*syntax\s*=\s*["']proto3["']/m.test(text.replace(/\/\/.*$/gm, ''))) throw new SchemaError(`${file}: needs syntax = "proto3" (ThingsBoard parses profile schemas as proto3)`);
  const root = parsed.root;
  try {
    root.resolveAll();
  } catch (e) {
    throw new SchemaError(`${file}: ${(e as Error).message}`);
  }
  let ns: protobuf.NamespaceBase = root;
  if (parsed.package) ns = root.lookup(parsed.package) as protobuf.Namespace;
  const tsName = (fullName: string): string => {
    const rel = parsed.package && fullName.startsWith(`.${parsed.package}.`) ? fullName.slice(parsed.package.length + 2) : fullName.replace(/^\./, '');
    return `${prefix}${rel.replace(/\./g, '_')}`;
  };
  const messages: MessageModel[] = [];
  const enums: EnumModel[] = [];
  const byType = new Map<protobuf.Type, MessageModel>();
  const visit = (n: protobuf.ReflectionObject): void => {
    if (n instanceof protobuf.Type) {
      const m: MessageModel = { fullName: n.fullName, ts: tsName(n.fullName), fields: [] };
      byType.set(n, m);
      messages.push(m);
      for (const f of n.fieldsArray) {
        if (f.map) throw new SchemaError(`${file}: ${n.name}.${f.name}: map fields are not supported by the device generator`);
        const kind: FieldModel['kind'] = SCALARS.has(f.type) ? (f.type as Scalar) : f.resolvedType instanceof protobuf.Enum ? 'enum' : 'message';
        const realOneof = f.partOf && !(f.options && f.options['proto3_optional']) ? f.partOf : undefined;
        const field: FieldModel = {
          name: f.name,
          json: (f.options && typeof f.options['json_name'] === 'string' ? f.options['json_name'] : jsonName(f.name)) as string,
          id: f.id,
          kind,
          repeated: f.repeated,
          packed: f.repeated && kind !== 'string' && kind !== 'bytes' && kind !== 'message' && f.packed !== false,
          presence: !f.repeated && (kind === 'message' || !!f.partOf),
        };
        // A property Object.prototype has would be assigned through the inherited (and, on XS after
        // preload, frozen) one: refuse the name rather than emit code that throws on the device.
        if (field.json in Object.prototype || field.json === '__proto__')
          throw new SchemaError(`${file}: ${n.name}.${f.name}: the JSON name '${field.json}' is an Object.prototype property; rename the field`);
        if (kind === 'enum' || kind === 'message') field.typeRef = tsName(f.resolvedType!.fullName);
        if (realOneof) field.oneof = realOneof.fieldsArray.map((x) => jsonName(x.name)).filter((x) => x !== field.json);
        m.fields.push(field);
      }
      m.fields.sort((a, b) => a.id - b.id);
      for (const c of n.nestedArray) visit(c);
    } else if (n instanceof protobuf.Enum) {
      enums.push({ ts: tsName(n.fullName), values: Object.entries(n.values) });
    } else if (n instanceof protobuf.Namespace) {
      for (const c of n.nestedArray) visit(c);
    }
  };
  for (const c of root.nestedArray) visit(c);
  const topLevel = ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type).map((t) => byType.get(t)!);
  if (!topLevel.length) throw new SchemaError(`${file}: no top-level message`);
  // Nesting must be finite: the device's decoder recurses once per nested message.
  const byTs = new Map(messages.map((m) => [m.ts, m]));
  const walk = (m: MessageModel, stack: string[]): void => {
    if (stack.includes(m.ts)) throw new SchemaError(`${file}: recursive message ${[...stack, m.ts].join(' -> ')} (the device decoder needs a bounded depth)`);
    for (const f of m.fields) if (f.kind === 'message') walk(byTs.get(f.typeRef!)!, [...stack, m.ts]);
  };
  for (const m of messages) walk(m, []);
  return { messages, enums, root: topLevel[topLevel.length - 1]!, topLevel };
}

// ---------------------------------------------------------------------------- code generation

const prop = (f: FieldModel): string => (/^[A-Za-z_$][\w$]*$/.test(f.json) ? `.${f.json}` : `[${JSON.stringify(f.json)}]`);
const key = (f: FieldModel): string => (/^[A-Za-z_$][\w$]*$/.test(f.json) ? f.json : JSON.stringify(f.json));

function tsType(f: FieldModel): string {
  let t: string;
  if (f.kind === 'message' || f.kind === 'enum') t = f.kind === 'enum' ? 'number' : f.typeRef!;
  else if (INT64.has(f.kind)) t = 'Int64';
  else if (f.kind === 'bool') t = 'boolean';
  else if (f.kind === 'string') t = 'string';
  else if (f.kind === 'bytes') t = 'Uint8Array';
  else t = 'number';
  return f.repeated ? `${t}[]` : t;
}

function tagBytes(id: number, wt: number): number {
  const v = id * 8 + wt;
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size expression of one value (without tag). */
function sizeOf(kind: FieldModel['kind'], v: string, typeRef?: string): string {
  switch (kind) {
    case 'double': case 'fixed64': case 'sfixed64': return '8';
    case 'float': case 'fixed32': case 'sfixed32': return '4';
    case 'bool': return '1';
    case 'int32': case 'enum': return `sizeInt32(${v})`;
    case 'uint32': return `sizeVarint32(${v})`;
    case 'sint32': return `sizeSint32(${v})`;
    case 'int64': return `sizeInt64(${v})`;
    case 'uint64': return `sizeUint64(${v})`;
    case 'sint64': return `sizeSint64(${v})`;
    case 'string': return `sizeString(${v})`;
    case 'bytes': return `sizeLen(${v}.length)`;
    case 'message': return `sizeLen(size_${typeRef}(${v}))`;
  }
}

const PUT: Record<string, string> = {
  double: 'putDouble', float: 'putFloat', int32: 'putInt32', int64: 'putInt64', uint32: 'putVarint32', uint64: 'putUint64',
  sint32: 'putSint32', sint64: 'putSint64', fixed32: 'putFixed32', fixed64: 'putFixed64', sfixed32: 'putSfixed32',
  sfixed64: 'putSfixed64', bool: 'putBool', bytes: 'putBytes', enum: 'putInt32',
};

/** Statement(s) writing one value at p (the tag already written). */
function writeOf(kind: FieldModel['kind'], v: string, typeRef?: string): string {
  switch (kind) {
    case 'string': return `p = putString(b, p, ${v}, utf8Size(${v}))`;
    case 'message': return `p = putVarint32(b, p, size_${typeRef}(${v})); p = write_${typeRef}(b, p, ${v}, s)`;
    case 'float': case 'double': return `p = ${PUT[kind]}(b, p, ${v}, s)`;
    default: return `p = ${PUT[kind]}(b, p, ${v})`;
  }
}

/** The tag's varint bytes as literal stores. */
function putTag(id: number, wt: number): string {
  let v = id * 8 + wt;
  const out: string[] = [];
  while (v > 127) {
    out.push(`b[p++] = ${(v % 128) | 0x80};`);
    v = Math.floor(v / 128);
  }
  out.push(`b[p++] = ${v};`);
  return out.join(' ');
}

function readOf(kind: FieldModel['kind']): string {
  return kind === 'enum' ? 'r.int32()' : `r.${kind}()`;
}

/** Condition under which an implicit-presence scalar is written (proto3: not its default). */
function notDefault(f: FieldModel, v: string): string {
  if (f.kind === 'string') return `${v} !== undefined && ${v} !== ''`;
  if (f.kind === 'bytes') return `${v} !== undefined && ${v}.length > 0`;
  if (f.kind === 'bool') return `${v} === true`;
  if (INT64.has(f.kind)) return `${v} !== undefined && ${v} !== 0 && ${v} !== 0n`;
  if (f.kind === 'double' || f.kind === 'float') return `${v} !== undefined && (${v} !== 0 || 1 / ${v} < 0)`;
  return `${v} !== undefined && ${v} !== 0`;
}

function defaultValue(f: FieldModel): string | undefined {
  if (f.repeated) return '[]';
  if (f.presence) return undefined;
  if (f.kind === 'string') return "''";
  if (f.kind === 'bool') return 'false';
  if (f.kind === 'bytes') return 'new Uint8Array(0)';
  return '0';
}

function genMessage(m: MessageModel, enumsByTs: Map<string, EnumModel>): string {
  const L: string[] = [];
  L.push(`export interface ${m.ts} {`);
  for (const f of m.fields) L.push(`  ${key(f)}?: ${tsType(f)};`);
  L.push('}', '');
  // size
  L.push(`function size_${m.ts}(m: ${m.ts}): number {`, '  let n = 0;');
  for (const f of m.fields) {
    const v = `m${prop(f)}`;
    const wt = f.packed ? 2 : WIRE[f.kind]!;
    const T = tagBytes(f.id, wt);
    if (f.repeated && f.packed) {
      L.push(`  if (${v} !== undefined && ${v}.length) {`, '    let b = 0;');
      const fixed = sizeOf(f.kind, 'x');
      if (/^\d+$/.test(fixed)) L.push(`    b = ${fixed} * ${v}.length;`);
      else L.push(`    for (const x of ${v}) b += ${fixed};`);
      L.push(`    n += ${T} + sizeLen(b);`, '  }');
    } else if (f.repeated) {
      L.push(`  if (${v} !== undefined) for (const x of ${v}) n += ${T} + ${sizeOf(f.kind, 'x', f.typeRef)};`);
    } else {
      const cond = f.presence ? `${v} !== undefined` : notDefault(f, v);
      L.push(`  if (${cond}) n += ${T} + ${sizeOf(f.kind, v, f.typeRef)};`);
    }
  }
  L.push('  return n;', '}', '');
  // write: returns the offset after the message
  L.push(`function write_${m.ts}(b: Uint8Array, p: number, m: ${m.ts}, s: FloatScratch | undefined): number {`);
  if (!m.fields.some((f) => f.kind === 'float' || f.kind === 'double' || f.kind === 'message')) L.push('  void s;');
  for (const f of m.fields) {
    const v = `m${prop(f)}`;
    if (f.repeated && f.packed) {
      const fixed = sizeOf(f.kind, 'x');
      L.push(`  if (${v} !== undefined && ${v}.length) {`, `    ${putTag(f.id, 2)}`);
      if (/^\d+$/.test(fixed)) L.push(`    p = putVarint32(b, p, ${fixed} * ${v}.length);`);
      else L.push('    let n = 0;', `    for (const x of ${v}) n += ${fixed};`, '    p = putVarint32(b, p, n);');
      L.push(`    for (const x of ${v}) ${writeOf(f.kind, 'x')};`, '  }');
    } else if (f.repeated) {
      L.push(`  if (${v} !== undefined) for (const x of ${v}) { ${putTag(f.id, WIRE[f.kind]!)} ${writeOf(f.kind, 'x', f.typeRef)}; }`);
    } else {
      const cond = f.presence ? `${v} !== undefined` : notDefault(f, v);
      L.push(`  if (${cond}) { ${putTag(f.id, WIRE[f.kind]!)} ${writeOf(f.kind, v, f.typeRef)}; }`);
    }
  }
  L.push('  return p;', '}', '');
  // read
  const defaults = m.fields.map((f) => [f, defaultValue(f)] as const).filter(([, d]) => d !== undefined).map(([f, d]) => `${key(f)}: ${d}`);
  L.push(`function read_${m.ts}(r: Reader, end: number, into?: ${m.ts}): ${m.ts} {`);
  L.push(`  const m: ${m.ts} = into ?? { ${defaults.join(', ')} };`);
  L.push('  const outer = r.end;', '  r.end = end;', '  while (r.pos < end) {', '    const t = r.tag();', '    switch (t) {');
  for (const f of m.fields) {
    const v = `m${prop(f)}`;
    const clear = f.oneof?.length ? ' ' + f.oneof.map((o) => `delete m${/^[A-Za-z_$][\w$]*$/.test(o) ? `.${o}` : `[${JSON.stringify(o)}]`};`).join(' ') : '';
    const native = WIRE[f.kind]!;
    if (f.kind === 'message') {
      const target = f.repeated ? '' : `, ${v}`;
      const assign = f.repeated ? `(${v} ??= []).push(read_${f.typeRef}(r, e))` : `${v} = read_${f.typeRef}(r, e${target})`;
      L.push(`      case ${f.id * 8 + 2}: {${clear} const e = r.len(); ${assign}; r.pos = e; break; }`);
    } else if (f.repeated) {
      L.push(`      case ${f.id * 8 + native}: (${v} ??= []).push(${readOf(f.kind)}); break;`);
      if (native !== 2) L.push(`      case ${f.id * 8 + 2}: { const e = r.len(); const a = (${v} ??= []); const o = r.end; r.end = e; while (r.pos < e) a.push(${readOf(f.kind)}); r.end = o; break; }`);
    } else {
      L.push(`      case ${f.id * 8 + native}:${clear} ${v} = ${readOf(f.kind)}; break;`);
    }
  }
  L.push('      default: r.skip(t);', '    }', '  }', '  r.end = outer;', '  return m;', '}', '');
  // TbValue conversions
  L.push(`function toTb_${m.ts}(m: ${m.ts}): TbObject {`, '  const o: TbObject = {};');
  for (const f of m.fields) {
    const v = `m${prop(f)}`;
    const conv = (x: string): string =>
      f.kind === 'message' ? `toTb_${f.typeRef}(${x})`
      : f.kind === 'enum' ? `enumName(${f.typeRef}, ${x})`
      : INT64.has(f.kind) ? `int64ToTb(${x})`
      : f.kind === 'bytes' ? `base64(${x})`
      : x;
    if (f.repeated) L.push(`  if (${v} !== undefined) o[${JSON.stringify(f.json)}] = ${v}.map((x) => ${conv('x')});`);
    else L.push(`  if (${v} !== undefined) o[${JSON.stringify(f.json)}] = ${conv(v)};`);
  }
  L.push('  return o;', '}', '');
  L.push(`function fromTb_${m.ts}(o: TbObject, at: string, alias?: Readonly<Record<string, string>>): ${m.ts} {`, `  const m: ${m.ts} = {};`);
  L.push('  for (const k of Object.keys(o)) {', '    const v = o[k]!;', '    if (v === null) continue; // ThingsBoard skips nulls', '    switch (alias?.[k] ?? k) {');
  for (const f of m.fields) {
    const labels = [...new Set([f.json, f.name])].map((x) => `case ${JSON.stringify(x)}:`).join(' ');
    const one = (x: string): string => {
      switch (f.kind) {
        case 'message': return `fromTb_${f.typeRef}(asObject(${x}, at, k), at + k + '.')`;
        case 'enum': return `asEnum(${x}, ${f.typeRef}, at, k)`;
        case 'bool': return `asBool(${x}, at, k)`;
        case 'string': return `asString(${x}, at, k)`;
        case 'bytes': return `asBytes(${x}, at, k)`;
        case 'double': case 'float': return `asNumber(${x}, at, k)`;
        default: return `as${INT64.has(f.kind) ? 'Int64' : 'Int32'}(${x}, at, k, ${JSON.stringify(f.kind)})`;
      }
    };
    if (f.repeated) L.push(`      ${labels} m${prop(f)} = asArray(v, at, k).map((x) => ${one('x')}); break;`);
    else L.push(`      ${labels} m${prop(f)} = ${one('v')}; break;`);
  }
  L.push('      default: throw new ProtoError(\'value\', `${at}${k}: no such field in ' + m.fullName.replace(/^\./, '') + '`);', '    }', '  }', '  return m;', '}', '');
  void enumsByTs;
  return L.join('\n');
}

function header(source: string, src = '..'): string {
  return `/*
 * GENERATED by tools/proto/generate.ts from ${source}: do not edit; \`npm run proto\` regenerates.
 * Straight-line encoders/decoders over src/proto/wire.ts (which also holds the TbValue conversions):
 * no reflection, no dependency.
 */
/* eslint-disable */
import type { FloatScratch, Int64 } from '${src}/wire';
import * as wire from '${src}/wire';
import { decodeWith, ProtoError, Reader } from '${src}/wire';
import type { TbObject } from '${src}/../thingsboard/payload';

// The writers and the TbValue conversions as module constants: one lookup at load, direct calls
// after (a bundler's CommonJS output would otherwise go through the namespace's getters on every call).
const {
  putBool, putBytes, putDouble, putFixed32, putFixed64, putFloat, putInt32, putInt64, putSfixed32, putSfixed64, putSint32, putSint64,
  putString, putUint64, putVarint32, sizeInt32, sizeInt64, sizeLen, sizeSint32, sizeSint64, sizeString, sizeUint64, sizeVarint32, utf8Size,
  asArray, asBool, asBytes, asEnum, asInt32, asInt64, asNumber, asObject, asString, base64, enumName, int64ToTb,
} = wire;
`;
}

function genSchema(s: SchemaModel, exportAll: boolean): string {
  const L: string[] = [];
  const enumsByTs = new Map(s.enums.map((e) => [e.ts, e]));
  for (const e of s.enums) {
    L.push(`export const ${e.ts} = Object.freeze({ ${e.values.map(([k, v]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${v}`).join(', ')} });`, '');
  }
  for (const m of s.messages) L.push(genMessage(m, enumsByTs));
  for (const m of exportAll ? s.messages : s.topLevel) {
    L.push(`export function encode${m.ts}(m: ${m.ts}, scratch?: FloatScratch): Uint8Array {`, `  const b = new Uint8Array(size_${m.ts}(m));`, `  write_${m.ts}(b, 0, m, scratch);`, '  return b;', '}');
    L.push(`export function decode${m.ts}(bytes: Uint8Array): ${m.ts} | ProtoError {`, `  return decodeWith(bytes, (r) => read_${m.ts}(r, r.end));`, '}');
    L.push(`export function ${lowerFirst(m.ts)}ToTb(m: ${m.ts}): TbObject {`, `  return toTb_${m.ts}(m);`, '}');
    L.push(`export function ${lowerFirst(m.ts)}FromTb(o: TbObject, alias?: Readonly<Record<string, string>>): ${m.ts} {`, `  return fromTb_${m.ts}(o, '', alias);`, '}', '');
  }
  return L.join('\n');
}

const lowerFirst = (s: string): string => s[0]!.toLowerCase() + s.slice(1);

// ---------------------------------------------------------------------------- app keys

/** The telemetry keys the app reports, read from src/device/sources.ts (all fractional numbers). */
export function appTelemetryKeys(): string[] {
  const src = fs.readFileSync(path.join(ROOT, 'src/device/sources.ts'), 'utf8');
  const keys = [...src.matchAll(/\bout\.(\w+)\s*=\s*round\(/g)].map((m) => m[1]!);
  if (!keys.length) throw new SchemaError('src/device/sources.ts: no telemetry keys found (expected `out.<key> = round(...)`)');
  return keys;
}

export interface ProfileConfig {
  description?: string;
  keys?: Record<string, string>;
  checkAppKeys?: boolean;
}

export interface ProfileModel {
  name: string;
  telemetry: SchemaModel;
  attributes: SchemaModel;
  rpcRequest: SchemaModel;
  rpcResponse: SchemaModel;
  timestamped: boolean;
  valuesMessage: MessageModel;
  alias: Record<string, string>;
  notes: string[];
}

const ROLES = [
  ['telemetry', 'telemetry.proto', 'Telemetry_'],
  ['attributes', 'attributes.proto', 'Attributes_'],
  ['rpcRequest', 'rpc-request.proto', 'RpcRequest_'],
  ['rpcResponse', 'rpc-response.proto', 'RpcResponse_'],
] as const;

export function loadProfile(dir: string, appKeys: string[] = appTelemetryKeys()): ProfileModel {
  const name = path.basename(dir);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'profile.json'), 'utf8')) as ProfileConfig;
  const schemas = {} as Record<(typeof ROLES)[number][0], SchemaModel>;
  for (const [role, file, prefix] of ROLES) schemas[role] = parseSchema(fs.readFileSync(path.join(dir, file), 'utf8'), prefix, `${name}/${file}`);
  const t = schemas.telemetry;
  const tsField = t.root.fields.find((f) => f.json === 'ts');
  const valuesField = t.root.fields.find((f) => f.json === 'values');
  const timestamped = !!tsField && !!valuesField && valuesField.kind === 'message' && !valuesField.repeated;
  if (tsField && valuesField && !timestamped) throw new SchemaError(`${name}/telemetry.proto: 'values' must be a singular message for the timestamped form`);
  if (timestamped && (tsField!.repeated || !['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(tsField!.kind)))
    throw new SchemaError(`${name}/telemetry.proto: 'ts' must be a 64-bit integer (milliseconds since the epoch)`);
  const valuesMessage = timestamped ? t.messages.find((m) => m.ts === valuesField!.typeRef)! : t.root;
  const alias: Record<string, string> = {};
  const notes: string[] = [];
  for (const [k, v] of Object.entries(cfg.keys ?? {})) {
    if (!appKeys.includes(k)) throw new SchemaError(`${name}/profile.json: keys.${k}: the app reports no telemetry key ${k} (it reports ${appKeys.join(', ')})`);
    alias[k] = v;
  }
  if (cfg.checkAppKeys !== false) {
    const errors: string[] = [];
    for (const k of appKeys) {
      const want = alias[k] ?? k;
      const f = valuesMessage.fields.find((x) => x.name === want || x.json === want);
      if (!f) {
        errors.push(`telemetry key ${k}: no field ${want} in ${valuesMessage.fullName.replace(/^\./, '')}`);
        continue;
      }
      if (f.repeated || (f.kind !== 'double' && f.kind !== 'float'))
        errors.push(`telemetry key ${k}: field ${f.name} is ${f.repeated ? 'repeated ' : ''}${f.kind}; the app reports a fractional number (use double or float)`);
      else {
        if (f.json !== k) notes.push(`telemetry key ${k} goes in field ${f.name}: ThingsBoard stores it as "${f.json}" (its JSON name)`);
        if (!f.presence) notes.push(`field ${f.name} is not optional: ThingsBoard shows it as 0 when the sensor failed (use optional)`);
      }
      if (f) alias[k] = f.json;
    }
    if (errors.length) throw new SchemaError(`${name}: telemetry mapping does not fit the app:\n  ${errors.join('\n  ')}`);
  }
  return { name, ...schemas, timestamped, valuesMessage, alias, notes };
}

function genProfile(p: ProfileModel, dir: string): string {
  const parts: string[] = [header(`tools/proto/profiles/${p.name}/*.proto`)];
  for (const [role] of ROLES) parts.push(`// ---- ${role}: root ${p[role].root.fullName.replace(/^\./, '')}\n`, genSchema(p[role], false));
  const t = p.telemetry.root.ts;
  const v = p.valuesMessage.ts;
  const rs = p.rpcResponse.root;
  const payloadField = rs.fields.find((f) => f.kind === 'string' && !f.repeated && f.json === 'payload') ?? (rs.fields.length === 1 && rs.fields[0]!.kind === 'string' ? rs.fields[0] : undefined);
  parts.push(`/** App telemetry key -> field JSON name (checked at build time against src/device/sources.ts). */
const TELEMETRY_ALIAS: Readonly<Record<string, string>> = Object.freeze(${JSON.stringify(p.alias)});

/** The ${p.name} device profile (${path.relative(ROOT, dir)}): what the Protobuf payload codec needs. */
export const profile = Object.freeze({
  name: ${JSON.stringify(p.name)},
  /** Telemetry root has ts + values: every record carries its own timestamp. */
  timestamped: ${p.timestamped},
  encodeTelemetry(values: TbObject, ts?: number, scratch?: FloatScratch): Uint8Array {
${p.timestamped
    ? `    return encode${t}({ ts: ts ?? 0, values: fromTb_${v}(values, 'telemetry.', TELEMETRY_ALIAS) }, scratch);`
    : `    void ts;\n    return encode${t}(fromTb_${v}(values, 'telemetry.', TELEMETRY_ALIAS), scratch);`}
  },
  encodeAttributes(values: TbObject, scratch?: FloatScratch): Uint8Array {
    return encode${p.attributes.root.ts}(fromTb_${p.attributes.root.ts}(values, 'attributes.'), scratch);
  },
  decodeRpcRequest(bytes: Uint8Array): TbObject | ProtoError {
    const m = decode${p.rpcRequest.root.ts}(bytes);
    return m instanceof ProtoError ? m : toTb_${p.rpcRequest.root.ts}(m);
  },
  /** The reverse directions, for traces and tests (what the server would read). */
  decodeTelemetry(bytes: Uint8Array): TbObject | ProtoError {
    const m = decode${t}(bytes);
    return m instanceof ProtoError ? m : toTb_${t}(m);
  },
  decodeAttributes(bytes: Uint8Array): TbObject | ProtoError {
    const m = decode${p.attributes.root.ts}(bytes);
    return m instanceof ProtoError ? m : toTb_${p.attributes.root.ts}(m);
  },
  decodeRpcResponse(bytes: Uint8Array): TbObject | ProtoError {
    const m = decode${rs.ts}(bytes);
    return m instanceof ProtoError ? m : toTb_${rs.ts}(m);
  },
  encodeRpcResponse(values: TbObject, scratch?: FloatScratch): Uint8Array {
    return encode${rs.ts}(fromTb_${rs.ts}(values, 'rpc response.'), scratch);
  },
  /** A string field the reply can carry JSON text in, when the result does not map onto the fields. */
  rpcResponsePayloadField: ${payloadField ? JSON.stringify(payloadField.json) : 'undefined'} as string | undefined,
});
`);
  return parts.join('\n');
}

// ---------------------------------------------------------------------------- main

export function generateAll(): Map<string, string> {
  const out = new Map<string, string>();
  const tb = parseSchema(fs.readFileSync(path.join(__dirname, 'thingsboard.proto'), 'utf8'), '', 'thingsboard.proto');
  out.set('thingsboard.ts', header('tools/proto/thingsboard.proto (ThingsBoard\'s fixed messages)') + '\n' + genSchema(tb, true));
  // Test fixtures: test/proto/*.proto -> test/proto/gen/*.ts (every field type, for the property tests)
  const testDir = path.join(ROOT, 'test/proto');
  if (fs.existsSync(testDir)) {
    for (const f of fs.readdirSync(testDir).filter((x) => x.endsWith('.proto')).sort()) {
      const schema = parseSchema(fs.readFileSync(path.join(testDir, f), 'utf8'), '', `test/proto/${f}`);
      out.set(`../../../test/proto/gen/${f.replace(/\.proto$/, '.ts')}`, header(`test/proto/${f}`, '../../../src/proto') + '\n' + genSchema(schema, true));
    }
  }
  const appKeys = appTelemetryKeys();
  for (const d of fs.readdirSync(PROFILES).sort()) {
    const dir = path.join(PROFILES, d);
    if (!fs.statSync(dir).isDirectory()) continue;
    const p = loadProfile(dir, appKeys);
    for (const n of p.notes) console.error(`proto ${p.name}: note: ${n}`);
    out.set(`${d}.ts`, genProfile(p, dir));
  }
  return out;
}

function main(): void {
  const check = process.argv.includes('--check');
  let files: Map<string, string>;
  try {
    files = generateAll();
  } catch (e) {
    if (e instanceof SchemaError) {
      console.error(`proto: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
  fs.mkdirSync(OUT, { recursive: true });
  let stale = 0;
  for (const [name, text] of files) {
    const file = path.join(OUT, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (old === text) continue;
    if (check) {
      console.error(`proto: ${path.relative(ROOT, file)} is out of date (npm run proto)`);
      stale++;
    } else {
      fs.writeFileSync(file, text);
      console.log(`proto: wrote ${path.relative(ROOT, file)}`);
    }
  }
  if (stale) process.exit(1);
}

if (require.main === module) main();
