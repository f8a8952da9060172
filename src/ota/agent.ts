/*
 * Firmware update over the air, ThingsBoard style (reference thingsboard-coap.md §1.3):
 *
 *   fw_* shared attributes (Observe notification, the registration's snapshot, or an attribute
 *   request at boot) -> GET /fw/$TOKEN?title=&version=&size=&chunk= for chunk 0..ceil(fw_size/size)-1
 *   (a chunk past the end gets no response at all, so the count comes from fw_size) -> each chunk
 *   written to the inactive image slot, read back, and counted in flash -> checksum over the slot
 *   -> switch (on trial) -> restart -> the new image reports UPDATED and is confirmed; an image that
 *   does not reach the server within `maxTrialBoots` boots is rolled back, and the old image reports
 *   FAILED.
 *
 * fw_state goes DOWNLOADING -> DOWNLOADED -> VERIFIED -> UPDATING -> UPDATED, or FAILED with
 * fw_error, as telemetry (what ThingsBoard's dashboard reads), with current_fw_title/version.
 *
 * Resume: the chunk counter in flash (store.ts) is advanced only after a chunk is in the slot and
 * read back equal, so after a power cut or reboot the download goes on from there. A chunk torn by
 * the cut sits in a block that is no longer blank: the download then goes back to that block's first
 * chunk (at most blockSize / chunkSize - 1 chunks again), never to zero. A different fw_version
 * mid-download starts that package from chunk 0, cleanly.
 *
 * Work runs from fresh jobs (never inside a notification handler): the receive path on XS is deep.
 */
import type { Clock, FirmwareSlots, Log, TimerHandle } from '../platform/types';
import type { ThingsBoardDeviceApi } from '../thingsboard/api';
import { FIRMWARE_X509_UNSUPPORTED, TbError } from '../thingsboard/errors';
import type { TbObject, TbValue } from '../thingsboard/payload';
import type { OtaRecord, OtaStore, OtaTarget, PendingState } from './store';
import { sameTarget } from './store';
import { createChecksum, isChecksumAlgorithm } from './hash';
import type { ChecksumAlgorithm, StreamingHash } from './hash';

export type FwState = 'DOWNLOADING' | 'DOWNLOADED' | 'VERIFIED' | 'UPDATING' | 'UPDATED' | 'FAILED';

export const FW_KEYS = Object.freeze(['fw_title', 'fw_version', 'fw_size', 'fw_checksum', 'fw_checksum_algorithm', 'fw_url']);

/** Why an X.509 device cannot update over CoAP from ThingsBoard (logged and reported as fw_error). */
export const X509_UNSUPPORTED = FIRMWARE_X509_UNSUPPORTED;

/** The chunk size a download falls back to when no chunk of its first size ever came through. */
const FALLBACK_CHUNK = 512;

/**
 * Bytes per chunk for responses of at most `maxMessage` bytes of CoAP: ThingsBoard's chunk response
 * is a bare 2.05 (header 4, token up to 8, payload marker 1; no option unless the request had
 * Block2), so 16 bytes of allowance, rounded down to 16 (flash write alignment), at most 1024 (the
 * largest the official sample client asks for). ThingsBoard slices the image at any `size`.
 */
export function chunkSizeFor(maxMessage: number): number {
  return Math.max(16, Math.min(1024, Math.floor((maxMessage - 16) / 16) * 16));
}

