/*
 * Node side of the DTLS binding: loads build/Release/dtls.node (built by `npm install` / `npm rebuild`
 * from binding.gyp) and provides DtlsServer, a dgram.Socket look-alike that terminates DTLS for many
 * peers on one UDP port (one server endpoint per peer address), for the local ThingsBoard endpoint.
 * All endpoints share one DtlsContext: certificates, cookie key, ticket key and the session-ID cache.
 * A ClientHello is checked statelessly against that cookie key (DtlsContext.checkClientHello) before
 * any endpoint exists: a cookie-less one gets its HelloVerifyRequest from the context, so floods of
 * spoofed ClientHellos allocate nothing.
 */
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type {
  DtlsAuthMode,
  DtlsEngine,
  DtlsEngineFactory,
  DtlsEngineOptions,
  DtlsError,
} from '../../src/dtls/engine';

export type ClientHelloVerdict = 'drop' | 'verify' | 'accept' | 'resume';

export interface NativeDtlsContext {
  readonly role: 'client' | 'server';
  /**
   * Server: a stateless look at a datagram from clientId (the peer's address) before any endpoint
   * exists for it. 'drop': not a well-formed ClientHello; 'verify': no valid cookie, send `reply`
   * (a HelloVerifyRequest) and keep nothing; 'accept': valid cookie (or cookies off): create an
   * endpoint and feed it the datagram; 'resume': no cookie, but allowResume and its session ID is in
   * the session cache: create an endpoint, allowResumeWithoutCookie(true), feed it.
   */
  checkClientHello(datagram: Uint8Array, clientId: string | Uint8Array, allowResume?: boolean): {
    verdict: ClientHelloVerdict;
    reply: Buffer | null;
  };
}

export interface NativeDtlsEndpoint extends DtlsEngine {
  /** Alias of step(). */
  handshake(): number;
  read(): Buffer | null;
  saveSession(): Buffer | null;
  saveContext(): Buffer | null;
  readonly restored: boolean;
  peerCertificate(): Buffer | null;
  readonly error: DtlsError | null;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly cidInUse: boolean;
  readonly ciphersuite: string;
  /** Server: accept the first ClientHello without a cookie if it resumes a session in the cache. */
  allowResumeWithoutCookie(allow: boolean): void;
  /** Server: this handshake skipped the HelloVerifyRequest (the peer's address is not verified). */
  readonly peerUnverified: boolean;
  /** Server: cookie-less resumptions that turned into full handshakes and were restarted with a HelloVerifyRequest. */
  readonly cookieFallbacks: number;
  /** Datagrams (or parts of them) discarded as invalid or unexpected without ending the session. */
  readonly discarded: number;
  /** While handshaking: sends our last flight again at once (the timer restarts, not doubled). */
  resendFlight(): number;
}

export interface NativeEndpointOptions extends Partial<DtlsEngineOptions> {
  /** Shares certificates, cookie and session-ticket keys between endpoints (server: required for resumption). */
  context?: NativeDtlsContext;
  /** Server: the peer's transport address (cookie binding), e.g. "127.0.0.1:5000". */
  clientId?: Uint8Array | string;
}

export interface DtlsAddon {
  DtlsContext: new (options: DtlsEngineOptions) => NativeDtlsContext;
  DtlsEndpoint: new (options: NativeEndpointOptions) => NativeDtlsEndpoint;
  cidAvailable: boolean;
  /** MBEDTLS_SSL_CONTEXT_SERIALIZATION compiled in: saveContext() / restore work. */
  contextAvailable: boolean;
  mbedtlsVersion: string;
}

export interface DtlsEngineModule extends DtlsAddon {
  /** DtlsEngineFactory for src/dtls DtlsDatagram. */
  create: DtlsEngineFactory;
  path: string;
}

let cached: DtlsEngineModule | undefined;

