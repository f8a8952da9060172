// Admin HTTP API (JSON) of the local ThingsBoard-compatible server. Loopback by default; every
// request needs the bearer token of the state folder and a loopback/IP Host with no foreign Origin
// (admin-auth.ts). Devices are addressed by name or id. Tokens are returned to the caller but never logged.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Device, JsonObject, JsonValue, PowerMode, Store } from './store';
import { StoreError, certSha3FromPem } from './store';
import { RpcTimeoutError, TbCoapService, isObject } from './handler';
import { MAX_JSON_DEPTH, jsonDepth } from './json';
import { checkAdminRequest } from './admin-auth';
import { OtaLibrary, fwStateHistory } from './ota-packages';
import { DEFAULT_PROTO_SCHEMAS, ProtoSchemaError, compileProfile } from './proto-profile';
import type { ProtoSchemas } from './proto-profile';

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

function publicDevice(d: Device, svc: TbCoapService): JsonObject {
  const out: JsonObject = { id: d.id, name: d.name, token: d.token };
  if (d.certSha3) out.certSha3 = d.certSha3;
  out.power = { ...TbCoapService.power(d) };
  out.transportPayloadType = d.protobuf ? 'PROTOBUF' : 'JSON';
  out.asleep = svc.isAsleep(d);
  return out;
}

async function readBody(req: http.IncomingMessage): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 16 * 1024 * 1024) throw new HttpError(413, 'body too large');
    chunks.push(c as Buffer);
  }
  if (!size) return undefined;
  let v: JsonValue;
  try { v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonValue; } catch { throw new HttpError(400, 'invalid JSON'); }
  // JSON.parse takes any depth, but JSON.stringify (persistence, notifications) recurses: bound it here.
  if (jsonDepth(v) > MAX_JSON_DEPTH) throw new HttpError(400, `JSON nested deeper than ${MAX_JSON_DEPTH}`);
  return v;
}

