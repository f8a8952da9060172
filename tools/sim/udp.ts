/*
 * Host Datagram over a real Node UDP socket on loopback, plus counters and fault injection
 * (loss, duplication, delay, rebinding to a new local port as a NAT would).
 */
import dgram from 'node:dgram';
import type { Datagram, DatagramFactory } from '../../src/platform/types';

export interface UdpStats {
  datagramsSent: number;
  datagramsReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface UdpFaults {
  /** Probability in [0,1] that an outgoing datagram is dropped. */
  lossOut?: number;
  /** Probability that an incoming datagram is dropped. */
  lossIn?: number;
  /** Probability that an outgoing datagram is sent twice. */
  duplicateOut?: number;
  /** Drops these outgoing datagrams by 1-based index (deterministic tests). */
  dropOutIndexes?: number[];
  /** Drops these incoming datagrams by 1-based index. */
  dropInIndexes?: number[];
  random?: () => number;
}

export class UdpDatagram implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  readonly mtu = 1152;
  readonly stats: UdpStats = { datagramsSent: 0, datagramsReceived: 0, bytesSent: 0, bytesReceived: 0 };
  faults: UdpFaults = {};
  /** Called for every datagram crossing the socket (for live display / capture). */
  tap?: (direction: 'out' | 'in', data: Uint8Array) => void;
  #socket: dgram.Socket;
  #host: string;
  #port: number;
  #closed = false;
  #outIndex = 0;
  #inIndex = 0;
  #localPort: number;

  /** localPort: bind this local port (default any): a device that comes back from the same address. */
  constructor(host: string, port: number, options: { localPort?: number } = {}) {
    this.#host = host;
    this.#port = port;
    this.#localPort = options.localPort ?? 0;
    this.#socket = this.#open();
  }

  #open(): dgram.Socket {
    const family = this.#host.includes(':') ? 'udp6' : 'udp4';
    const socket = dgram.createSocket(family);
    socket.on('message', (msg, rinfo) => {
      // A connected client only accepts datagrams from its peer.
      if (rinfo.port !== this.#port) return;
      this.#inIndex++;
      const f = this.faults;
      if (f.dropInIndexes?.includes(this.#inIndex)) return;
      if (f.lossIn && (f.random ?? Math.random)() < f.lossIn) return;
      this.stats.datagramsReceived++;
      this.stats.bytesReceived += msg.length;
      const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
      this.tap?.('in', data);
      this.onReceive?.(data);
    });
    socket.on('error', (err) => this.onError?.(err));
    // Loopback servers (the local endpoint, the tests) get a loopback-only socket; any other
    // server needs a socket that can reach it (bound to every interface).
    const loopback = this.#host === 'localhost' || this.#host === '::1' || this.#host.startsWith('127.');
    const local = this.#localPort;
    this.#localPort = 0; // a rebind() takes a new port, as a NAT would
    if (loopback) socket.bind(local, this.#host.includes(':') ? '::1' : '127.0.0.1');
    else socket.bind(local);
    socket.unref();
    return socket;
  }

  /** Local port (after bind). */
  get localPort(): number {
    try {
      return this.#socket.address().port;
    } catch {
      return 0;
    }
  }

  send(data: Uint8Array): void {
    if (this.#closed) return;
    this.#outIndex++;
    const f = this.faults;
    this.tap?.('out', data);
    if (f.dropOutIndexes?.includes(this.#outIndex)) return;
    if (f.lossOut && (f.random ?? Math.random)() < f.lossOut) return;
    const copies = f.duplicateOut && (f.random ?? Math.random)() < f.duplicateOut ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.stats.datagramsSent++;
      this.stats.bytesSent += data.length;
      this.#socket.send(data, this.#port, this.#host, (err) => {
        if (err) this.onError?.(err);
      });
    }
  }

  /** NAT rebinding: the same endpoint continues from a new local port. */
  rebind(): void {
    const old = this.#socket;
    this.#socket = this.#open();
    old.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#socket.close();
    } catch {
      /* already closed */
    }
  }
}

export const udpFactory: DatagramFactory = {
  open(host: string, port: number) {
    return new UdpDatagram(host, port);
  },
};