/** Loads the N-API addon. Throws a clear error when it has not been built. */
export function loadDtlsEngine(): DtlsEngineModule {
  if (cached) return cached;
  const candidates = [
    resolve(__dirname, '../../build/Release/dtls.node'),
    resolve(__dirname, '../../build/Debug/dtls.node'),
    join(process.cwd(), 'build/Release/dtls.node'),
  ];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      'DTLS addon not built: build/Release/dtls.node is missing. Install libmbedtls-dev (apt) and run ' +
        '`npm install` or `npm rebuild` at the repository root (binding.gyp).',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(path) as DtlsAddon;
  cached = {
    ...addon,
    DtlsContext: addon.DtlsContext,
    DtlsEndpoint: addon.DtlsEndpoint,
    path,
    create: (options) => new addon.DtlsEndpoint(options) as DtlsEngine,
  };
  return cached;
}

export interface DtlsServerOptions {
  cert?: Uint8Array | string;
  key?: Uint8Array | string;
  /** CA for client certificates (needed with authMode optional/required). */
  ca?: Uint8Array | string;
  authMode?: DtlsAuthMode;
  psk?: Uint8Array | string;
  pskIdentity?: string;
  mtu?: number;
  retransmitMs?: number;
  retransmitMaxMs?: number;
  /** Forget peers idle this long (ms, default 10 min; handshaking peers: 30 s). */
  idleMs?: number;
  /** At most this many peers (default 1000); new handshakes beyond are ignored. */
  maxPeers?: number;
  /** Issue session tickets to clients that ask (default true). Session-ID resumption works either way. */
  tickets?: boolean;
  /** Session-ID cache entries, shared by all peers whatever their address (default 256; 0 = off). */
  sessionCacheSize?: number;
  /** Lifetime of cached sessions and tickets, seconds (default 86400 = 24 h). */
  sessionTimeout?: number;
  /** HelloVerifyRequest cookies (default true, like ThingsBoard). */
  cookies?: boolean;
  /**
   * Like Californium/Scandium's DTLS_VERIFY_PEERS_ON_RESUMPTION_THRESHOLD (ThingsBoard's DTLS server):
   * percent of maxPeers (default 30). While fewer than (maxPeers * percent + 50) / 100 handshakes with an
   * unverified peer are running, a new peer's ClientHello that resumes a session in the server's cache
   * is answered at once (abbreviated handshake, no HelloVerifyRequest round trip). Full handshakes, and
   * resumptions that fall back to a full handshake, always get the HelloVerifyRequest.
   * 0 = always HelloVerifyRequest. No effect with cookies: false.
   */
  verifyPeersOnResumptionThreshold?: number;
}

export interface DtlsPeerInfo {
  address: string;
  port: number;
  resumed: boolean;
  ciphersuite: string;
  /** DER of the client's certificate (mutual DTLS), or null. */
  peerCertificate: Buffer | null;
}

interface Peer {
  key: string;
  rinfo: dgram.RemoteInfo;
  ep: NativeDtlsEndpoint;
  timer: NodeJS.Timeout | null;
  timerGen: number;
  lastSeen: number;
  peerCert: Buffer | null;
  /** The ClientHello this endpoint was created for: a retransmission of it goes to this endpoint. */
  hello: Buffer;
  /**
   * A new handshake from the same address, running beside this endpoint (whose session stays up):
   * it replaces this one when it completes, and is dropped if it fails. A replayed or forged
   * ClientHello therefore never ends a session; only the peer's new verified handshake does.
   */
  next: Peer | null;
  /** Set on a `next` endpoint: the one it will replace. */
  parent: Peer | null;
  /** Flights resent because the peer sent application data before this handshake completed. */
  earlyResends: number;
}

/** Early resends of a handshake's flight (see #onRaw), per handshake. */
const MAX_EARLY_RESENDS = 8;