export async function startAdminHttp(o: { host: string; port: number; store: Store; service: TbCoapService; log: (l: string) => void; adminToken: string }): Promise<{ port: number; close(): Promise<void> }> {
  const { store, service } = o;

  const device = (key: string): Device => {
    const d = store.findDevice(decodeURIComponent(key));
    if (!d) throw new HttpError(404, 'device not found');
    return d;
  };

  let library: OtaLibrary | undefined;
  const otaLibrary = (): OtaLibrary => (library ??= new OtaLibrary(store.dataDir));

  const route = async (req: http.IncomingMessage): Promise<[number, unknown]> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname.split('/').filter(Boolean);
    const m = req.method ?? 'GET';
    if (p[0] !== 'api') throw new HttpError(404, 'not found');

    if (p[1] === 'devices' && p.length === 2) {
      if (m === 'GET') return [200, store.listDevices().map((d) => publicDevice(d, service))];
      if (m === 'POST') {
        const b = await readBody(req);
        if (!isObject(b) || typeof b.name !== 'string') throw new HttpError(400, 'expected {name, token?}');
        let certSha3 = typeof b.certSha3 === 'string' ? b.certSha3 : undefined;
        if (typeof b.certPem === 'string') certSha3 = certSha3FromPem(b.certPem);
        const d = store.createDevice(b.name, { token: typeof b.token === 'string' ? b.token : undefined, certSha3 });
        o.log(`admin: created device ${d.name}`);
        return [201, { id: d.id, name: d.name, token: d.token, ...(d.certSha3 ? { certSha3: d.certSha3 } : {}) }];
      }
    }
    if (p[1] === 'devices' && p.length >= 3) {
      const d = device(p[2]);
      const sub = p.slice(3).join('/');
      if (sub === '' && m === 'GET') return [200, publicDevice(d, service)];
      if (sub === 'telemetry' && m === 'GET') {
        const keys = url.searchParams.get('keys')?.split(',').filter(Boolean);
        return [200, store.telemetry(d.id, keys)];
      }
      if (sub === 'telemetry/latest' && m === 'GET') return [200, store.latestTelemetry(d.id)];
      if (sub === 'attributes' && m === 'GET') return [200, store.attributes(d.id)];
      if (sub === 'attributes/shared' && m === 'POST') {
        const b = await readBody(req);
        if (!isObject(b)) throw new HttpError(400, 'expected a JSON object');
        // stored as given (the REST API does not cast numeric-looking strings); nulls skipped
        const values = Object.fromEntries(Object.entries(b).filter(([, v]) => v !== null));
        store.setSharedAttributes(d.id, values);
        service.events.emit('attributes', { device: d.name, deviceId: d.id, scope: 'shared', values });
        service.sharedAttributesChanged(d, values, []);
        return [200, { ok: true }];
      }
      if (sub === 'attributes/shared' && m === 'DELETE') {
        const keys = url.searchParams.get('keys')?.split(',').filter(Boolean) ?? [];
        const deleted = store.deleteSharedAttributes(d.id, keys);
        if (deleted.length) service.sharedAttributesChanged(d, {}, deleted);
        return [200, { deleted }];
      }
      if (sub === 'rpc' && m === 'POST') {
        const b = await readBody(req);
        if (!isObject(b) || typeof b.method !== 'string') throw new HttpError(400, 'expected {method, params?, timeoutMs?, persistent?}');
        o.log(`admin: rpc ${b.method} -> ${d.name}`);
        try {
          const r = await service.sendRpc(d, {
            method: b.method,
            params: b.params ?? null,
            timeoutMs: typeof b.timeoutMs === 'number' ? b.timeoutMs : undefined,
            persistent: b.persistent === true,
          });
          return [200, r];
        } catch (e) {
          if (e instanceof RpcTimeoutError) return [504, { error: 'timeout' }];
          throw e;
        }
      }
      if (sub === 'rpc' && m === 'GET') return [200, store.rpcLog(d.id)];
      if (sub === 'payload' && m === 'GET') return [200, { transportPayloadType: d.protobuf ? 'PROTOBUF' : 'JSON', ...(d.protobuf ? { schemas: { ...d.protobuf } } : {}) }];
      if (sub === 'payload' && m === 'PUT') {
        // The device profile's transport payload type; PROTOBUF with its four schemas (any left out
        // get ThingsBoard's UI defaults). Each must parse as proto3; the last top-level message is the root.
        const b = await readBody(req);
        if (!isObject(b) || (b.transportPayloadType !== 'JSON' && b.transportPayloadType !== 'PROTOBUF')) {
          throw new HttpError(400, 'expected {transportPayloadType: "JSON"|"PROTOBUF", telemetry?, attributes?, rpcRequest?, rpcResponse? (proto3 text)}');
        }
        if (b.transportPayloadType === 'JSON') {
          store.updateDevice(d, { protobuf: undefined });
          return [200, publicDevice(d, service)];
        }
        const schemas: ProtoSchemas = { ...DEFAULT_PROTO_SCHEMAS };
        for (const k of ['telemetry', 'attributes', 'rpcRequest', 'rpcResponse'] as const) {
          const v = b[k];
          if (v === undefined || v === null) continue;
          if (typeof v !== 'string') throw new HttpError(400, `${k}: expected proto3 text`);
          schemas[k] = v;
        }
        try {
          compileProfile(schemas);
        } catch (e) {
          if (e instanceof ProtoSchemaError) throw new HttpError(400, e.message);
          throw e;
        }
        store.updateDevice(d, { protobuf: schemas });
        o.log(`device ${d.name}: Protobuf payloads (${Object.keys(b).filter((k) => k !== 'transportPayloadType').join(', ') || 'ThingsBoard default schemas'})`);
        return [200, publicDevice(d, service)];
      }
      if (sub === 'power' && m === 'PUT') {
        const b = await readBody(req);
        if (!isObject(b)) throw new HttpError(400, 'expected {powerMode, psmActivityTimer?, pagingTransmissionWindow?, edrxCycle?}');
        const mode = b.powerMode;
        if (mode !== 'PSM' && mode !== 'DRX' && mode !== 'E_DRX') throw new HttpError(400, 'powerMode must be PSM, DRX or E_DRX');
        const num = (v: JsonValue | undefined): number => (typeof v === 'number' && v > 0 ? v : 0);
        store.updateDevice(d, {
          power: {
            powerMode: mode as PowerMode,
            psmActivityTimer: num(b.psmActivityTimer),
            pagingTransmissionWindow: num(b.pagingTransmissionWindow),
            ...(num(b.edrxCycle) ? { edrxCycle: num(b.edrxCycle) } : {}),
          },
        });
        service.powerChanged(d);
        return [200, publicDevice(d, service)];
      }
      if ((sub === 'ota' || sub === 'ota/fw' || sub === 'ota/sw') && m === 'POST') {
        // {title, version, data (base64), checksumAlgorithm?, checksum?}: upload and assign at once;
        // {title, version} alone: assign a package uploaded with POST /api/ota/packages.
        const type = sub === 'ota/sw' ? 'sw' : 'fw';
        const b = await readBody(req);
        if (!isObject(b) || typeof b.title !== 'string' || typeof b.version !== 'string' || (b.data !== undefined && typeof b.data !== 'string')) {
          throw new HttpError(400, 'expected {title, version, data (base64)?, checksumAlgorithm?, checksum?}');
        }
        const lib = otaLibrary();
        if (typeof b.data === 'string') {
          lib.upload({ type, title: b.title, version: b.version, data: Buffer.from(b.data, 'base64'),
            ...(typeof b.checksumAlgorithm === 'string' ? { checksumAlgorithm: b.checksumAlgorithm } : {}), ...(typeof b.checksum === 'string' ? { checksum: b.checksum } : {}) });
        }
        const pkg = lib.get(type, b.title, b.version);
        if (!pkg) throw new HttpError(404, `no ${type} package ${b.title} ${b.version}: upload it first (POST /api/ota/packages)`);
        o.log(`admin: ${type} package ${pkg.title} ${pkg.version} assigned to ${d.name}`);
        return [200, lib.assign(store, service, d, pkg)];
      }
      if (sub === 'fw-state' && m === 'GET') return [200, fwStateHistory(store, d.id)];
    }
    if (p[1] === 'ota' && p[2] === 'packages' && p.length === 3) {
      if (m === 'GET') return [200, otaLibrary().list()];
      if (m === 'POST') {
        const b = await readBody(req);
        if (!isObject(b) || typeof b.title !== 'string' || typeof b.version !== 'string' || typeof b.data !== 'string') throw new HttpError(400, 'expected {title, version, data (base64), checksumAlgorithm?, checksum?, type?}');
        return [201, otaLibrary().upload({ type: b.type === 'sw' ? 'sw' : 'fw', title: b.title, version: b.version, data: Buffer.from(b.data, 'base64'),
          ...(typeof b.checksumAlgorithm === 'string' ? { checksumAlgorithm: b.checksumAlgorithm } : {}), ...(typeof b.checksum === 'string' ? { checksum: b.checksum } : {}) })];
      }
    }
    if (p[1] === 'provision-profiles' && p.length === 2) {
      if (m === 'GET') return [200, store.listProfiles().map((x) => ({ key: x.key, strategy: x.strategy }))];
      if (m === 'POST') {
        const b = await readBody(req);
        if (!isObject(b)) throw new HttpError(400, 'expected {key, secret, strategy}');
        const prof = store.addProfile({
          key: String(b.key ?? ''), secret: String(b.secret ?? ''),
          strategy: (b.strategy ?? 'ALLOW_CREATE_NEW_DEVICES') as 'ALLOW_CREATE_NEW_DEVICES',
        });
        return [201, { key: prof.key, strategy: prof.strategy }];
      }
    }
    throw new HttpError(404, 'not found');
  };

  const server = http.createServer((req, res) => {
    // Authorization, Host and Origin before anything of the request is read.
    const refused = checkAdminRequest(req, o.adminToken);
    if (refused) {
      res.writeHead(refused[0], { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ error: refused[1] }));
      req.resume();
      return;
    }
    route(req).then(([status, body]) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    }, (e: unknown) => {
      const status = e instanceof HttpError || e instanceof StoreError ? e.status : 500;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (e as Error).message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
