// Device registry, telemetry, attributes, provisioning profiles and RPC log of the local
// ThingsBoard-compatible server. Everything lives in memory and is persisted as one JSON
// document written atomically (temp file + fsync + rename + directory fsync), so a crash
// at any point leaves either the old or the new state on disk, never a torn file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { ProtoSchemas } from './proto-profile';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export type PowerMode = 'PSM' | 'DRX' | 'E_DRX';
/** Per-device CoAP power-saving configuration (CoapDeviceTransportConfiguration). Times in ms. */
export interface PowerSettings {
  powerMode: PowerMode;
  psmActivityTimer: number;
  pagingTransmissionWindow: number;
  edrxCycle?: number;
}

export interface Device {
  id: string;
  name: string;
  /** Access token (credentialsType ACCESS_TOKEN). Never logged. */
  token: string;
  /** SHA3-256 hex of the base64 DER of the device certificate (X509_CERTIFICATE credential id). */
  certSha3?: string;
  power?: PowerSettings;
  /** Set when the device was created or claimed through a provisioning profile. */
  provisioned?: boolean;
  claim?: { secretKey: string; expiresAt: number };
  /**
   * Device profile with transportPayloadType PROTOBUF: its four schemas (proto-profile.ts). Absent:
   * the JSON payload type (ThingsBoard's default profile).
   */
  protobuf?: ProtoSchemas;
  createdAt: number;
}

export interface TsPoint { ts: number; value: JsonValue }
export interface AttrValue { value: JsonValue; lastUpdateTs: number }

export type ProvisionStrategy = 'ALLOW_CREATE_NEW_DEVICES' | 'CHECK_PRE_PROVISIONED_DEVICES';
export interface ProvisionProfile { key: string; secret: string; strategy: ProvisionStrategy }

export type RpcStatus = 'QUEUED' | 'SENT' | 'DELIVERED' | 'SUCCESSFUL' | 'TIMEOUT' | 'EXPIRED';
export interface RpcRecord {
  id: number;
  deviceId: string;
  method: string;
  params: JsonValue;
  persistent: boolean;
  createdTs: number;
  expirationTime: number;
  status: RpcStatus;
  response?: JsonValue;
}

export interface OtaPackage {
  type: 'fw' | 'sw';
  title: string;
  version: string;
  /** base64 of the image */
  data: string;
  checksumAlgorithm: string;
  checksum: string;
}

interface DeviceData {
  latest: Record<string, TsPoint>;
  /** Bounded history, oldest first, across all keys of the device. */
  history: { ts: number; key: string; value: JsonValue }[];
  client: Record<string, AttrValue>;
  shared: Record<string, AttrValue>;
  nextRpcId: number;
  ota: Partial<Record<'fw' | 'sw', OtaPackage>>;
}

interface Persisted {
  version: 1;
  devices: Device[];
  data: Record<string, DeviceData>;
  profiles: ProvisionProfile[];
  rpc: RpcRecord[];
}

export const HISTORY_LIMIT = 1000;
export const RPC_LOG_LIMIT = 1000;
const FILE = 'state.json';

export function randomToken(): string {
  // 20 chars like ThingsBoard's generated access tokens
  return randomBytes(15).toString('base64url').slice(0, 20);
}

/** ThingsBoard's X.509 credentials id: SHA3-256 hex of the certificate's base64 DER (PEM body, no newlines). */
export function certSha3FromPem(pemOrBase64: string): string {
  return createHash('sha3-256').update(certTrim(pemOrBase64), 'utf8').digest('hex');
}

/** The stored X509_CERTIFICATE credential value: the PEM without BEGIN/END lines and line breaks (EncryptionUtil.certTrimNewLines). */
export function certTrim(pemOrBase64: string): string {
  return pemOrBase64.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}

/** What a provisioning request gets (JSON names of ThingsBoard's reply; `device` is set on SUCCESS). */
export type ProvisionReply =
  | { status: 'SUCCESS'; credentialsType: 'ACCESS_TOKEN' | 'X509_CERTIFICATE'; credentialsValue: string; device: Device }
  | { status: 'NOT_FOUND' | 'FAILURE'; errorMsg: string };

