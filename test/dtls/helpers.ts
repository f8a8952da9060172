/* Shared helpers for the DTLS tests: PKI, addon, a wall-time Clock, a UDP proxy, libcoap peers. */
import dgram from 'node:dgram';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { makeTestPki, type TestPki } from '../../tools/provision/certs';
import { DtlsServer, loadDtlsEngine, type DtlsEngineModule, type DtlsServerOptions } from '../../hardware/dtls/index';
import { UdpDatagram } from '../../tools/sim/udp';
import { DtlsDatagram, type DtlsDatagramOptions } from '../../src/dtls';
import type { DtlsConnectedInfo } from '../../src/dtls/datagram';
import type { Clock } from '../../src/platform/types';

let pki: TestPki | undefined;
export function testPki(): TestPki {
  pki ??= makeTestPki();
  return pki;
}

/** Loads the addon; a missing build is a test FAILURE with instructions, never a skip. */
export function addon(): DtlsEngineModule {
  return loadDtlsEngine();
}

/** Wall-time clock (the DTLS tests run over real sockets). */
export const wallClock: Clock = {
  now: () => performance.now(),
  epochMs: () => Date.now(),
  setTimer: (cb, ms) => setTimeout(cb, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export function requireBinary(name: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !path) {
    throw new Error(`${name} not found: install it (apt-get install libcoap3-bin) to run the interop tests`);
  }
  return path;
}

export function waitFor<T>(what: string, ms: number, setup: (resolve: (v: T) => void, reject: (e: Error) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    setup(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export interface Client {
  udp: UdpDatagram;
  dtls: DtlsDatagram;
  received: Uint8Array[];
  errors: Error[];
  /** Bytes on the wire (both directions) when the handshake completed. */
  handshakeBytes: number;
  connected: Promise<DtlsConnectedInfo>;
  failed: Promise<Error>;
}

export function openClient(
  port: number,
  engine: DtlsDatagramOptions['engine'],
  extra: Partial<DtlsDatagramOptions> = {},
  host = '127.0.0.1',
  localPort = 0,
): Client {
  const udp = new UdpDatagram(host, port, { localPort });
  let onConn!: (v: DtlsConnectedInfo) => void;
  let onFail!: (e: Error) => void;
  const connected = new Promise<DtlsConnectedInfo>((r) => (onConn = r));
  const failed = new Promise<Error>((r) => (onFail = r));
  const c: Client = { udp, dtls: undefined as unknown as DtlsDatagram, received: [], errors: [], handshakeBytes: 0, connected, failed };
  c.dtls = new DtlsDatagram({
    transport: udp,
    clock: wallClock,
    createEngine: addon().create,
    engine,
    rehandshake: false,
    ...extra,
    onConnected: (info) => {
      c.handshakeBytes = udp.stats.bytesSent + udp.stats.bytesReceived;
      onConn(info);
    },
  });
  c.dtls.onReceive = (d) => c.received.push(d);
  c.dtls.onError = (e) => {
    c.errors.push(e);
    onFail(e);
  };
  return c;
}

export function nextMessage(c: Client, ms = 5000): Promise<Uint8Array> {
  const start = c.received.length;
  return waitFor('a decrypted datagram', ms, (resolve) => {
    const poll = setInterval(() => {
      if (c.received.length > start) {
        clearInterval(poll);
        resolve(c.received[start]);
      }
    }, 5);
  });
}

/** A free UDP port p on 127.0.0.1 with p+1 free too (libcoap's DTLS port). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + 2 * Math.floor(Math.random() * 15000);
    const ok = await Promise.all([p, p + 1].map((port) => new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    })));
    if (ok.every(Boolean)) return p;
  }
  throw new Error('no free UDP port pair');
}

export interface Peer {
  proc: ChildProcess;
  dtlsPort: number;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts libcoap's coap-server-openssl (or another TLS flavour) on 127.0.0.1 (DTLS port = -p + 1). */
export async function startCoapServer(args: string[], binary = 'coap-server-openssl'): Promise<Peer> {
  const bin = requireBinary(binary);
  const port = await freePortPair();
  const proc = spawn(bin, ['-A', '127.0.0.1', '-p', String(port), ...args], { cwd: testPki().dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  // Wait until the DTLS port is taken (the server bound it).
  const deadline = Date.now() + 5000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${binary} exited: ${out}`);
    const bound = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(true));
      s.bind(port + 1, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (bound) break;
    if (Date.now() > deadline) throw new Error(`${binary} did not bind: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    dtlsPort: port + 1,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Sends GET /time over the client's DTLS session and asserts a 2.05 with the same MID comes back. */
export async function expectTime(c: Client, mid: number): Promise<void> {
  c.dtls.send(coapGetTime(mid));
  const reply = await nextMessage(c, 8000);
  if (reply[0]! >> 6 !== 1) throw new Error(`expected CoAP version 1, got ${reply[0]! >> 6}`);
  if (reply[1] !== 0x45) throw new Error(`expected 2.05 Content, got ${reply[1]! >> 5}.${String(reply[1]! & 31).padStart(2, '0')}`);
  if (((reply[2]! << 8) | reply[3]!) !== mid) throw new Error(`expected MID ${mid}, got ${(reply[2]! << 8) | reply[3]!}`);
}

/** CoAP GET /time, CON, no token (hand-encoded). */
export function coapGetTime(mid: number): Uint8Array {
  return Uint8Array.from([0x40, 0x01, (mid >> 8) & 0xff, mid & 0xff, 0xb4, ...Buffer.from('time')]);
}

/**
 * UDP proxy between one client and a server: counts, drops, injects and rewrites datagrams.
 */
export class UdpProxy {
  readonly front = dgram.createSocket('udp4');
  readonly back = dgram.createSocket('udp4');
  client?: dgram.RemoteInfo;
  /** Return false to drop. Index is 1-based per direction. */
  filterToServer: (d: Buffer, index: number) => boolean = () => true;
  filterToClient: (d: Buffer, index: number) => boolean = () => true;
  toServer = 0;
  toClient = 0;
  constructor(readonly serverPort: number) {
    this.front.on('message', (d, r) => {
      this.client = r;
      this.toServer++;
      if (this.filterToServer(d, this.toServer)) this.back.send(d, serverPort, '127.0.0.1');
    });
    this.back.on('message', (d) => {
      this.toClient++;
      if (this.client && this.filterToClient(d, this.toClient)) this.front.send(d, this.client.port, this.client.address);
    });
  }
  async start(): Promise<number> {
    await new Promise<void>((r) => this.front.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => this.back.bind(0, '127.0.0.1', () => r()));
    return this.front.address().port;
  }
  injectToServer(d: Uint8Array): void {
    this.back.send(d, this.serverPort, '127.0.0.1');
  }
  injectToClient(d: Uint8Array): void {
    if (this.client) this.front.send(d, this.client.port, this.client.address);
  }
  close(): void {
    this.front.close();
    this.back.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Registers an afterEach in the calling describe() that closes every client and DtlsServer made
 * through the returned functions. `server()` listens on 127.0.0.1 with the test PKI's localhost
 * certificate unless `opts` say otherwise.
 */
export function usePeers() {
  const clients: Client[] = [];
  const servers: DtlsServer[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.dtls.close();
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  });
  return {
    async server(opts: Partial<DtlsServerOptions> = {}): Promise<{ s: DtlsServer; port: number }> {
      const s = new DtlsServer({ cert: testPki().read('server.pem'), key: testPki().read('server.key'), ...opts });
      servers.push(s);
      const { port } = await s.listen(0, '127.0.0.1');
      return { s, port };
    },
    /** localPort: come back from this local port (the same address as before sleep). */
    client(port: number, engine: DtlsDatagramOptions['engine'], extra: Partial<DtlsDatagramOptions> = {}, localPort = 0): Client {
      const c = openClient(port, engine, extra, '127.0.0.1', localPort);
      clients.push(c);
      return c;
    },
  };
}

/**
 * For suites against one of libcoap's servers: fails (not skips) in before() when the binary is
 * missing, and after each test closes the clients and stops the server. `start(args)` runs it
 * (DTLS port = -p + 1) for the current test; `client()` connects to it.
 */
export function useLibcoapServer(binary = 'coap-server-openssl') {
  let peer: Peer | undefined;
  const clients: Client[] = [];
  before(() => {
    requireBinary(binary);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.dtls.close();
    await peer?.stop();
    peer = undefined;
  });
  return {
    async start(args: string[]): Promise<Peer> {
      peer = await startCoapServer(args, binary);
      return peer;
    },
    client(engine: DtlsDatagramOptions['engine'], extra: Partial<DtlsDatagramOptions> = {}): Client {
      if (!peer) throw new Error('start the server first');
      const c = openClient(peer.dtlsPort, engine, extra);
      clients.push(c);
      return c;
    },
  };
}
