/*
 * The OTA agent on XS: a download into NOR slots with a power cut in the middle of a chunk write,
 * a reboot that resumes it, verification (SHA-256) and the switch, then the new image's UPDATED.
 * Everything is in memory and on a manual clock, written here without Node APIs so the same
 * scenario runs in the xsnap worker and on Node (xs.test.ts compares the two).
 */
import type { CoapRequest, CoapResponse } from '../../src/coap/types';
import { OtaAgent } from '../../src/ota/agent';
import { createChecksum } from '../../src/ota/hash';
import { OtaStore } from '../../src/ota/store';
import type { Clock, FirmwareImage, FirmwareSlots, Flash } from '../../src/platform/types';
import { silentLog } from '../../src/platform/types';
import { openDeviceStorage } from '../../src/storage/index';
import type { FirmwareChunkRequest, ThingsBoardDeviceApi } from '../../src/thingsboard/api';
import type { TbObject } from '../../src/thingsboard/payload';
import { hex, runOnXsIfHere, settle } from '../xs/fixtures/harness';

class Cut extends Error {
  override readonly name = 'Cut';
}

class NorFlash implements Flash {
  readonly bytes: Uint8Array;
  /** Program operations left before a cut (the cut one lets 100 bytes through). */
  cutAfterWrites = -1;
  constructor(readonly byteLength: number, readonly blockSize = 4096) {
    this.bytes = new Uint8Array(byteLength).fill(0xff);
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.slice(offset, offset + length);
  }
  write(offset: number, data: Uint8Array): void {
    let n = data.length;
    const cut = this.cutAfterWrites === 0;
    if (this.cutAfterWrites >= 0) this.cutAfterWrites--;
    if (cut) n = Math.min(n, 100);
    for (let i = 0; i < n; i++) this.bytes[offset + i]! &= data[i]!;
    if (cut) throw new Cut('power cut');
  }
  erase(block: number): void {
    this.bytes.fill(0xff, block * this.blockSize, (block + 1) * this.blockSize);
  }
}

class Slots implements FirmwareSlots {
  readonly images: [FirmwareImage, FirmwareImage | null] = [{ title: 'fw', version: '1' }, null];
  readonly flashes = [new NorFlash(64 * 1024), new NorFlash(64 * 1024)];
  active = 0;
  trial = false;
  pending = -1;
  restarts = 0;
  get update(): NorFlash {
    return this.flashes[1 - this.active]!;
  }
  boot(): void {
    if (this.pending >= 0) {
      this.active = this.pending;
      this.pending = -1;
      this.trial = true;
    }
  }
  running(): FirmwareImage & { trial: boolean; trialBoots: number } {
    return { ...this.images[this.active]!, trial: this.trial, trialBoots: this.trial ? 1 : 0 };
  }
  activate(_size: number, image: FirmwareImage): void {
    this.images[1 - this.active] = image;
    this.pending = 1 - this.active;
  }
  confirm(): void {
    this.trial = false;
  }
  rollback(): void {}
  restart(): void {
    this.restarts++;
  }
}

class Timers implements Clock {
  t = 0;
  list: { due: number; id: number; fn: () => void }[] = [];
  #id = 0;
  now(): number {
    return this.t;
  }
  epochMs(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.list.push({ due: this.t + ms, id, fn });
    this.list.sort((a, b) => a.due - b.due || a.id - b.id);
    return id;
  }
  clearTimer(h: unknown): void {
    this.list = this.list.filter((x) => x.id !== h);
  }
  async run(done: () => boolean): Promise<void> {
    for (let i = 0; i < 100_000 && !done(); i++) {
      await settle();
      if (done()) return;
      const next = this.list.shift();
      if (!next) return;
      this.t = next.due;
      next.fn();
    }
  }
}

function image(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

export async function scenario(): Promise<{ states: string[]; requests: number[]; booted: string; image: string; checksum: string }> {
  const clock = new Timers();
  const pkg = image(9000);
  const sha = createChecksum('SHA256');
  sha.update(pkg);
  const attrs: TbObject = { fw_title: 'fw', fw_version: '2', fw_size: pkg.length, fw_checksum_algorithm: 'SHA256', fw_checksum: sha.digestHex() };
  const states: string[] = [];
  const requests: number[] = [];
  const later = <T>(fn: () => T): Promise<T> => new Promise((r) => clock.setTimer(() => r(fn()), 30));
  const tb = {
    path: (f: string) => `/api/v1/T/${f}`,
    stopped: undefined,
    retryAfter: 0,
    sendTelemetry: (r: TbObject | { ts: number; values: TbObject }) =>
      later(() => void states.push(String(('values' in r ? (r.values as TbObject) : (r as TbObject)).fw_state))),
    requestAttributes: () => later(() => ({ client: {}, shared: attrs })),
    firmwareUnavailable: undefined,
    maxFirmwareChunk: 1008,
    requestFirmwareChunk: async (req: FirmwareChunkRequest) =>
      (await coap.request({ method: 'GET', path: '/fw/T', query: [`version=${req.version}`, `size=${req.size}`, `chunk=${req.chunk}`] })).payload,
  };
  const coap = {
    request: (req: CoapRequest): Promise<CoapResponse> => {
      const q: Record<string, string> = {};
      for (const s of req.query ?? []) q[s.slice(0, s.indexOf('='))] = s.slice(s.indexOf('=') + 1);
      const size = Number(q.size), chunk = Number(q.chunk);
      requests.push(chunk);
      return later(() => ({ code: 0x45, payload: pkg.slice(size * chunk, size * (chunk + 1)), options: [], type: 1 }));
    },
  };
  const storage = new NorFlash(80 * 1024);
  const slots = new Slots();
  const boot = (): OtaAgent => {
    slots.boot();
    const agent = new OtaAgent({ slots, clock, log: silentLog, store: new OtaStore(openDeviceStorage(storage).kv), chunkSize: 1008, paceMs: 10 });
    agent.attach({ tb: tb as unknown as ThingsBoardDeviceApi });
    agent.onConnected();
    return agent;
  };
  slots.update.cutAfterWrites = 5; // the 6th chunk write is cut after 100 bytes
  const first = boot();
  await clock.run(() => slots.update.cutAfterWrites === -1);
  first.stop();
  clock.list = [];
  const second = boot();
  await clock.run(() => slots.restarts > 0);
  second.stop();
  const third = boot();
  await clock.run(() => !slots.trial);
  third.stop();
  const check = createChecksum('SHA256');
  check.update(slots.flashes[slots.active]!.read(0, pkg.length));
  return { states, requests, booted: slots.running().version, image: hex(slots.flashes[slots.active]!.read(0, 64)), checksum: check.digestHex() };
}

runOnXsIfHere(scenario);