/**
 * Device provisioning as ThingsBoard's DeviceProvisionServiceImpl + DeviceServiceImpl.saveDevice(ProvisionRequest)
 * + DeviceCredentialsServiceImpl.formatCertData, shared by the CoAP and MQTT endpoints (each maps the reply to its
 * wire form). The caller has checked that key and secret are strings.
 * - unknown key/secret: NOT_FOUND;
 * - ALLOW_CREATE_NEW_DEVICES: an existing name is FAILURE; else a new device with the requested credentials:
 *   ACCESS_TOKEN with `token` (or a generated one), X509_CERTIFICATE with `hash` (the certificate, PEM or its
 *   base64 DER: stored trimmed, registered by SHA3-256 of that, so the next DTLS/TLS handshake with it maps the
 *   device; a certificate already registered is FAILURE and creates nothing). X509_CERTIFICATE with an empty
 *   hash gets a generated access token, as ThingsBoard (no credentials data: the default credentials);
 * - CHECK_PRE_PROVISIONED_DEVICES: the named device must exist and not be provisioned yet (else FAILURE).
 *   Deviation: the requested token or certificate is set on it (ThingsBoard returns the device's existing
 *   credentials unchanged), so a test can pre-create a bare device.
 */
export function provisionDevice(store: Store, req: { [k: string]: JsonValue | undefined }, genName: () => string): ProvisionReply {
  const fail = (status: 'NOT_FOUND' | 'FAILURE'): ProvisionReply => ({ status, errorMsg: status === 'NOT_FOUND' ? 'Provision data was not found!' : 'Failed to provision device!' });
  const prof = store.findProfile(String(req.provisionDeviceKey), String(req.provisionDeviceSecret));
  if (!prof) return fail('NOT_FOUND');
  const requested = typeof req.credentialsType === 'string' ? req.credentialsType : 'ACCESS_TOKEN';
  if (requested !== 'ACCESS_TOKEN' && requested !== 'X509_CERTIFICATE') return fail('FAILURE');
  const name = typeof req.deviceName === 'string' && req.deviceName.trim() ? req.deviceName.trim() : genName();
  const wantedToken = typeof req.token === 'string' && req.token ? req.token : undefined;
  const cert = typeof req.hash === 'string' && req.hash ? certTrim(req.hash) : undefined;
  const credType = requested === 'X509_CERTIFICATE' && cert ? 'X509_CERTIFICATE' : 'ACCESS_TOKEN';
  const certSha3 = credType === 'X509_CERTIFICATE' ? certSha3FromPem(cert!) : undefined;
  let dev = store.findDevice(name);
  try {
    if (certSha3 && store.byCertSha3(certSha3) && store.byCertSha3(certSha3) !== dev) return fail('FAILURE'); // "Specified credentials are already registered!"
    if (prof.strategy === 'ALLOW_CREATE_NEW_DEVICES') {
      if (dev) return fail('FAILURE');
      dev = store.createDevice(name, { token: credType === 'ACCESS_TOKEN' ? wantedToken : undefined, certSha3, provisioned: true });
    } else {
      if (!dev || dev.provisioned) return fail('FAILURE');
      const patch: Partial<Device> = { provisioned: true };
      if (credType === 'ACCESS_TOKEN' && wantedToken) patch.token = wantedToken;
      if (certSha3) patch.certSha3 = certSha3;
      store.updateDevice(dev, patch);
    }
  } catch {
    return fail('FAILURE');
  }
  return { status: 'SUCCESS', credentialsType: credType, credentialsValue: credType === 'ACCESS_TOKEN' ? dev.token : cert!, device: dev };
}

export class Store {
  private devices = new Map<string, Device>();
  private data = new Map<string, DeviceData>();
  private profiles: ProvisionProfile[] = [];
  private rpc: RpcRecord[] = [];
  private saveTimer: NodeJS.Timeout | null = null;
  private readonly historyLimit: number;
  private readonly log: (line: string) => void;

  constructor(readonly dataDir: string, opts: { historyLimit?: number; log?: (line: string) => void } = {}) {
    this.historyLimit = opts.historyLimit ?? HISTORY_LIMIT;
    this.log = opts.log ?? (() => {});
    fs.mkdirSync(dataDir, { recursive: true });
    this.load();
  }

  // ---- persistence ----

  private load(): void {
    const file = path.join(this.dataDir, FILE);
    if (!fs.existsSync(file)) return;
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Persisted;
    for (const d of doc.devices) this.devices.set(d.id, d);
    for (const [id, dd] of Object.entries(doc.data)) this.data.set(id, dd);
    this.profiles = doc.profiles ?? [];
    this.rpc = doc.rpc ?? [];
  }

