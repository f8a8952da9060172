/* Shared set-up of the OTA tests: a device with storage flash and A/B slots against the local endpoint. */
import { randomBytes } from 'node:crypto';
import { MemFlash } from '../../tools/sim/flash';
import { ScaledClock } from '../../tools/sim/clock';
import { SimFirmwareSlots } from '../../tools/sim/ota-slots';
import { OtaSimDevice } from '../../tools/sim/ota-device';
import type { OtaSimOptions } from '../../tools/sim/ota-device';
import type { Endpoint } from '../helpers/e2e';
import { admin } from '../helpers/e2e';
import { memoryLog } from '../helpers/wait';

export const FACTORY = Object.freeze({ title: 'sim-fw', version: '1.0.0' });

export interface Rig {
  sim: OtaSimDevice;
  slots: SimFirmwareSlots;
  flash: MemFlash;
  log: ReturnType<typeof memoryLog>;
  deviceId: string;
  name: string;
}

/** A device `name` on the endpoint, booted with the factory image (not started when `start` is false). */
export async function otaRig(e2e: Endpoint, name: string, extra: Partial<OtaSimOptions> = {}, start = true): Promise<Rig> {
  const dev = e2e.server.store.createDevice(name);
  const log = memoryLog();
  const flash = new MemFlash(80 * 1024, 4096);
  const slots = new SimFirmwareSlots({ factory: FACTORY, slotBytes: 256 * 1024 });
  const sim = new OtaSimDevice({
    server: { host: '127.0.0.1', port: e2e.server.coapPort },
    credentials: { kind: 'token', token: dev.token },
    reportingIntervalMs: 600_000,
    clock: new ScaledClock(20),
    log,
    flash,
    slots,
    ...extra,
    otaOptions: { paceMs: 20, responseTimeoutMs: 2000, retryPauseMs: 2000, ...extra.otaOptions },
  });
  if (start) await sim.boot();
  return { sim, slots, flash, log, deviceId: dev.id, name };
}

export function image(size: number): Buffer {
  return randomBytes(size);
}

export async function upload(e2e: Endpoint, title: string, version: string, data: Buffer, checksumAlgorithm = 'SHA256', checksum?: string): Promise<void> {
  const r = await admin(e2e.server, 'POST', '/api/ota/packages', { title, version, data: data.toString('base64'), checksumAlgorithm, ...(checksum ? { checksum } : {}) });
  if (r.status !== 201) throw new Error(`upload: ${r.status} ${JSON.stringify(r.json)}`);
}

export async function assign(e2e: Endpoint, name: string, title: string, version: string): Promise<void> {
  const r = await admin(e2e.server, 'POST', `/api/devices/${name}/ota`, { title, version });
  if (r.status !== 200) throw new Error(`assign: ${r.status} ${JSON.stringify(r.json)}`);
}

export async function fwStates(e2e: Endpoint, name: string): Promise<{ ts: number; fw_state: string; fw_error?: string; current_fw_version?: string }[]> {
  const r = await admin(e2e.server, 'GET', `/api/devices/${name}/fw-state`);
  return r.json;
}
