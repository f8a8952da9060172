// A thin message layer between a datagram socket and node-coap's server, filling gaps of
// node-coap 1.5 that Californium (ThingsBoard's CoAP stack) does not have, and bounding the state
// that any peer on the network can make the endpoint hold:
//
// 1. Deduplication (MARK_AND_SWEEP, peer + MID, EXCHANGE_LIFETIME). node-coap only replays cached
//    piggybacked responses, and only on a real dgram.Socket. Here a duplicate CON request gets the
//    ACK that was sent for it again (piggybacked response or empty ACK), or an empty ACK if nothing
//    was sent yet; it never reaches the handler twice. Bounded per peer and in total.
// 2. Block1 reassembly keyed by (peer, method, URI, Request-Tag) instead of the token: RFC 7959 lets
//    a client use a new token per block (libcoap does), which node-coap's token-keyed cache rejects.
//    Every block is AUTHENTICATED FIRST (`authorize`): a request that would be refused (unknown
//    token, wrong path) gets that answer at once and nothing is stored. Intermediate blocks are
//    answered with 2.31 Continue; the complete body is handed to node-coap as one request carrying
//    the last block's MID and token. Out-of-order blocks get 4.08; a body above maxBodySize, or one
//    that would take the reassembly buffers above their total, gets 4.13. Transfers are bounded per
//    peer (the peer's oldest is dropped) and in total.
// 3. Retransmission state. node-coap keeps every response it sends (LRU entry, retransmission
//    timers, the response object) for up to EXCHANGE_LIFETIME (247 s), and retransmits a CON
//    response 4 times. Responses that are never retransmitted (ACK, RST, NON without Observe) are
//    released at once; CON responses and NON notifications (an RST to one cancels the observation)
//    are kept, at most `maxOutstandingPerPeer` per peer and `maxOutstanding` in total: beyond that
//    the oldest stops being retransmitted and is released.
// 4. Small request fixes before node-coap sees the request: datagrams that are not CoAP are dropped;
//    FETCH without Content-Format (node-coap would answer nothing, ThingsBoard answers it: 4.05 on
//    /api/v1) gets Content-Format 0 so the handler answers it; an Observe option on a method other
//    than GET/FETCH is dropped (an elective option Californium ignores there; node-coap would
//    answer nothing).
//
// It is socket-shaped (EventEmitter + send(buf, offset, length, port, address, cb)), so node-coap
// listens on it as on any external socket, and a DTLS transport can be wrapped the same way.

import { EventEmitter } from 'node:events';
import { generate, parse } from 'coap-packet';
import type { ParsedPacket } from 'coap-packet';

export interface DatagramLike extends EventEmitter {
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void;
}

export interface Rinfo { address: string; port: number; family?: string; size?: number }

/** The node-coap server internals this layer manages (its response LRU). */
interface CoapServerInternals { _lru?: { delete(key: string): boolean; size: number }; _block2Cache?: { _cache?: Map<string, unknown> } }

export const EXCHANGE_LIFETIME_MS = 247_000;
const BLOCKWISE_STATUS_LIFETIME_MS = 300_000;
/** Request-Tag (RFC 9175); coap-packet names unknown options by their number as a string. */
const REQUEST_TAG = '292';

export interface MessageLayerLimits {
  /** Largest reassembled Block1 body (default 1 MiB; Californium's is 256 MiB). */
  maxBodySize: number;
  /** Bytes held by all Block1 transfers together (default 8 MiB). */
  maxTransferBytes: number;
  maxTransfers: number;
  maxTransfersPerPeer: number;
  /** Remembered CON request MIDs (dedup). */
  maxSeen: number;
  maxSeenPerPeer: number;
  /** CON responses / NON notifications whose retransmission state is kept. */
  maxOutstanding: number;
  maxOutstandingPerPeer: number;
}