/**
 * DTLS server on one UDP socket. Events:
 *   'listening'
 *   'message' (plaintext: Buffer, rinfo)          decrypted application datagram
 *   'session' (info: DtlsPeerInfo)                handshake completed with a peer
 *   'handshakeError' (err: DtlsError, rinfo)      a peer's handshake failed
 *   'sendError' (err, {address, port})            send() without callback to a peer with no session
 *   'error' (err)                                  socket error
 *   'close'
 * It is a dgram.Socket subclass (its own handle never binds; the real socket is private) so that
 * libraries testing `instanceof dgram.Socket` (the `coap` server's response cache) treat it as one.
 */
export class DtlsServer extends dgram.Socket {
  readonly peers = new Map<string, Peer>();
  /** Counters for tests: application datagrams delivered and handshakes completed. */
  readonly stats = {
    messages: 0,
    handshakes: 0,
    resumed: 0,
    failures: 0,
    datagramsIn: 0,
    bytesIn: 0,
    bytesOut: 0,
    /** HelloVerifyRequests sent (seen in the outgoing datagrams). */
    helloVerifyRequests: 0,
    /** Resumptions started without a HelloVerifyRequest (unverified peer address). */
    resumptionsWithoutCookie: 0,
    /** Cookie-less resumptions that mbedTLS turned into a full handshake: restarted with a HelloVerifyRequest. */
    resumptionFallbacks: 0,
    /** Datagrams from addresses without an endpoint that were not a well-formed ClientHello (nothing allocated). */
    dropped: 0,
    /** Handshake flights resent at once because the peer sent application data before our handshake with it completed (its last flight was lost). */
    earlyResends: 0,
  };
  #raw: dgram.Socket;
  #ctx: NativeDtlsContext;
  #addon: DtlsEngineModule;
  #opt: DtlsServerOptions;
  #sweep: NodeJS.Timeout | null = null;
  #closed = false;
  /** Handshakes running with an unverified peer address (bounded by the resumption threshold). */
  readonly #unverified = new Set<Peer>();
  readonly #unverifiedMax: number;

