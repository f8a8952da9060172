// A thin message layer between a datagram socket and node-coap's server, filling two gaps of
// node-coap 1.5 that Californium (ThingsBoard's CoAP stack) does not have:
//
// 1. Deduplication (MARK_AND_SWEEP, peer + MID, EXCHANGE_LIFETIME). node-coap only replays cached
//    piggybacked responses, and only on a real dgram.Socket. Here a duplicate CON request gets the
//    ACK that was sent for it again (piggybacked response or empty ACK), or an empty ACK if nothing
//    was sent yet; it never reaches the handler twice.
// 2. Block1 reassembly keyed by (peer, method, URI, Request-Tag) instead of the token: RFC 7959 lets
//    a client use a new token per block (libcoap does), which node-coap's token-keyed cache rejects.
//    Intermediate blocks are answered with 2.31 Continue; the complete body is handed to node-coap as
//    one request carrying the last block's MID and token. Out-of-order blocks get 4.08, bodies above
//    maxBodySize get 4.13 (Californium's codes).
//
// It is socket-shaped (EventEmitter + send(buf, offset, length, port, address, cb)), so node-coap
// listens on it as on any external socket, and a DTLS transport can be wrapped the same way.

import { EventEmitter } from 'node:events';
import { generate, parse } from 'coap-packet';
import type { ParsedPacket } from 'coap-packet';

export interface DatagramLike extends EventEmitter {
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void;
}

interface Rinfo { address: string; port: number; family?: string; size?: number }

const EXCHANGE_LIFETIME_MS = 247_000;
const BLOCKWISE_STATUS_LIFETIME_MS = 300_000;
const MAX_DEDUP_ENTRIES = 20_000;
const MAX_TRANSFERS = 1_000;
const REQUEST_TAG = 292;

interface Seen { ts: number; reply?: Buffer }
interface Transfer { ts: number; chunks: Buffer[]; size: number; szx: number }

export class MessageLayer extends EventEmitter implements DatagramLike {
  private seen = new Map<string, Seen>();
  private transfers = new Map<string, Transfer>();

  constructor(readonly inner: DatagramLike, readonly opts: { maxBodySize?: number } = {}) {
    super();
    inner.on('message', (msg: Buffer, rinfo: Rinfo) => this.onMessage(msg, rinfo));
    inner.on('error', (e: Error) => this.emit('error', e));
  }

  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void {
    const msg = offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length);
    // Remember ACKs (piggybacked responses and empty ACKs) so duplicates can be answered alike.
    if (msg.length >= 4 && ((msg[0] >> 4) & 3) === 2) {
      const mid = msg.readUInt16BE(2);
      const s = this.seen.get(`${address}:${port}/${mid}`);
      if (s) s.reply = Buffer.from(msg);
    }
    this.inner.send(msg, 0, msg.length, port, address, cb);
  }

  private raw(msg: Buffer, rinfo: Rinfo): void {
    this.inner.send(msg, 0, msg.length, rinfo.port, rinfo.address);
  }

  private onMessage(msg: Buffer, rinfo: Rinfo): void {
    let p: ParsedPacket;
    try {
      p = parse(msg);
    } catch {
      this.emit('message', msg, rinfo);
      return;
    }
    const isRequest = p.code.startsWith('0.') && p.code !== '0.00';
    if (!isRequest) {
      this.emit('message', msg, rinfo);
      return;
    }
    const peer = `${rinfo.address}:${rinfo.port}`;
    if (p.confirmable) {
      const key = `${peer}/${p.messageId}`;
      const now = Date.now();
      const s = this.seen.get(key);
      if (s && now - s.ts < EXCHANGE_LIFETIME_MS) {
        const reply = s.reply ?? generate({ messageId: p.messageId, code: '0.00', confirmable: false, ack: true, reset: false, options: [], token: Buffer.alloc(0) });
        s.reply = reply;
        this.raw(reply, rinfo);
        return;
      }
      this.seen.set(key, { ts: now });
      this.prune(now);
    }
    const block1 = p.options.find((o) => o.name === 'Block1');
    if (!block1) {
      this.emit('message', msg, rinfo);
      return;
    }
    this.block1(p, block1.value, rinfo, peer);
  }

  private block1(p: ParsedPacket, value: Buffer, rinfo: Rinfo, peer: string): void {
    let v = 0;
    for (const b of value) v = v * 256 + b;
    const szx = v & 7;
    const more = (v >> 3) & 1;
    const num = Math.floor(v / 16);
    if (szx === 7) return this.answer(p, rinfo, '4.00');
    const size = 1 << (szx + 4);
    const uri = p.options.filter((o) => o.name === 'Uri-Path' || o.name === 'Uri-Query').map((o) => `${String(o.name)}=${o.value.toString('hex')}`).join('&');
    const tag = p.options.find((o) => o.name === REQUEST_TAG)?.value.toString('hex') ?? '';
    const key = `${peer}|${p.code}|${uri}|${tag}`;
    const now = Date.now();
    let t = this.transfers.get(key);
    if (num === 0) {
      t = { ts: now, chunks: [], size: 0, szx };
      this.transfers.delete(key);
      this.transfers.set(key, t);
      if (this.transfers.size > MAX_TRANSFERS) this.transfers.delete(this.transfers.keys().next().value as string);
    }
    if (!t || t.size !== num * size) {
      this.transfers.delete(key);
      return this.answer(p, rinfo, '4.08'); // Request Entity Incomplete
    }
    t.ts = now;
    t.chunks.push(p.payload);
    t.size += p.payload.length;
    if (t.size > (this.opts.maxBodySize ?? 16 * 1024 * 1024)) {
      this.transfers.delete(key);
      return this.answer(p, rinfo, '4.13');
    }
    if (more) {
      return this.answer(p, rinfo, '2.31', [{ name: 'Block1', value: Buffer.from(value) }]);
    }
    this.transfers.delete(key);
    const whole = generate({
      messageId: p.messageId, token: p.token, code: p.code, confirmable: p.confirmable, ack: false, reset: false,
      options: p.options.filter((o) => o.name !== 'Block1' && o.name !== 'Size1' && o.name !== REQUEST_TAG) as { name: 'Uri-Path'; value: Buffer }[],
      payload: Buffer.concat(t.chunks),
    }, Number.MAX_SAFE_INTEGER);
    this.emit('message', whole, rinfo);
  }

  private answer(p: ParsedPacket, rinfo: Rinfo, code: string, options: { name: 'Block1'; value: Buffer }[] = []): void {
    const reply = generate({
      messageId: p.confirmable ? p.messageId : undefined, token: p.token, code,
      confirmable: false, ack: p.confirmable, reset: false, options,
    });
    const s = this.seen.get(`${rinfo.address}:${rinfo.port}/${p.messageId}`);
    if (s && p.confirmable) s.reply = reply;
    this.raw(reply, rinfo);
  }

  private prune(now: number): void {
    if (this.seen.size > MAX_DEDUP_ENTRIES) {
      for (const [k, s] of this.seen) {
        if (now - s.ts > EXCHANGE_LIFETIME_MS || this.seen.size > MAX_DEDUP_ENTRIES) this.seen.delete(k);
        else break;
      }
    }
    for (const [k, t] of this.transfers) if (now - t.ts > BLOCKWISE_STATUS_LIFETIME_MS) this.transfers.delete(k);
  }
}