export const DEFAULT_LIMITS: Readonly<MessageLayerLimits> = Object.freeze({
  maxBodySize: 1024 * 1024,
  maxTransferBytes: 8 * 1024 * 1024,
  maxTransfers: 256,
  maxTransfersPerPeer: 4,
  maxSeen: 20_000,
  maxSeenPerPeer: 1_000,
  maxOutstanding: 2_048,
  maxOutstandingPerPeer: 16,
});

export interface MessageLayerOptions extends Partial<MessageLayerLimits> {
  /**
   * Decides before a Block1 body is stored whether the request would be served: null to go on, or
   * the response code it gets ('4.01', '4.04', ...).
   */
  authorize?: (p: ParsedPacket, rinfo: Rinfo) => string | null;
  /** Milliseconds clock (tests drive it). Default Date.now. */
  now?: () => number;
}

export interface MessageLayerState {
  seen: number;
  seenPeers: number;
  transfers: number;
  transferBytes: number;
  outstanding: number;
  /** node-coap's response LRU entries (each with a RetrySend and its timers). */
  coapLru: number;
  /** node-coap's cached bodies of block-wise responses. */
  coapBlock2Cache: number;
  dropped: { notCoap: number; unauthorizedBlocks: number; evictedOutstanding: number; evictedTransfers: number; tooLarge: number };
}

interface Seen { ts: number; reply?: Buffer }
interface Transfer { peer: string; ts: number; chunks: Buffer[]; size: number; szx: number }
interface Outstanding { peer: string; lruKey: string; ts: number }

function uint(value: Buffer): number {
  let v = 0;
  for (const b of value) v = v * 256 + b;
  return v;
}

export class MessageLayer extends EventEmitter implements DatagramLike {
  readonly limits: MessageLayerLimits;
  /** peer -> (MID -> seen), both in insertion (= age) order. */
  private seen = new Map<string, Map<number, Seen>>();
  private seenCount = 0;
  private transfers = new Map<string, Transfer>();
  private transferBytes = 0;
  /** `${peer}/${mid}` -> outstanding, oldest first. */
  private outstanding = new Map<string, Outstanding>();
  private outstandingPerPeer = new Map<string, number>();
  private release: string[] = [];
  private releaseScheduled = false;
  private server: CoapServerInternals | undefined;
  private readonly now: () => number;
  private readonly dropped = { notCoap: 0, unauthorizedBlocks: 0, evictedOutstanding: 0, evictedTransfers: 0, tooLarge: 0 };

  constructor(readonly inner: DatagramLike, readonly opts: MessageLayerOptions = {}) {
    super();
    this.limits = { ...DEFAULT_LIMITS };
    for (const k of Object.keys(DEFAULT_LIMITS) as (keyof MessageLayerLimits)[]) {
      if (typeof opts[k] === 'number') this.limits[k] = opts[k]!;
    }
    this.now = opts.now ?? Date.now;
    // After close() nothing reaches the node-coap server: a request it accepted then would get a
    // response whose piggyback timer sends through its closed (null) socket and throws from a timer.
    inner.on('message', (msg: Buffer, rinfo: Rinfo) => {
      if (!this.closed) this.onMessage(msg, rinfo);
    });
    inner.on('error', (e: Error) => this.emit('error', e));
  }

  /** The node-coap server listening on this layer, so its per-response state can be released. */
  attachServer(server: unknown): void {
    this.server = server as CoapServerInternals;
  }

  state(): MessageLayerState {
    return {
      seen: this.seenCount, seenPeers: this.seen.size, transfers: this.transfers.size, transferBytes: this.transferBytes,
      outstanding: this.outstanding.size, coapLru: this.server?._lru?.size ?? 0,
      coapBlock2Cache: this.server?._block2Cache?._cache?.size ?? 0, dropped: { ...this.dropped },
    };
  }