  constructor(options: DtlsServerOptions) {
    // @ts-expect-error: @types/node hides dgram.Socket's constructor (type | options, listener)
    super({ type: 'udp4' });
    this.#opt = options;
    this.#addon = loadDtlsEngine();
    this.#ctx = new this.#addon.DtlsContext({
      role: 'server',
      cert: options.cert,
      key: options.key,
      ca: options.ca,
      authMode: options.authMode,
      psk: options.psk,
      pskIdentity: options.pskIdentity,
      retransmitMs: options.retransmitMs,
      retransmitMaxMs: options.retransmitMaxMs,
      tickets: options.tickets,
      sessionCacheSize: options.sessionCacheSize,
      sessionTimeout: options.sessionTimeout,
      cookies: options.cookies,
    });
    const pct = options.verifyPeersOnResumptionThreshold ?? 30;
    if (!Number.isFinite(pct) || pct < 0 || pct > 100) {
      throw new RangeError('verifyPeersOnResumptionThreshold: a percentage of maxPeers, 0..100');
    }
    // Scandium: (maxConnections * percent + 50) / 100 in integer arithmetic
    this.#unverifiedMax = options.cookies === false ? 0 : Math.floor(((options.maxPeers ?? 1000) * pct + 50) / 100);
    this.#raw = dgram.createSocket('udp4');
    this.#raw.on('message', (msg, rinfo) => this.#onRaw(msg, rinfo));
    this.#raw.on('error', (err) => this.emit('error', err));
  }

  /** Binds the UDP socket (default 127.0.0.1, port 0 = any). Resolves with the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolvePromise, reject) => {
      const onError = (err: Error) => reject(err);
      this.#raw.once('error', onError);
      this.#raw.bind(port, host, () => {
        this.#raw.off('error', onError);
        this.#sweep = setInterval(() => this.#expire(), 5000);
        this.#sweep.unref();
        this.emit('listening');
        resolvePromise(this.#raw.address());
      });
    });
  }

  override address(): AddressInfo {
    return this.#raw.address();
  }

  /** The client certificate (DER) of the session with address:port, or null. */
  peerCertificate(address: string, port: number): Buffer | null {
    return this.peers.get(`${address}:${port}`)?.peerCert ?? null;
  }

  /** Ends the session with address:port (sends close_notify); the peer must handshake again. */
  closePeer(address: string, port: number): boolean {
    const peer = this.peers.get(`${address}:${port}`);
    if (!peer) return false;
    if (peer.next) this.#drop(peer.next, false);
    this.#drop(peer, true);
    return true;
  }

  /**
   * Sends plaintext to a connected peer. Accepts `send(buf, peer)` with peer {address, port} and the
   * dgram.Socket forms `send(buf, offset, length, port, address?, cb?)` and `send(buf, port, address?, cb?)`.
   * A send to a peer without a session calls cb(err) or emits 'sendError' (never 'error', which
   * would take down a CoAP server that does not listen for it).
   */
  override send(buf: Uint8Array, ...args: unknown[]): void {
    let data: Uint8Array = buf;
    let port: number;
    let address: string | undefined;
    let cb: ((err: Error | null, bytes?: number) => void) | undefined;
    const fn = args.find((x) => typeof x === 'function') as typeof cb;
    cb = fn;
    if (typeof args[0] === 'object' && args[0] !== null) {
      const peer = args[0] as { address: string; port: number };
      port = peer.port;
      address = peer.address;
    } else if (typeof args[0] === 'number' && typeof args[1] === 'number') {
      const offset = args[0];
      const length = args[1];
      data = buf.subarray(offset, offset + length);
      port = args[2] as number;
      address = typeof args[3] === 'string' ? args[3] : undefined;
    } else {
      port = args[0] as number;
      address = typeof args[1] === 'string' ? args[1] : undefined;
    }
    let peer = address !== undefined ? this.peers.get(`${address}:${port}`) : undefined;
    if (!peer && address === undefined) {
      // dgram defaults to localhost when the address is omitted (the coap server does that for errors)
      peer = [...this.peers.values()].find((p) => p.rinfo.port === port);
    }
    let err: Error | null = null;
    if (!peer || peer.ep.state !== 'connected') {
      err = new Error(`no DTLS session with ${address ?? '?'}:${port}`);
      (err as DtlsError).code = 'DTLS_STATE';
    } else {
      try {
        peer.ep.write(data);
      } catch (e) {
        err = e as Error;
      }
    }
    if (cb) {
      const done = cb;
      queueMicrotask(() => done(err, err ? 0 : data.length));
    } else if (err) this.emit('sendError', err, { address, port });
  }

  override close(callback?: () => void): this {
    if (this.#closed) {
      callback?.();
      return this;
    }
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    for (const peer of [...this.peers.values()]) {
      if (peer.next) this.#drop(peer.next, false);
      this.#drop(peer, true);
    }
    this.#raw.close(() => {
      // Close the (never bound) base handle too; dgram.Socket.close emits 'close' and calls back.
      dgram.Socket.prototype.close.call(this, callback);
    });
    return this;
  }

  // dgram.Socket methods that would touch the unbound base handle.
  override ref(): this {
    this.#raw.ref();
    return this;
  }
  override unref(): this {
    this.#raw.unref();
    return this;
  }

  /** Native endpoints alive: one per peer, plus the new handshakes running beside established sessions. */
  get endpoints(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.next ? 2 : 1;
    return n;
  }

  #onRaw(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stats.datagramsIn++;
    this.stats.bytesIn += msg.length;
    const key = `${rinfo.address}:${rinfo.port}`;
    const cur = this.peers.get(key);
    if (isInitialClientHello(msg)) {
      this.#onClientHello(msg, rinfo, key, cur);
      return;
    }
    if (!cur) {
      this.stats.dropped++; // junk, or a flight for an endpoint we no longer have: nothing is allocated
      return;
    }
    cur.lastSeen = Date.now();
    const next = cur.next;
    // The established endpoint drops epoch-0 records and cannot authenticate the new handshake's
    // Finished: whatever gives it no plaintext is offered to the new handshake running beside it.
    let delivered = this.#deliver(cur, msg, rinfo);
    if (next && delivered === 0 && this.#alive(next)) {
      next.lastSeen = Date.now();
      delivered = this.#deliver(next, msg, rinfo);
    }
    // Application data that no endpoint could read while a handshake with this address is still
    // waiting for the peer's last flight: the peer has completed the handshake (the client of a
    // resumption is done once it sent its ChangeCipherSpec and Finished), so that flight was lost.
    // Resend ours now instead of at the retransmission timeout (seconds later, while the peer's
    // requests go unanswered): the peer answers it with its last flight again (RFC 6347 4.2.4), and
    // its next retransmission finds the session. At most MAX_EARLY_RESENDS per handshake, on top of
    // the timer's, so junk from the peer's address cannot make more.
    const waiting = cur.ep.state === 'handshaking' ? cur : next && this.#alive(next) && next.ep.state === 'handshaking' ? next : null;
    if (delivered === 0 && waiting && waiting.earlyResends < MAX_EARLY_RESENDS && hasApplicationData(msg)) {
      waiting.earlyResends++;
      this.stats.earlyResends++;
      this.#call(waiting, () => waiting.ep.resendFlight());
    }
  }

  /** An epoch-0 ClientHello: a retransmission for a running handshake, or checked statelessly first. */
  #onClientHello(msg: Buffer, rinfo: dgram.RemoteInfo, key: string, cur: Peer | undefined): void {
    for (const p of [cur, cur?.next]) {
      if (p && p.ep.state === 'handshaking' && sameClientHello(p.hello, msg)) {
        // The same ClientHello again (a replay, or the peer's retransmission: same message in a record
        // with a new sequence number): mbedTLS answers it with its flight again. Before, a
        // retransmission (new record sequence number) started yet another endpoint, whose new
        // ServerHello replaced the one the peer may already have answered.
        p.lastSeen = Date.now();
        this.#deliver(p, msg, rinfo);
        return;
      }
    }
    const allowResume = this.#unverified.size < this.#unverifiedMax && clientHelloSessionId(msg) !== null;
    const { verdict, reply } = this.#ctx.checkClientHello(msg, key, allowResume);
    if (verdict === 'drop') {
      this.stats.dropped++;
      return;
    }
    if (verdict === 'verify') {
      // Stateless: the HelloVerifyRequest comes from the shared cookie key, nothing is kept.
      if (reply) this.#sendRaw(reply, rinfo);
      return;
    }
    if (!cur && this.peers.size >= (this.#opt.maxPeers ?? 1000)) return;
    const p = this.#newPeer(key, rinfo, msg);
    if (verdict === 'resume') p.ep.allowResumeWithoutCookie(true);
    if (cur && cur.ep.state === 'connected') {
      // The peer started over (or someone replays its ClientHello): keep the established session
      // until this handshake completes.
      if (cur.next) this.#drop(cur.next, false);
      cur.next = p;
      p.parent = cur;
    } else {
      // No session to keep: a new verified ClientHello replaces an unfinished handshake (run side by
      // side, the stale one would answer the peer's next flight with an alert it still accepts).
      if (cur) {
        if (cur.next) this.#drop(cur.next, false);
        this.#drop(cur, false);
      }
      this.peers.set(key, p);
    }
    this.#deliver(p, msg, rinfo);
    if (!this.#alive(p)) return;
    if (p.ep.cookieFallbacks > 0) {
      // mbedTLS would have answered a cookie-less resumption with a full handshake: the endpoint sent
      // a HelloVerifyRequest instead. Keep nothing; the peer comes back with the cookie.
      this.stats.resumptionFallbacks += p.ep.cookieFallbacks;
      this.#drop(p, false);
      return;
    }
    if (p.ep.state === 'handshaking' && p.ep.peerUnverified && !this.#unverified.has(p)) {
      this.#unverified.add(p);
      this.stats.resumptionsWithoutCookie++;
    }
  }

  #newPeer(key: string, rinfo: dgram.RemoteInfo, hello: Buffer): Peer {
    const ep = new this.#addon.DtlsEndpoint({ context: this.#ctx, clientId: key, mtu: this.#opt.mtu });
    const p: Peer = {
      key,
      rinfo,
      ep,
      timer: null,
      timerGen: -1,
      lastSeen: Date.now(),
      peerCert: null,
      hello: Buffer.from(hello),
      next: null,
      parent: null,
      earlyResends: 0,
    };
    ep.onSend = (record) => this.#sendRaw(record, p.rinfo);
    return p;
  }

  #sendRaw(record: Uint8Array, to: { address: string; port: number }): void {
    this.stats.bytesOut += record.length;
    if (isHelloVerifyRequest(record)) this.stats.helloVerifyRequests++;
    this.#raw.send(record, to.port, to.address);
  }

  /** True while p is a peer's endpoint or the new handshake beside it. */
  #alive(p: Peer): boolean {
    const cur = this.peers.get(p.key);
    return cur === p || (cur !== undefined && cur.next === p);
  }

  /** Feeds one datagram to an endpoint and emits what it decrypts. Returns the number of plaintexts. */
  #deliver(p: Peer, msg: Buffer, rinfo: dgram.RemoteInfo): number {
    this.#call(p, () => p.ep.feed(msg));
    let n = 0;
    while (this.#alive(p)) {
      const m = p.ep.read();
      if (!m) break;
      n++;
      this.stats.messages++;
      this.emit('message', m, { address: rinfo.address, family: rinfo.family, port: rinfo.port, size: m.length });
    }
    return n;
  }

  #call(peer: Peer, fn: () => number): void {
    let r: number;
    try {
      r = fn();
    } catch (e) {
      this.stats.failures++;
      const err = e as DtlsError;
      this.#drop(peer, false);
      this.emit('handshakeError', err, peer.rinfo);
      return;
    }
    if (!this.#alive(peer)) return;
    if (this.#unverified.has(peer) && peer.ep.state !== 'handshaking') this.#unverified.delete(peer);
    if (r === 1) {
      if (peer.parent) {
        // The peer's new handshake completed: it replaces the old session (no close_notify: the peer
        // has left that session behind).
        const old = peer.parent;
        old.next = null;
        peer.parent = null;
        this.#drop(old, false);
        this.peers.set(peer.key, peer);
      }
      this.stats.handshakes++;
      if (peer.ep.resumed) this.stats.resumed++;
      peer.peerCert = peer.ep.peerCertificate();
      const info: DtlsPeerInfo = {
        address: peer.rinfo.address,
        port: peer.rinfo.port,
        resumed: peer.ep.resumed,
        ciphersuite: peer.ep.ciphersuite,
        peerCertificate: peer.peerCert,
      };
      this.emit('session', info);
    }
    const gen = peer.ep.timerGeneration;
    if (gen !== peer.timerGen) {
      peer.timerGen = gen;
      if (peer.timer) clearTimeout(peer.timer);
      peer.timer = null;
      const ms = peer.ep.timerMs();
      if (ms >= 0) {
        peer.timer = setTimeout(() => {
          peer.timer = null;
          peer.timerGen = -1;
          if (this.#alive(peer)) this.#call(peer, () => peer.ep.timerExpired());
        }, ms);
        peer.timer.unref();
      }
    }
  }

  /**
   * Forgets an endpoint. Dropping a peer's established endpoint promotes the new handshake running
   * beside it, if any; dropping that new handshake leaves the established session alone.
   */
  #drop(peer: Peer, notify: boolean): void {
    this.#unverified.delete(peer);
    if (peer.timer) clearTimeout(peer.timer);
    peer.timer = null;
    if (notify) {
      try {
        peer.ep.close();
      } catch {
        /* ignore */
      }
    }
    peer.ep.destroy();
    if (peer.parent) {
      if (peer.parent.next === peer) peer.parent.next = null;
      peer.parent = null;
      return;
    }
    const next = peer.next;
    peer.next = null;
    if (this.peers.get(peer.key) !== peer) return;
    if (next) {
      next.parent = null;
      this.peers.set(peer.key, next);
    } else {
      this.peers.delete(peer.key);
    }
  }

  #expire(): void {
    const now = Date.now();
    const idle = this.#opt.idleMs ?? 600_000;
    for (const peer of [...this.peers.values()]) {
      if (peer.next && now - peer.next.lastSeen > Math.min(idle, 30_000)) this.#drop(peer.next, false);
      const limit = peer.ep.state === 'connected' ? idle : Math.min(idle, 30_000);
      if (now - peer.lastSeen > limit) this.#drop(peer, false);
    }
  }
}

