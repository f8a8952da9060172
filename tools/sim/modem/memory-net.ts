/*
 * An in-memory UDP "network" between simulated modems and the local endpoint: the endpoint's
 * attachCoapSocket() gets a socket-shaped EventEmitter, each modem socket a Datagram with its own
 * port (a new one per open: NAT rebinding). Datagrams cross in a setImmediate turn, so a harness
 * only has to let a few turns run between two timers instead of waiting for real loopback I/O:
 * the fast mode of the power simulator and its bench.
 *
 * What it does not exercise: the kernel's UDP path and node-coap's dgram-only duplicate cache (the
 * loopback mode does).
 */
import { EventEmitter } from 'node:events';
import type { Datagram } from '../../../src/platform/types';

export interface MemorySocketLike extends EventEmitter {
  send(buf: Buffer, offset: number, length: number, port: number, address: string, cb?: (err: Error | null, bytes?: number) => void): void;
}

export class MemoryNetwork {
  readonly socket: MemorySocketLike;
  /** Datagrams delivered either way (for a harness to see when the network is quiet). */
  activity = 0;
  /** Probability of losing a datagram, each way. */
  loss = 0;
  random: () => number = Math.random;
  #peers = new Map<number, { onReceive?: (d: Uint8Array) => void }>();
  #nextPort = 20000;

  constructor() {
    const peers = this.#peers;
    const net = this;
    const emitter = new EventEmitter() as MemorySocketLike;
    emitter.send = (buf, offset, length, port, _address, cb) => {
      const data = new Uint8Array(buf.subarray(offset, offset + length));
      net.activity++;
      setImmediate(() => {
        cb?.(null, length);
        if (net.loss && net.random() < net.loss) return;
        peers.get(port)?.onReceive?.(data);
      });
    };
    this.socket = emitter;
  }

  /** A socket from a new source port. */
  open(): Datagram & { readonly localPort: number } {
    const port = this.#nextPort++;
    if (this.#nextPort > 65000) this.#nextPort = 20000;
    const peers = this.#peers;
    const net = this;
    let closed = false;
    const d = {
      onReceive: undefined as ((data: Uint8Array) => void) | undefined,
      localPort: port,
      send(data: Uint8Array) {
        if (closed) return;
        net.activity++;
        const buf = Buffer.from(data);
        setImmediate(() => {
          if (net.loss && net.random() < net.loss) return;
          net.socket.emit('message', buf, { address: '127.0.0.1', port, family: 'IPv4', size: buf.length });
        });
      },
      close() {
        closed = true;
        peers.delete(port);
      },
    };
    peers.set(port, d);
    return d;
  }
}
