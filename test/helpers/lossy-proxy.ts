/*
 * A lossy TCP proxy for MQTT tests, on 127.0.0.1: it forwards each connection to the target and,
 * seeded, cuts connections at MQTT packet boundaries or in the middle of a packet (TCP itself
 * never drops bytes: a lost segment on a real network ends as a dead connection), and stalls
 * packets for a while. Bounded: at most `maxCuts` cuts (then it is transparent) and stalls of at
 * most `maxStallMs`. It frames the MQTT stream itself (fixed header + Remaining Length) only to
 * pick the cut points and to count what crosses it (PUBLISH with DUP from the client).
 */
import * as net from 'node:net';

export interface LossyProxyOptions {
  targetPort: number;
  targetHost?: string;
  seed: number;
  /** Cuts in all, at most. Default 8. */
  maxCuts?: number;
  /** A connection is cut after 1..cutWithin packets (both directions counted). Default 20. */
  cutWithin?: number;
  /** Share of cuts made inside a packet (a prefix of it forwarded first). Default 0.5. */
  midPacket?: number;
  /** Chance that a packet is held back before it is forwarded. Default 0. */
  stallChance?: number;
  maxStallMs?: number;
}

export interface ProxyStats {
  connections: number;
  cuts: number;
  cutsMidPacket: number;
  stalls: number;
  /** PUBLISH packets from the client with the DUP flag (QoS 1 retransmissions). */
  dupPublishes: number;
  publishesUp: number;
  packetsUp: number;
  packetsDown: number;
}

/** mulberry32: small, seeded, reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Length of the first whole MQTT packet in buf, or 0 when it is not complete yet. */
function frameLength(buf: Buffer): number {
  let len = 0;
  let mult = 1;
  for (let i = 1; i < 5; i++) {
    if (i >= buf.length) return 0;
    const b = buf[i]!;
    len += (b & 0x7f) * mult;
    mult *= 128;
    if (!(b & 0x80)) return buf.length >= i + 1 + len ? i + 1 + len : 0;
  }
  throw new Error('malformed Remaining Length');
}

export class LossyProxy {
  readonly stats: ProxyStats = { connections: 0, cuts: 0, cutsMidPacket: 0, stalls: 0, dupPublishes: 0, publishesUp: 0, packetsUp: 0, packetsDown: 0 };
  port = 0;
  /** false: forward everything untouched from now on. */
  lossy = true;
  #hold: { promise: Promise<void>; release: () => void } | undefined;

  /** Holds everything the server sends (a stalled path) until release(). */
  holdDown(): void {
    if (this.#hold) return;
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.#hold = { promise, release };
  }

  release(): void {
    const h = this.#hold;
    this.#hold = undefined;
    h?.release();
  }
  readonly #o: Required<LossyProxyOptions>;
  readonly #rand: () => number;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(options: LossyProxyOptions) {
    this.#o = { targetHost: '127.0.0.1', maxCuts: 8, cutWithin: 20, midPacket: 0.5, stallChance: 0, maxStallMs: 0, ...options };
    this.#rand = seeded(options.seed);
    this.#server = net.createServer((client) => this.#accept(client));
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    this.stats.connections++;
    const upstream = net.connect(this.#o.targetPort, this.#o.targetHost);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => this.#sockets.delete(s));
    }
    let dead = false;
    const kill = () => {
      dead = true;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', kill);
    // This connection's fate: cut after this many packets, if cuts are left.
    let remaining = this.stats.cuts < this.#o.maxCuts ? 1 + Math.floor(this.#rand() * this.#o.cutWithin) : Infinity;
    const pipe = (from: net.Socket, to: net.Socket, up: boolean) => {
      let buf: Buffer = Buffer.alloc(0);
      /** Writes queued behind a stall keep their order. */
      let chain = Promise.resolve();
      from.on('data', (d: Buffer) => {
        if (dead) return;
        if (!up && this.#hold) {
          const held = this.#hold.promise;
          chain = chain.then(() => held);
        }
        if (!this.lossy) {
          chain = chain.then(() => {
            if (!dead) to.write(d);
          });
          return;
        }
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        for (;;) {
          const n = frameLength(buf);
          if (!n) break;
          const frame = buf.subarray(0, n);
          buf = buf.subarray(n);
          if (up) {
            this.stats.packetsUp++;
            if (frame[0]! >> 4 === 3) {
              this.stats.publishesUp++;
              if (frame[0]! & 0x08) this.stats.dupPublishes++;
            }
          } else this.stats.packetsDown++;
          if (--remaining <= 0 && this.lossy && this.stats.cuts < this.#o.maxCuts) {
            this.stats.cuts++;
            const mid = this.#rand() < this.#o.midPacket && frame.length > 1;
            const prefix = mid ? frame.subarray(0, 1 + Math.floor(this.#rand() * (frame.length - 1))) : undefined;
            if (mid) this.stats.cutsMidPacket++;
            chain = chain.then(() => {
              if (prefix && !dead) to.write(prefix);
              // let the prefix reach the peer before the cut
              return new Promise<void>((resolve) => setImmediate(resolve));
            }).then(kill);
            return;
          }
          const stall = this.#o.stallChance > 0 && this.#rand() < this.#o.stallChance ? Math.floor(this.#rand() * this.#o.maxStallMs) : 0;
          if (stall) this.stats.stalls++;
          chain = chain.then(
            () =>
              new Promise<void>((resolve) => {
                const go = () => {
                  if (!dead) to.write(frame);
                  resolve();
                };
                if (!stall) return go();
                const t = setTimeout(() => {
                  this.#timers.delete(t);
                  go();
                }, stall);
                this.#timers.add(t);
              }),
          );
        }
      });
    };
    pipe(client, upstream, true);
    pipe(upstream, client, false);
  }
}