/** A plaintext (epoch 0) DTLS handshake record carrying a ClientHello. */
function isInitialClientHello(d: Buffer): boolean {
  return d.length > 25 && d[0] === 22 && d[1] === 0xfe && d[3] === 0 && d[4] === 0 && d[13] === 1;
}

/** The same ClientHello record apart from the 48-bit record sequence number (bytes 5-10). */
function sameClientHello(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length || a.length < 13) return false;
  for (let i = 0; i < a.length; i++) if ((i < 5 || i > 10) && a[i] !== b[i]) return false;
  return true;
}

/** Holds an application-data record (type 23) of epoch 1 or later with room for a nonce and a tag. */
function hasApplicationData(d: Buffer): boolean {
  for (let off = 0; d.length - off >= 13; ) {
    const len = (d[off + 11] << 8) | d[off + 12];
    if (d[off] === 23 && d[off + 1] === 0xfe && (d[off + 3] !== 0 || d[off + 4] !== 0) && len >= 17 && off + 13 + len <= d.length) return true;
    off += 13 + len;
  }
  return false;
}

/** A HelloVerifyRequest (handshake type 3) in an epoch-0 handshake record. */
function isHelloVerifyRequest(d: Uint8Array): boolean {
  return d.length >= 25 && d[0] === 22 && d[3] === 0 && d[4] === 0 && d[13] === 3;
}