  // ------------------------------------------------------------------ outgoing

  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void {
    const msg = offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length);
    if (msg.length >= 4) this.track(msg, `${address}:${port}`);
    this.inner.send(msg, 0, msg.length, port, address, cb);
  }

  /** Bookkeeping for a datagram node-coap sends (see 3. above); keys are node-coap's LRU keys. */
  private track(msg: Buffer, peer: string): void {
    const type = (msg[0] >> 4) & 3;
    const mid = msg.readUInt16BE(2);
    const tkl = msg[0] & 0x0f;
    const token = msg.subarray(4, 4 + Math.min(tkl, 8)).toString('hex');
    if (type === 2) {
      // Remember ACKs (piggybacked responses and empty ACKs) so duplicates can be answered alike.
      const s = this.seen.get(peer)?.get(mid);
      if (s) s.reply = Buffer.from(msg);
      this.releaseSoon(`${peer}/${mid}${token}`);
      return;
    }
    if (type === 3) {
      this.releaseSoon(`${peer}/${mid}`);
      return;
    }
    const id = `${peer}/${mid}`;
    if (this.outstanding.has(id)) return; // a retransmission
    if (type === 1 && !hasOption(msg, 6 /* Observe */)) {
      this.releaseSoon(`${peer}/${mid}${token}`);
      return;
    }
    // CON response or NON notification: keep its state, bounded
    const lruKey = type === 0 ? id : `${peer}/${mid}${token}`;
    this.outstanding.set(id, { peer, lruKey, ts: this.now() });
    const n = (this.outstandingPerPeer.get(peer) ?? 0) + 1;
    this.outstandingPerPeer.set(peer, n);
    if (n > this.limits.maxOutstandingPerPeer) {
      for (const [k, o] of this.outstanding) {
        if (o.peer === peer) { this.evictOutstanding(k, o); break; }
      }
    }
    while (this.outstanding.size > this.limits.maxOutstanding) {
      const [k, o] = this.outstanding.entries().next().value as [string, Outstanding];
      this.evictOutstanding(k, o);
    }
  }

  private forgetOutstanding(id: string): Outstanding | undefined {
    const o = this.outstanding.get(id);
    if (!o) return undefined;
    this.outstanding.delete(id);
    const n = (this.outstandingPerPeer.get(o.peer) ?? 1) - 1;
    if (n > 0) this.outstandingPerPeer.set(o.peer, n);
    else this.outstandingPerPeer.delete(o.peer);
    return o;
  }

  private evictOutstanding(id: string, o: Outstanding): void {
    this.forgetOutstanding(id);
    this.dropped.evictedOutstanding++;
    this.releaseSoon(o.lruKey);
  }

  /**
   * Deletes node-coap's LRU entry, whose dispose() stops the RetrySend timers. Deferred: node-coap
   * arms the exchange timer only after the first send returns.
   */
  private releaseSoon(lruKey: string): void {
    if (!this.server?._lru) return;
    this.release.push(lruKey);
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      const keys = this.release.splice(0);
      for (const k of keys) this.server?._lru?.delete(k);
    });
  }

  private raw(msg: Buffer, rinfo: Rinfo): void {
    this.inner.send(msg, 0, msg.length, rinfo.port, rinfo.address);
  }

  // ------------------------------------------------------------------ incoming

  private onMessage(msg: Buffer, rinfo: Rinfo): void {
    let p: ParsedPacket;
    try {
      p = parse(msg);
    } catch {
      this.dropped.notCoap++;
      return;
    }
    const peer = `${rinfo.address}:${rinfo.port}`;
    const now = this.now();
    if (p.ack || p.reset) {
      this.forgetOutstanding(`${peer}/${p.messageId}`);
      this.emit('message', msg, rinfo);
      return;
    }
    const isRequest = p.code.startsWith('0.') && p.code !== '0.00';
    if (!isRequest) {
      this.emit('message', msg, rinfo);
      return;
    }
    if (p.confirmable) {
      const s = this.seen.get(peer)?.get(p.messageId);
      if (s && now - s.ts < EXCHANGE_LIFETIME_MS) {
        const reply = s.reply ?? generate({ messageId: p.messageId, code: '0.00', confirmable: false, ack: true, reset: false, options: [], token: Buffer.alloc(0) });
        s.reply = reply;
        this.raw(reply, rinfo);
        return;
      }
      this.remember(peer, p.messageId, now);
    }
    this.prune(now);
    let rewritten = false;
    if (p.code === '0.05' && !p.options.some((o) => o.name === 'Content-Format')) {
      p.options.push({ name: 'Content-Format', value: Buffer.alloc(0) });
      rewritten = true;
    }
    if (p.code !== '0.01' && p.code !== '0.05' && p.options.some((o) => o.name === 'Observe')) {
      p.options = p.options.filter((o) => o.name !== 'Observe');
      rewritten = true;
    }
    const block1 = p.options.find((o) => o.name === 'Block1');
    if (block1) return this.block1(p, block1.value, rinfo, peer, now);
    this.emit('message', rewritten ? generate(p, Number.MAX_SAFE_INTEGER) : msg, rinfo);
  }

  private remember(peer: string, mid: number, now: number): void {
    let m = this.seen.get(peer);
    if (m) this.seen.delete(peer); // most recently active peer last
    else m = new Map();
    this.seen.set(peer, m);
    if (m.has(mid)) { m.delete(mid); this.seenCount--; }
    m.set(mid, { ts: now });
    this.seenCount++;
    if (m.size > this.limits.maxSeenPerPeer) {
      m.delete(m.keys().next().value as number);
      this.seenCount--;
    }
    while (this.seenCount > this.limits.maxSeen) {
      const [oldPeer, om] = this.seen.entries().next().value as [string, Map<number, Seen>];
      om.delete(om.keys().next().value as number);
      this.seenCount--;
      if (!om.size) this.seen.delete(oldPeer);
    }
  }

  private block1(p: ParsedPacket, value: Buffer, rinfo: Rinfo, peer: string, now: number): void {
    const v = uint(value);
    const szx = v & 7;
    const more = (v >> 3) & 1;
    const num = Math.floor(v / 16);
    if (szx === 7 || value.length > 3) return this.answer(p, rinfo, '4.00');
    const uri = p.options.filter((o) => o.name === 'Uri-Path' || o.name === 'Uri-Query').map((o) => `${String(o.name)}=${o.value.toString('hex')}`).join('&');
    const tag = p.options.find((o) => String(o.name) === REQUEST_TAG)?.value.toString('hex') ?? '';
    const key = `${peer}|${p.code}|${uri}|${tag}`;
    // Authenticate before anything is stored.
    const refused = this.opts.authorize?.(p, rinfo) ?? null;
    if (refused) {
      this.dropTransfer(key);
      this.dropped.unauthorizedBlocks++;
      return this.answer(p, rinfo, refused);
    }
    const size = 1 << (szx + 4);
    let t = this.transfers.get(key);
    if (num === 0) {
      this.dropTransfer(key);
      t = { peer, ts: now, chunks: [], size: 0, szx };
      this.transfers.set(key, t);
      this.boundTransfers(peer, key);
    }
    if (!t || t.size !== num * size) {
      this.dropTransfer(key);
      return this.answer(p, rinfo, '4.08'); // Request Entity Incomplete
    }
    if (t.size + p.payload.length > this.limits.maxBodySize || this.transferBytes + p.payload.length > this.limits.maxTransferBytes) {
      this.dropTransfer(key);
      this.dropped.tooLarge++;
      return this.answer(p, rinfo, '4.13');
    }
    t.ts = now;
    t.chunks.push(p.payload);
    t.size += p.payload.length;
    this.transferBytes += p.payload.length;
    if (more) {
      return this.answer(p, rinfo, '2.31', [{ name: 'Block1', value: Buffer.from(value) }]);
    }
    this.dropTransfer(key);
    const whole = generate({
      messageId: p.messageId, token: p.token, code: p.code, confirmable: p.confirmable, ack: false, reset: false,
      options: p.options.filter((o) => o.name !== 'Block1' && o.name !== 'Size1' && String(o.name) !== REQUEST_TAG) as { name: 'Uri-Path'; value: Buffer }[],
      payload: Buffer.concat(t.chunks),
    }, Number.MAX_SAFE_INTEGER);
    this.emit('message', whole, rinfo);
  }

  /** A new transfer of `peer` was added: keep the peer's and the total count within the limits. */
  private boundTransfers(peer: string, key: string): void {
    let mine = 0;
    for (const t of this.transfers.values()) if (t.peer === peer) mine++;
    for (const [k, t] of this.transfers) {
      if (mine <= this.limits.maxTransfersPerPeer) break;
      if (t.peer === peer && k !== key) { this.dropTransfer(k); this.dropped.evictedTransfers++; mine--; }
    }
    while (this.transfers.size > this.limits.maxTransfers) {
      const k = this.transfers.keys().next().value as string;
      this.dropTransfer(k);
      this.dropped.evictedTransfers++;
    }
  }

  private dropTransfer(key: string): void {
    const t = this.transfers.get(key);
    if (!t) return;
    this.transferBytes -= t.size;
    this.transfers.delete(key);
  }

  private answer(p: ParsedPacket, rinfo: Rinfo, code: string, options: { name: 'Block1'; value: Buffer }[] = []): void {
    const reply = generate({
      messageId: p.confirmable ? p.messageId : undefined, token: p.token, code,
      confirmable: false, ack: p.confirmable, reset: false, options,
    });
    const s = this.seen.get(`${rinfo.address}:${rinfo.port}`)?.get(p.messageId);
    if (s && p.confirmable) s.reply = reply;
    this.raw(reply, rinfo);
  }

  private prune(now: number): void {
    // oldest first in every map: stop at the first young entry
    for (const [peer, m] of this.seen) {
      for (const [mid, s] of m) {
        if (now - s.ts <= EXCHANGE_LIFETIME_MS) break;
        m.delete(mid);
        this.seenCount--;
      }
      if (!m.size) this.seen.delete(peer);
      else break;
    }
    for (const [k, t] of this.transfers) {
      if (now - t.ts > BLOCKWISE_STATUS_LIFETIME_MS) this.dropTransfer(k);
    }
    for (const [id, o] of this.outstanding) {
      if (now - o.ts <= EXCHANGE_LIFETIME_MS) break;
      this.forgetOutstanding(id); // node-coap's own exchange timeout handles (and releases) it
    }
  }

  private closed = false;

  /** Stops everything this layer scheduled, and forwards nothing more. */
  close(): void {
    this.closed = true;
    this.seen.clear();
    this.seenCount = 0;
    this.transfers.clear();
    this.transferBytes = 0;
    this.outstanding.clear();
    this.outstandingPerPeer.clear();
  }
}

/** Whether a datagram carries option `number` (walks the option headers; malformed -> false). */
function hasOption(msg: Buffer, number: number): boolean {
  let p = 4 + (msg[0] & 0x0f);
  let n = 0;
  while (p < msg.length) {
    const b = msg[p++];
    if (b === 0xff) return false;
    let delta = b >> 4;
    let len = b & 15;
    if (delta === 13) delta = msg[p++] + 13;
    else if (delta === 14) { delta = msg.readUInt16BE(p) + 269; p += 2; }
    if (len === 13) len = msg[p++] + 13;
    else if (len === 14) { len = msg.readUInt16BE(p) + 269; p += 2; }
    if (delta === 15 || len === 15) return false;
    n += delta;
    if (n === number) return true;
    if (n > number) return false;
    p += len;
  }
  return false;
}