  /** Schedules a save shortly (coalesces bursts of writes). */
  private dirty(): void {
    if (this.saveTimer) return;
    // A failed save (disk full, a value JSON.stringify cannot take) must not throw from a timer:
    // that would end the process. It is logged and retried with the next change or on close.
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      try { this.flush(); } catch (e) { this.log(`store: saving ${this.dataDir} failed: ${(e as Error).message}`); }
    }, 25);
    this.saveTimer.unref();
  }

  /** Writes the state now: temp file, fsync, rename over the old file, fsync the directory. */
  flush(): void {
    if (this.saveTimer) { clearTimeout(this.saveTimer); this.saveTimer = null; }
    const doc: Persisted = {
      version: 1,
      devices: [...this.devices.values()],
      data: Object.fromEntries(this.data),
      profiles: this.profiles,
      rpc: this.rpc,
    };
    const file = path.join(this.dataDir, FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(doc));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    try {
      const dfd = fs.openSync(this.dataDir, 'r');
      try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
    } catch { /* directory fsync is not supported everywhere */ }
  }

  // ---- devices ----

  createDevice(name: string, opts: { token?: string; certSha3?: string; provisioned?: boolean } = {}): Device {
    if (!name) throw new StoreError(400, 'name is required');
    if (this.findDevice(name)) throw new StoreError(409, `device ${name} already exists`);
    const token = opts.token ?? randomToken();
    if (this.byToken(token)) throw new StoreError(409, 'token already in use');
    const dev: Device = { id: randomUUID(), name, token, createdAt: Date.now() };
    if (opts.certSha3 && this.byCertSha3(opts.certSha3)) throw new StoreError(409, 'certificate already registered to another device');
    if (opts.certSha3) dev.certSha3 = opts.certSha3.toLowerCase();
    if (opts.provisioned) dev.provisioned = true;
    this.devices.set(dev.id, dev);
    this.data.set(dev.id, { latest: {}, history: [], client: {}, shared: {}, nextRpcId: 1, ota: {} });
    this.dirty();
    return dev;
  }

  listDevices(): Device[] { return [...this.devices.values()]; }

  /** By name or id. */
  findDevice(nameOrId: string): Device | undefined {
    const byId = this.devices.get(nameOrId);
    if (byId) return byId;
    for (const d of this.devices.values()) if (d.name === nameOrId) return d;
    return undefined;
  }

  byToken(token: string): Device | undefined {
    for (const d of this.devices.values()) if (d.token === token) return d;
    return undefined;
  }

  byCertSha3(sha3: string): Device | undefined {
    const s = sha3.toLowerCase();
    for (const d of this.devices.values()) if (d.certSha3 === s) return d;
    return undefined;
  }

  updateDevice(dev: Device, patch: Partial<Pick<Device, 'power' | 'provisioned' | 'claim' | 'token' | 'certSha3' | 'protobuf'>>): Device {
    if (patch.certSha3) {
      const other = this.byCertSha3(patch.certSha3);
      if (other && other !== dev) throw new StoreError(409, 'certificate already registered to another device');
      patch = { ...patch, certSha3: patch.certSha3.toLowerCase() };
    }
    Object.assign(dev, patch);
    if ('protobuf' in patch && patch.protobuf === undefined) delete dev.protobuf;
    this.dirty();
    return dev;
  }

  private dd(deviceId: string): DeviceData {
    const d = this.data.get(deviceId);
    if (!d) throw new StoreError(404, 'no such device');
    return d;
  }

  // ---- telemetry ----

  saveTelemetry(deviceId: string, entries: { ts: number; values: Record<string, JsonValue> }[]): void {
    const d = this.dd(deviceId);
    for (const e of entries) {
      for (const [key, value] of Object.entries(e.values)) {
        const cur = d.latest[key];
        if (!cur || cur.ts <= e.ts) d.latest[key] = { ts: e.ts, value };
        // ThingsBoard's ts_kv primary key is (entity, key, ts): the same point sent twice (a device
        // replaying a report whose response it never saw) replaces itself instead of adding a row.
        let same = d.history.length - 1;
        while (same >= 0 && !(d.history[same]!.ts === e.ts && d.history[same]!.key === key)) same--;
        if (same >= 0) d.history[same] = { ts: e.ts, key, value };
        else d.history.push({ ts: e.ts, key, value });
      }
    }
    if (d.history.length > this.historyLimit) d.history.splice(0, d.history.length - this.historyLimit);
    this.dirty();
  }

  latestTelemetry(deviceId: string): Record<string, TsPoint> { return { ...this.dd(deviceId).latest }; }

  /** {key: [{ts, value}, ...]} newest first. */
  telemetry(deviceId: string, keys?: string[]): Record<string, TsPoint[]> {
    const d = this.dd(deviceId);
    const out: Record<string, TsPoint[]> = {};
    const want = keys && keys.length ? new Set(keys) : null;
    for (const h of d.history) {
      if (want && !want.has(h.key)) continue;
      (out[h.key] ??= []).push({ ts: h.ts, value: h.value });
    }
    for (const k of Object.keys(out)) out[k].sort((a, b) => b.ts - a.ts);
    return out;
  }

  // ---- attributes ----

  setClientAttributes(deviceId: string, values: Record<string, JsonValue>): void {
    const d = this.dd(deviceId);
    const now = Date.now();
    for (const [k, v] of Object.entries(values)) d.client[k] = { value: v, lastUpdateTs: now };
    this.dirty();
  }

  setSharedAttributes(deviceId: string, values: Record<string, JsonValue>): void {
    const d = this.dd(deviceId);
    const now = Date.now();
    for (const [k, v] of Object.entries(values)) d.shared[k] = { value: v, lastUpdateTs: now };
    this.dirty();
  }

  /** Returns the keys that existed and were deleted. */
  deleteSharedAttributes(deviceId: string, keys: string[]): string[] {
    const d = this.dd(deviceId);
    const deleted = keys.filter((k) => k in d.shared);
    for (const k of deleted) delete d.shared[k];
    if (deleted.length) this.dirty();
    return deleted;
  }

  attributes(deviceId: string): { client: JsonObject; shared: JsonObject } {
    const d = this.dd(deviceId);
    const flat = (r: Record<string, AttrValue>): JsonObject =>
      Object.fromEntries(Object.entries(r).map(([k, a]) => [k, a.value]));
    return { client: flat(d.client), shared: flat(d.shared) };
  }

  // ---- provisioning ----

  addProfile(p: ProvisionProfile): ProvisionProfile {
    if (!p.key || !p.secret) throw new StoreError(400, 'key and secret are required');
    if (p.strategy !== 'ALLOW_CREATE_NEW_DEVICES' && p.strategy !== 'CHECK_PRE_PROVISIONED_DEVICES') {
      throw new StoreError(400, 'strategy must be ALLOW_CREATE_NEW_DEVICES or CHECK_PRE_PROVISIONED_DEVICES');
    }
    this.profiles = this.profiles.filter((x) => x.key !== p.key);
    const prof = { key: p.key, secret: p.secret, strategy: p.strategy };
    this.profiles.push(prof);
    this.dirty();
    return prof;
  }

  findProfile(key: string, secret: string): ProvisionProfile | undefined {
    return this.profiles.find((p) => p.key === key && p.secret === secret);
  }

  listProfiles(): ProvisionProfile[] { return [...this.profiles]; }

  // ---- RPC log ----

  newRpc(deviceId: string, r: Omit<RpcRecord, 'id' | 'deviceId' | 'status' | 'createdTs'>): RpcRecord {
    const d = this.dd(deviceId);
    const rec: RpcRecord = { id: d.nextRpcId++, deviceId, status: 'QUEUED', createdTs: Date.now(), ...r };
    this.rpc.push(rec);
    if (this.rpc.length > RPC_LOG_LIMIT) this.rpc.splice(0, this.rpc.length - RPC_LOG_LIMIT);
    this.dirty();
    return rec;
  }

  updateRpc(rec: RpcRecord, patch: Partial<Pick<RpcRecord, 'status' | 'response'>>): void {
    Object.assign(rec, patch);
    this.dirty();
  }

  rpcLog(deviceId?: string): RpcRecord[] {
    return this.rpc.filter((r) => !deviceId || r.deviceId === deviceId);
  }

  // ---- OTA ----

  setOta(deviceId: string, pkg: OtaPackage): void {
    this.dd(deviceId).ota[pkg.type] = pkg;
    this.dirty();
  }

  ota(deviceId: string, type: 'fw' | 'sw'): OtaPackage | undefined { return this.dd(deviceId).ota[type]; }

  close(): void { this.flush(); }
}

export class StoreError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}