/**
 * The session ID of a DTLS 1.2 ClientHello that asks to resume (non-empty ID), else null: one epoch-0
 * handshake record (type 22, version FEFD, 13-byte header), an unfragmented ClientHello (12-byte
 * handshake header), then client_version (2), random (32), session_id length (1), session_id.
 */
export function clientHelloSessionId(d: Uint8Array): Uint8Array | null {
  if (d.length < 13 + 12 + 35 || d[0] !== 22 || d[1] !== 0xfe || d[2] !== 0xfd || d[3] !== 0 || d[4] !== 0) return null;
  const recLen = (d[11] << 8) | d[12];
  if (13 + recLen > d.length || recLen < 12 + 35) return null;
  const h = 13;
  if (d[h] !== 1) return null;
  const len = (d[h + 1] << 16) | (d[h + 2] << 8) | d[h + 3];
  const fragOff = (d[h + 6] << 16) | (d[h + 7] << 8) | d[h + 8];
  const fragLen = (d[h + 9] << 16) | (d[h + 10] << 8) | d[h + 11];
  if (fragOff !== 0 || fragLen !== len || 12 + len > recLen) return null;
  const b = h + 12;
  const idLen = d[b + 34];
  if (idLen === 0 || idLen > 32 || 35 + idLen > len) return null;
  return d.subarray(b + 35, b + 35 + idLen);
}