export interface OtaOptions {
  slots: FirmwareSlots;
  /** Progress in flash; may be given later with useStore() (before the app starts). */
  store?: OtaStore;
  clock: Clock;
  log: Log;
  /** Bytes per chunk (a multiple of 16, 16..1024). Default chunkSizeFor(maxMessage). */
  chunkSize?: number;
  /**
   * Largest CoAP message the device receives in one datagram (default 1024: this device's DTLS
   * offers Max Fragment Length 1024, so no record it accepts carries more; a 1024 B message plus
   * DTLS, UDP and IPv6 headers also stays below IPv6's minimum MTU of 1280): 1008-byte chunks.
   */
  maxMessage?: number;
  /** Pause between chunk requests (ThingsBoard rate-limits bursts), ms. Default 100. */
  paceMs?: number;
  /** Chunks are requested NON (default): one datagram each way; a lost one is asked again after this, ms. Default 5000. */
  responseTimeoutMs?: number;
  /**
   * Put title= in each chunk request too (default false: version= alone identifies the assigned
   * package to ThingsBoard, which checks each of the two that is given, and 14 bytes a chunk count
   * against the 15 % budget; a package swapped under the same version fails the checksum, and the
   * new fw_* attributes start the new download anyway).
   */
  queryTitle?: boolean;
  /** Request chunks as CON instead (the CoAP layer then retransmits; ThingsBoard adds an empty ACK, and we ACK its response). */
  confirmable?: boolean;
  /** Failed attempts in a row before pausing `retryPauseMs`. Default 8. */
  maxAttempts?: number;
  retryPauseMs?: number;
  /** Boots a new image gets to reach the server and report UPDATED before the old one comes back. Default 3. */
  maxTrialBoots?: number;
  /** Time a new image gets, per boot, to reach the server before it restarts (counting a trial boot), ms. Default 10 min. */
  trialTimeoutMs?: number;
  /**
   * The platform's digest for an algorithm, or undefined to use src/ota/hash.ts (on Moddable: the
   * SDK's `crypt` Digest for MD5 and SHA-*; CRC32 and MURMUR3 have none).
   */
  hash?: (algorithm: ChecksumAlgorithm) => StreamingHash | undefined;
}

export type OtaEvent =
  | { type: 'state'; state: FwState; title: string; version: string; error?: string }
  | { type: 'chunk'; index: number; count: number; resumed: boolean }
  | { type: 'restart'; reason: string };

export interface OtaStats {
  requests: number;
  chunks: number;
  timeouts: number;
  /** Chunks downloaded again after a torn write. */
  rewound: number;
  bytes: number;
}

export class OtaAgent {
  onEvent?: (event: OtaEvent) => void;
  readonly stats: OtaStats = { requests: 0, chunks: 0, timeouts: 0, rewound: 0, bytes: 0 };
  readonly #o: OtaOptions;
  readonly #slots: FirmwareSlots;
  #storeRef: OtaStore | undefined;
  #chunkSize: number;
  #tb: ThingsBoardDeviceApi | undefined;
  /** fw_* attributes as last seen (notifications carry only the changed keys). */
  #known: TbObject = {};
  #target: OtaRecord | undefined;
  /** Bumped to cancel a running download. */
  #generation = 0;
  #downloading = false;
  #stopped = false;
  /** Timestamp of the last fw_state sent: each state gets its own (ThingsBoard keeps one point per key and ts). */
  #lastStateTs = 0;
  #trial = false;
  #confirmed = false;
  #trialTimer: TimerHandle | undefined;
  #timers = new Set<TimerHandle>();
  #failedLogged = '';
  #booted = false;
  #flushing = false;
  #suspended: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(options: OtaOptions) {
    this.#o = options;
    this.#slots = options.slots;
    this.#storeRef = options.store;
    this.#chunkSize = options.chunkSize ?? chunkSizeFor(options.maxMessage ?? 1024);
    if (this.#chunkSize % 16 || this.#chunkSize < 16 || this.#chunkSize > 1024)
      throw new RangeError(`OTA chunk size ${this.#chunkSize}: a multiple of 16 from 16 to 1024`);
  }

  /** The progress store, when it is opened after the agent (one KvStore per partition). */
  useStore(store: OtaStore): void {
    this.#storeRef = store;
  }

  get #store(): OtaStore {
    if (!this.#storeRef) throw new Error('OtaAgent: no progress store (options.store or useStore())');
    return this.#storeRef;
  }

