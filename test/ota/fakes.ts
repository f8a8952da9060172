/*
 * In-memory stand-ins for the OTA agent's two collaborators, on a ManualClock: the ThingsBoard
 * client (fw_state telemetry, attribute requests, the token path) and the CoAP client (/fw chunk
 * requests answered from a package, with loss and latency). No sockets: the power-cut test runs
 * hundreds of downloads.
 */
import { createHash } from 'node:crypto';
import type { CoapRequest, CoapResponse } from '../../src/coap/types';
import { OtaAgent } from '../../src/ota/agent';
import type { OtaOptions } from '../../src/ota/agent';
import { OtaStore } from '../../src/ota/store';
import type { CoapClient } from '../../src/coap/client';
import { ThingsBoardClient } from '../../src/thingsboard/client';
import type { FirmwareChunkRequest, ThingsBoardDeviceApi } from '../../src/thingsboard/api';
import type { TbObject } from '../../src/thingsboard/payload';
import { openDeviceStorage } from '../../src/storage/index';
import { flushMicrotasks, ManualClock } from '../../tools/sim/clock';
import type { MemFlash } from '../../tools/sim/flash';
import type { SimFirmwareSlots } from '../../tools/sim/ota-slots';
import { memoryLog } from '../helpers/wait';

export interface FakePackage {
  title: string;
  version: string;
  data: Uint8Array;
  /** Published checksum (default: the SHA-256 of data). */
  checksum?: string;
  algorithm?: string;
}

export function fwAttributes(p: FakePackage): TbObject {
  return {
    fw_title: p.title,
    fw_version: p.version,
    fw_size: p.data.length,
    fw_checksum_algorithm: p.algorithm ?? 'SHA256',
    fw_checksum: p.checksum ?? createHash('sha256').update(p.data).digest('hex'),
  };
}

/** ThingsBoard as the agent sees it. */
export class FakeThingsBoard {
  pkg: FakePackage | undefined;
  readonly telemetry: TbObject[] = [];
  /** The same, with the ts the device gave (undefined: the server's arrival time). */
  readonly records: { ts: number | undefined; values: TbObject }[] = [];
  /** Telemetry refused (no response) while chunk requests still work: a partial outage. */
  telemetryDown = false;
  /** Chunk indices requested, in order (with the version asked for). */
  readonly requests: { chunk: number; version: string; size: number }[] = [];
  lossRate = 0;
  latencyMs = 40;
  x509 = false;
  /** After a power cut the device is dead: nothing it sends arrives, nothing comes back. */
  dead = false;
  #seed = 12345;
  #fw: () => ThingsBoardClient;

  constructor(readonly clock: ManualClock) {
    const fw = () => new ThingsBoardClient(this.coap as unknown as CoapClient, { clock, credentials: this.x509 ? { kind: 'x509' } : { kind: 'token', token: 'TOKEN' } });
    this.#fw = fw;
  }

  #rand(): number {
    this.#seed = (Math.imul(this.#seed, 1103515245) + 12345) >>> 0;
    return this.#seed / 0x100000000;
  }

  #later<T>(ms: number, fn: () => T): Promise<T> {
    return new Promise((resolve, reject) =>
      this.clock.setTimer(() => {
        try {
          resolve(fn());
        } catch (e) {
          reject(e);
        }
      }, ms),
    );
  }

  readonly tb = (() => {
    const fw = () => this.#fw();
    return {
    path: (feature: string) => (this.x509 ? `/api/v1/${feature}` : `/api/v1/TOKEN/${feature}`),
    stopped: undefined,
    retryAfter: 0,
    sendTelemetry: (record: TbObject | { ts: number; values: TbObject }) =>
      this.#later(this.latencyMs, () => {
        if (this.dead || this.telemetryDown) throw Object.assign(new Error('no response'), { code: 'timeout' });
        // the agent sends fw_state with its own increasing ts
        const timed = 'ts' in record && 'values' in record;
        this.telemetry.push(timed ? (record.values as TbObject) : (record as TbObject));
        this.records.push({ ts: timed ? (record.ts as number) : undefined, values: timed ? (record.values as TbObject) : (record as TbObject) });
      }),
    requestAttributes: () => this.#later(this.latencyMs, () => ({ client: {}, shared: this.pkg ? fwAttributes(this.pkg) : {} })),
    // the real CoAP ThingsBoardClient's /fw request over the fake CoAP client below
    get firmwareUnavailable(): string | undefined {
      return fw().firmwareUnavailable;
    },
    maxFirmwareChunk: 1008,
    requestFirmwareChunk: (req: FirmwareChunkRequest) => fw().requestFirmwareChunk(req),
    };
  })();

  readonly coap = {
    request: (req: CoapRequest): Promise<CoapResponse> => {
      const q = Object.fromEntries((req.query ?? []).map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));
      const chunk = Number(q.chunk), size = Number(q.size);
      this.requests.push({ chunk, version: q.version ?? '', size });
      const timeout = req.transmission?.responseTimeout ?? 5000;
      const lost = () => this.#later(timeout, () => {
        throw Object.assign(new Error('no response'), { code: 'timeout' });
      });
      if (this.dead || req.path !== `/fw/TOKEN`) return lost();
      if (this.#rand() < this.lossRate) return lost(); // request lost
      const p = this.pkg;
      if (!p) return this.#later(this.latencyMs, () => ({ code: 0x84, payload: new Uint8Array(0), options: [], type: 1 }));
      if ((q.title !== undefined && q.title !== p.title) || (q.version !== undefined && q.version !== p.version)) return this.#later(this.latencyMs, () => ({ code: 0x80, payload: new Uint8Array(0), options: [], type: 1 }));
      const part = p.data.subarray(size * chunk, size * (chunk + 1));
      if (!part.length) return lost(); // past the end: ThingsBoard sends nothing
      if (this.#rand() < this.lossRate) return lost(); // response lost
      return this.#later(this.latencyMs, () => ({ code: 0x45, payload: part.slice(), options: [], type: 1 }));
    },
  };

  states(): string[] {
    return this.telemetry.map((t) => String(t.fw_state));
  }
}

/** An agent as the firmware boots it: a fresh KvStore over the storage flash, attached, connected. */
export function bootAgent(o: { fake: FakeThingsBoard; storage: MemFlash; slots: SimFirmwareSlots; options?: Partial<OtaOptions> }): { agent: OtaAgent; log: ReturnType<typeof memoryLog> } {
  const log = memoryLog();
  o.slots.boot();
  const agent = new OtaAgent({ slots: o.slots, clock: o.fake.clock, log, store: new OtaStore(openDeviceStorage(o.storage).kv), paceMs: 10, responseTimeoutMs: 2000, retryPauseMs: 5000, ...o.options });
  agent.attach({ tb: o.fake.tb as unknown as ThingsBoardDeviceApi });
  agent.onConnected();
  return { agent, log };
}

/** Runs the clock timer by timer until `done()` (bounded). */
export async function drive(clock: ManualClock, done: () => boolean, maxSteps = 200_000): Promise<void> {
  for (let i = 0; i < maxSteps; i++) {
    await flushMicrotasks();
    if (done()) return;
    const due = clock.nextDue();
    if (due === undefined) {
      await new Promise((r) => setImmediate(r));
      if (clock.nextDue() === undefined && !done()) throw new Error('stuck: no timer pending and not done');
      continue;
    }
    clock.advanceTo(due);
  }
  throw new Error(`not done after ${maxSteps} steps`);
}