  /**
   * Bytes per chunk of the next download: `chunkSize` when given, else the largest multiple of 16
   * that both `maxMessage` and the transport (tb.maxFirmwareChunk: the DTLS record over coaps, the
   * packet buffer over MQTT) carry, read when the download starts. A download under way keeps its size.
   */
  get chunkSize(): number {
    const max = this.#tb?.maxFirmwareChunk;
    if (this.#o.chunkSize !== undefined || max === undefined) return this.#chunkSize;
    return Math.min(this.#chunkSize, Math.max(16, Math.floor(max / 16) * 16));
  }

  /** The package being downloaded, if any. */
  get target(): OtaRecord | undefined {
    return this.#target;
  }

  get downloading(): boolean {
    return this.#downloading;
  }

  /** Called by the app (DeviceConfig.ota) once its ThingsBoard client exists. */
  attach(app: { tb: ThingsBoardDeviceApi }): void {
    this.#tb = app.tb;
    this.#boot();
  }

  /** Boot-time bookkeeping of a new image on trial: too many boots -> back to the old image. */
  #boot(): void {
    if (this.#booted) return;
    this.#booted = true;
    const r = this.#slots.running();
    this.#trial = r.trial;
    if (!r.trial) return;
    const max = this.#o.maxTrialBoots ?? 3;
    if (r.trialBoots > max) {
      this.#o.log.error(`firmware ${r.title} ${r.version} did not reach the server in ${max} boots: rolling back`);
      this.#slots.rollback();
      this.#restart(`rollback of ${r.version}`);
      return;
    }
    this.#o.log.info(`firmware ${r.title} ${r.version} on trial (boot ${r.trialBoots} of ${max}): confirmed once it reports UPDATED to the server`);
    // Noted in the progress record (from a fresh job: the store may be given just after attach()),
    // so that the old image, if it comes back, can tell a rollback from a switch that never happened.
    // At once when the store is there (main.ts gives it to the constructor): the sooner this is in
    // flash, the fewer ways the new image can die before the old one can tell what happened.
    const note = () => {
      const rec = this.#storeRef?.load();
      if (rec?.phase === 'updating' && rec.title === r.title && rec.version === r.version) this.#store.save({ ...rec, trialBoots: r.trialBoots });
    };
    if (this.#storeRef) note();
    else void Promise.resolve().then(note);
    const ms = this.#o.trialTimeoutMs ?? 600_000;
    this.#trialTimer = this.#o.clock.setTimer(() => {
      this.#trialTimer = undefined;
      if (this.#confirmed || this.#stopped) return;
      this.#o.log.warn(`firmware ${r.version} has not reached the server in ${ms / 1000} s: restarting (trial boot ${r.trialBoots} of ${max})`);
      this.#restart('trial timeout');
    }, ms);
  }

  /** Shared attributes from a notification or a snapshot; the work happens in a fresh job. */
  onSharedAttributes(shared: TbObject, deleted: string[]): void {
    let relevant = false;
    for (const k of FW_KEYS) {
      if (k in shared) {
        this.#known[k] = shared[k]!;
        relevant = true;
      }
      if (deleted.includes(k)) {
        delete this.#known[k];
        relevant = true;
      }
    }
    if (relevant && !this.#stopped) void Promise.resolve().then(() => this.#consider());
  }

  /** The app registered with the server (after boot, after provisioning): report, resume, ask. */
  onConnected(): void {
    if (this.#stopped) return;
    void Promise.resolve()
      .then(() => this.#afterConnect())
      .catch((e: Error) => this.#o.log.warn(`ota: ${e.message}`));
  }

  /**
   * The link is going to sleep (end of a wake cycle's activity window): no new chunk request until
   * resume(). A request in flight may time out; it is asked again after resume(). Progress is kept.
   */
  suspend(): void {
    if (this.#suspended) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#suspended = { promise, resolve };
  }

  /** The link is up again (next wake cycle): the download goes on. */
  resume(): void {
    const s = this.#suspended;
    this.#suspended = undefined;
    s?.resolve();
  }

  stop(): void {
    this.#stopped = true;
    this.resume();
    this.#generation++;
    if (this.#trialTimer !== undefined) this.#o.clock.clearTimer(this.#trialTimer);
    for (const t of this.#timers) this.#o.clock.clearTimer(t);
    this.#timers.clear();
  }

  async #afterConnect(): Promise<void> {
    const tb = this.#tb;
    if (!tb) return;
    // States an earlier connection (or boot) could not deliver go first, with their own ts.
    await this.#flushPending();
    const running = this.#slots.running();
    const rec = this.#store.load();
    if (this.#trial && !this.#confirmed) {
      // The new image is up and talks to the server: say so, and keep it once the server has it.
      // Not kept in flash when undelivered: it is sent again until confirmed, or the image rolls back.
      if (await this.#report('UPDATED', running.title, running.version, undefined, { current_fw_title: running.title, current_fw_version: running.version }, false)) {
        this.#confirmed = true;
        if (this.#trialTimer !== undefined) this.#o.clock.clearTimer(this.#trialTimer);
        this.#slots.confirm();
        this.#store.clear();
        this.#o.log.info(`firmware ${running.title} ${running.version} confirmed`);
      } else if (!this.#stopped) {
        // Not confirmed yet: try again until the trial timer restarts the device.
        void this.#sleep(this.#o.retryPauseMs ?? 60_000).then(() => {
          if (!this.#confirmed && !this.#stopped) this.onConnected();
        });
      }
    } else if (rec?.phase === 'updating') {
      if (rec.title === running.title && rec.version === running.version) {
        // Confirmed before a power cut cleared the record.
        this.#store.clear();
      } else if (!rec.trialBoots && rec.reswitched) {
        // Switched twice and the new image never noted a boot: it dies before the agent runs (or
        // the loader will not start it). Stay on this image.
        const error = `${rec.version} did not start after the switch (twice): staying on ${running.version}`;
        this.#o.log.error(`firmware update failed: ${error}`);
        this.#store.save({ ...rec, phase: 'failed', error });
        await this.#report('FAILED', rec.title, rec.version, error);
      } else if (!rec.trialBoots) {
        // The power went between this record and the switch: the new image never booted. Verify
        // the slot again (every chunk is in it) and switch, once.
        this.#o.log.warn(`firmware ${rec.version}: the switch did not happen before the restart; verifying the image again`);
        this.#target = { ...rec, phase: 'downloading', reswitched: true };
        this.#store.save(this.#target);
        this.#startDownload();
      } else {
        const error = `rolled back to ${running.version}: ${rec.version} did not reach the server within ${this.#o.maxTrialBoots ?? 3} boots`;
        this.#o.log.error(`firmware update ${error}`);
        this.#store.save({ ...rec, phase: 'failed', error });
        await this.#report('FAILED', rec.title, rec.version, error);
      }
    } else if (rec?.phase === 'downloading' && !this.#target) {
      // Go on where the last boot stopped; the attributes below may still replace the package.
      this.#target = rec;
      this.#startDownload();
    }
    try {
      const snap = await tb.requestAttributes({ sharedKeys: FW_KEYS.slice() });
      this.onSharedAttributes(snap.shared, []);
    } catch (e) {
      this.#o.log.debug(`ota: fw attribute request: ${(e as Error).message}`);
    }
  }

  #parseTarget(): OtaTarget | undefined {
    const k = this.#known;
    const title = k.fw_title, version = k.fw_version, size = k.fw_size, checksum = k.fw_checksum;
    const algorithm = k.fw_checksum_algorithm ?? 'SHA256';
    if (typeof title !== 'string' || typeof version !== 'string') return undefined;
    if (typeof size !== 'number' || !(size > 0) || !Number.isInteger(size) || typeof checksum !== 'string' || !isChecksumAlgorithm(algorithm)) return undefined;
    return { title, version, size, checksum: checksum.toLowerCase(), algorithm };
  }

  /** Decides what the fw_* attributes ask for. */
  async #consider(): Promise<void> {
    if (this.#stopped || !this.#tb) return;
    const running = this.#slots.running();
    const k = this.#known;
    const t = this.#parseTarget();
    if (!t) {
      if (typeof k.fw_title === 'string' && typeof k.fw_version === 'string' && typeof k.fw_url === 'string' && !(k.fw_title === running.title && k.fw_version === running.version)) {
        await this.#failOnce({ title: k.fw_title, version: k.fw_version, size: 0, checksum: '', algorithm: 'SHA256' }, 'package is an external URL (fw_url): not downloadable over CoAP');
        return;
      }
      if (k.fw_title === undefined && this.#target) {
        this.#o.log.info(`firmware ${this.#target.version} no longer assigned: download cancelled`);
        this.#cancel();
        this.#store.clear();
      }
      return;
    }
    if (t.title === running.title && t.version === running.version) {
      if (this.#target) this.#cancel();
      return;
    }
    const rec = this.#store.load();
    if (rec?.phase === 'updating') return; // settled by #afterConnect
    if (rec?.phase === 'failed' && sameTarget(rec, t)) {
      const key = `${t.title} ${t.version}`;
      if (this.#failedLogged !== key) this.#o.log.warn(`firmware ${key} failed before (${rec.error ?? 'unknown'}): not tried again until another package is assigned`);
      this.#failedLogged = key;
      return;
    }
    const unavailable = this.#tb.firmwareUnavailable;
    if (unavailable) {
      this.#o.log.error(`firmware ${t.title} ${t.version}: ${unavailable}`);
      await this.#failOnce(t, unavailable);
      return;
    }
    if (t.size > this.#slots.update.byteLength) {
      await this.#failOnce(t, `image of ${t.size} bytes does not fit the ${this.#slots.update.byteLength}-byte update slot`);
      return;
    }
    if (this.#target && sameTarget(this.#target, t)) {
      if (!this.#downloading) this.#startDownload();
      return;
    }
    if (this.#target) this.#o.log.warn(`firmware target changed from ${this.#target.version} to ${t.version} mid-download: starting ${t.version} from chunk 0`);
    this.#cancel();
    const next: OtaRecord = { ...t, chunkSize: this.chunkSize, phase: 'downloading' };
    this.#store.save(next);
    this.#store.setNextChunk(t, 0);
    this.#target = next;
    this.#o.log.info(`firmware ${t.title} ${t.version} assigned (${t.size} bytes, ${t.algorithm}): downloading in ${Math.ceil(t.size / next.chunkSize)} chunks of ${next.chunkSize}`);
    this.#startDownload();
  }

  async #failOnce(t: OtaTarget, error: string): Promise<void> {
    const rec = this.#store.load();
    if (rec?.phase === 'failed' && sameTarget(rec, t)) return;
    await this.#fail(t, error);
  }

  async #fail(t: OtaTarget, error: string): Promise<void> {
    this.#cancel();
    this.#store.save({ ...t, chunkSize: this.chunkSize, phase: 'failed', error });
    this.#o.log.error(`firmware ${t.title} ${t.version} FAILED: ${error}`);
    await this.#report('FAILED', t.title, t.version, error);
  }

  #cancel(): void {
    this.#generation++;
    this.#target = undefined;
  }

  #startDownload(): void {
    if (this.#downloading || !this.#target) return;
    this.#downloading = true;
    const gen = this.#generation;
    void this.#download(this.#target, gen)
      .catch((e: Error) => this.#o.log.error(`firmware download stopped: ${e.message}`))
      .finally(() => {
        if (gen === this.#generation || this.#downloading) this.#downloading = false;
        // A newer target arrived while this one was winding down.
        if (!this.#stopped && this.#target && gen !== this.#generation) this.#startDownload();
      });
  }

  async #download(target: OtaRecord, gen: number): Promise<void> {
    let cs = target.chunkSize;
    let count = Math.ceil(target.size / cs);
    const slot = this.#slots.update;
    const bs = slot.blockSize;
    let next = Math.min(this.#store.nextChunk(target), count);
    const resumed = next > 0;
    let received = 0;
    let refusals = 0;
    if (next > 0 && next < count && (next * cs) % bs !== 0) {
      // What chunk `next` will write must be blank; a chunk torn by a power cut (or written but not
      // yet counted) is not, and NOR flash cannot program it again: rewrite its block without it.
      const off = next * cs;
      if (!isBlank(slot.read(off, Math.min(slot.byteLength, (Math.floor((off + cs - 1) / bs) + 1) * bs) - off))) {
        this.#o.log.warn(`firmware chunk ${next} was torn by a power cut: its block is rewritten with the chunks before it`);
        next = this.#repairBlock(target, next);
      }
    }
    if (resumed) this.#o.log.info(`firmware ${target.version}: resuming at chunk ${next} of ${count}`);
    await this.#report('DOWNLOADING', target.title, target.version);
    let failures = 0;
    const pace = this.#o.paceMs ?? 100;
    while (next < count) {
      if (this.#suspended) await this.#suspended.promise;
      if (gen !== this.#generation || this.#stopped) return;
      const tb = this.#tb!;
      if (tb.stopped) return; // 4.01 or a DTLS failure: the app says why; resumed at the next connect
      const wait = tb.retryAfter;
      if (wait) await this.#sleep(wait - this.#o.clock.now());
      const expect = Math.min(cs, target.size - next * cs);
      let payload: Uint8Array | undefined;
      try {
        payload = await this.#requestChunk(target, next);
      } catch (e) {
        if (e instanceof TbError && (e.code === 'bad-request' || e.code === 'not-found')) {
          // 4.00: the version is no longer the assigned package; 4.04: nothing assigned. Ask for the
          // fw attributes again after a pause: a new package starts its own download (from a fresh
          // job); the same one goes on where it was, and fails after three refusals.
          if (++refusals >= 3) {
            await this.#fail(target, `ThingsBoard refused chunk ${next} of the assigned package ${refusals} times (${e.coapCode ?? e.code})`);
            return;
          }
          this.#o.log.warn(`firmware ${target.version} chunk ${next}: ${e.message}; asking for the fw attributes again`);
          await this.#sleep(this.#o.retryPauseMs ?? 60_000);
          if (gen !== this.#generation || this.#stopped) return;
          try {
            const snap = await tb.requestAttributes({ sharedKeys: FW_KEYS.slice() });
            this.onSharedAttributes(snap.shared, FW_KEYS.filter((k) => !(k in snap.shared)));
          } catch {
            /* asked again at the next refusal */
          }
          await this.#sleep(0); // let #consider() run: it cancels this download when the package changed
          continue;
        }
        if (e instanceof TbError && e.code === 'unauthorized') return;
      }
      if (gen !== this.#generation || this.#stopped) return;
      if (!payload || payload.length !== expect) {
        if (payload) this.#o.log.warn(`firmware chunk ${next}: ${payload.length} bytes, expected ${expect}`);
        if (++failures >= (this.#o.maxAttempts ?? 8)) {
          if (cs > FALLBACK_CHUNK && next === 0 && received === 0 && !this.#suspended) {
            // Not one chunk ever came back: the response may not fit a datagram of this path, or
            // a record of the server's DTLS (an mbedTLS server sends at most 1024 B per record).
            // Start again with smaller chunks. Record first, counter second (both 0 here).
            failures = 0;
            this.#o.log.warn(`firmware: no ${cs}-byte chunk came through in ${this.#o.maxAttempts ?? 8} attempts: going on with ${FALLBACK_CHUNK}-byte chunks`);
            cs = FALLBACK_CHUNK;
            count = Math.ceil(target.size / cs);
            target = { ...target, chunkSize: cs };
            if (gen === this.#generation) this.#target = target;
            this.#store.save(target);
            this.#store.setNextChunk(target, next);
            continue;
          }
          const pause = this.#o.retryPauseMs ?? 60_000;
          this.#o.log.warn(`firmware chunk ${next}: ${failures} attempts failed, trying again in ${pause / 1000} s (progress kept)`);
          failures = 0;
          await this.#sleep(pause);
        }
        continue;
      }
      failures = 0;
      received++;
      const off = next * cs;
      // Erase each block this chunk enters at its start (never one that already holds earlier chunks).
      for (let b = Math.ceil(off / bs); b * bs < off + payload.length; b++) slot.erase(b);
      slot.write(off, payload);
      if (!equalBytes(slot.read(off, payload.length), payload)) {
        this.#o.log.warn(`firmware chunk ${next} did not read back equal: its block is rewritten with the chunks before it`);
        next = this.#repairBlock(target, next);
        continue;
      }
      next++;
      this.#store.setNextChunk(target, next);
      this.stats.chunks++;
      this.stats.bytes += payload.length;
      this.onEvent?.({ type: 'chunk', index: next - 1, count, resumed });
      if (pace > 0 && next < count) await this.#sleep(pace);
    }
    if (gen !== this.#generation || this.#stopped) return;
    await this.#report('DOWNLOADED', target.title, target.version);
    const digest = await this.#digest(target);
    if (gen !== this.#generation || this.#stopped) return;
    if (digest !== target.checksum.toLowerCase()) {
      await this.#fail(target, `checksum mismatch (${target.algorithm}): expected ${target.checksum}, image has ${digest}`);
      return;
    }
    await this.#report('VERIFIED', target.title, target.version);
    await this.#report('UPDATING', target.title, target.version);
    if (gen !== this.#generation || this.#stopped) return;
    const running = this.#slots.running();
    this.#store.save({ ...target, phase: 'updating', fromTitle: running.title, fromVersion: running.version });
    try {
      this.#slots.activate(target.size, { title: target.title, version: target.version });
    } catch (e) {
      await this.#fail(target, `boot loader refused the image: ${(e as Error).message}`);
      return;
    }
    this.#target = undefined;
    this.#o.log.info(`firmware ${target.title} ${target.version} verified and switched: restarting into it`);
    this.#restart(`update to ${target.version}`);
  }

  /**
   * Makes chunk `next` writable again: keeps the verified chunks of its block in RAM (one block,
   * 4 KB on ESP32), erases the block, writes them back, and returns where to go on. The counter is
   * first moved back to the block's first chunk, so a cut in the middle of this costs those chunks
   * again, never a wrong image; returns that chunk if the rewrite does not read back equal.
   */
  #repairBlock(target: OtaRecord, next: number): number {
    const slot = this.#slots.update;
    const cs = target.chunkSize, bs = slot.blockSize;
    const off = next * cs;
    const start = Math.floor(off / bs) * bs;
    const end = Math.min(slot.byteLength, (Math.floor((off + cs - 1) / bs) + 1) * bs);
    const keep = slot.read(start, off - start);
    // the first chunk with bytes in this block: where a cut during the rewrite resumes
    const first = Math.floor(start / cs);
    this.#store.setNextChunk(target, first);
    for (let b = start / bs; b * bs < end; b++) slot.erase(b);
    if (keep.length) slot.write(start, keep);
    if (!equalBytes(slot.read(start, keep.length), keep)) {
      this.stats.rewound += next - first;
      return first;
    }
    this.#store.setNextChunk(target, next);
    return next;
  }

  async #requestChunk(target: OtaRecord, chunk: number): Promise<Uint8Array | undefined> {
    this.stats.requests++;
    const bytes = await this.#tb!.requestFirmwareChunk({
      title: target.title,
      version: target.version,
      chunk,
      size: target.chunkSize,
      timeoutMs: this.#o.responseTimeoutMs ?? 5000,
      ...(this.#o.confirmable ? { confirmable: true } : {}),
      ...(this.#o.queryTitle ? { queryTitle: true } : {}),
    });
    if (!bytes) this.stats.timeouts++;
    return bytes;
  }

  /** The checksum over the slot's first `size` bytes, read back chunk by chunk (what will boot is what is checked). */
  async #digest(target: OtaTarget): Promise<string> {
    const h = this.#o.hash?.(target.algorithm) ?? createChecksum(target.algorithm);
    const slot = this.#slots.update;
    const step = slot.blockSize;
    for (let off = 0; off < target.size; off += step) {
      h.update(slot.read(off, Math.min(step, target.size - off)));
      // let the network and the timers run between blocks
      if ((off / step) % 16 === 15) await this.#sleep(0);
    }
    return h.digestHex();
  }

  /**
   * Sends fw_state (with fw_error / current_fw_*); true when the server confirmed it. One the server
   * did not confirm (offline, 3 tries) is kept in flash with its ts (`persist`, the default) and
   * sent again after the next connect, before newer ones: the history survives outages and reboots.
   */
  async #report(state: FwState, title: string, version: string, error?: string, extra?: TbObject, persist = true): Promise<boolean> {
    this.onEvent?.({ type: 'state', state, title, version, ...(error !== undefined ? { error } : {}) });
    const values: { [k: string]: string } = { fw_state: state };
    for (const k in extra ?? {}) values[k] = String(extra![k]);
    if (error !== undefined) values.fw_error = error;
    // The device's own, strictly increasing timestamp: states sent within one millisecond (DOWNLOADED
    // then VERIFIED) would otherwise share the server's arrival ts, and ThingsBoard's ts_kv keeps one.
    const ts = Math.max(this.#o.clock.epochMs(), this.#lastStateTs + 1);
    this.#lastStateTs = ts;
    const entry: PendingState = { ts, values };
    const tb = this.#tb;
    if (tb && !tb.stopped) {
      await this.#flushPending();
      if (await this.#send(entry)) return true;
    }
    if (persist) this.#keepPending(entry);
    return false;
  }

  /** One fw_state report, 3 tries. */
  async #send(entry: PendingState): Promise<boolean> {
    const tb = this.#tb;
    for (let attempt = 0; attempt < 3 && tb && !tb.stopped && !this.#stopped; attempt++) {
      try {
        await tb.sendTelemetry({ ts: entry.ts, values: entry.values as { [k: string]: TbValue } });
        return true;
      } catch (e) {
        this.#o.log.warn(`fw_state ${entry.values.fw_state} not delivered: ${(e as Error).message}`);
      }
    }
    return false;
  }

  #keepPending(entry: PendingState): void {
    const store = this.#storeRef;
    if (!store) return;
    try {
      const list = store.pendingStates().filter((p) => p.ts !== entry.ts);
      list.push(entry);
      const dropped = store.setPendingStates(list);
      this.#o.log.info(`fw_state ${entry.values.fw_state} kept in flash, sent after the next connect${dropped ? ` (${dropped} older dropped)` : ''}`);
    } catch (e) {
      this.#o.log.warn(`fw_state ${entry.values.fw_state} could not be kept in flash: ${(e as Error).message}`);
    }
  }

  /** Sends the kept fw_state reports, oldest first; stops at the first that is not confirmed. */
  async #flushPending(): Promise<void> {
    const store = this.#storeRef;
    if (!store || this.#flushing) return;
    this.#flushing = true;
    try {
      for (let i = 0; i < 16; i++) {
        const first = store.pendingStates()[0];
        if (!first || !(await this.#send(first))) return;
        // Re-read: a report may have been kept while this one was in flight.
        store.setPendingStates(store.pendingStates().filter((p) => p.ts !== first.ts));
        this.#lastStateTs = Math.max(this.#lastStateTs, first.ts);
      }
    } catch (e) {
      this.#o.log.warn(`fw_state: kept reports: ${(e as Error).message}`);
    } finally {
      this.#flushing = false;
    }
  }

  #restart(reason: string): void {
    this.onEvent?.({ type: 'restart', reason });
    this.#slots.restart();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.#o.clock.setTimer(() => {
        this.#timers.delete(t);
        resolve();
      }, Math.max(0, ms));
      this.#timers.add(t);
    });
  }
}

function isBlank(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0xff) return false;
  return true;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
