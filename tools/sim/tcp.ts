/*
 * Host Stream (src/platform/types.ts) over node:net, plus counters and a tap for the live view.
 * The device's MQTT client runs over this in the simulator and the tests; on Moddable the same
 * interface sits over embedded:io/socket/tcp.
 */
import net from 'node:net';
import type { Stream, StreamFactory } from '../../src/platform/types';

export interface TcpStats {
  bytesSent: number;
  bytesReceived: number;
  connects: number;
}

export class TcpStream implements Stream {
  onConnect?: () => void;
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  onClose?: () => void;
  readonly socket: net.Socket;
  #closed = false;

  constructor(host: string, port: number, readonly stats?: TcpStats, tap?: (direction: 'out' | 'in', data: Uint8Array) => void) {
    if (stats) stats.connects++;
    const socket = net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      if (!this.#closed) this.onConnect?.();
    });
    socket.on('data', (d: Buffer) => {
      if (this.#closed) return;
      if (stats) stats.bytesReceived += d.length;
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.length);
      tap?.('in', bytes);
      this.onReceive?.(bytes);
    });
    socket.on('error', (e) => {
      if (this.#closed) return;
      this.onError?.(e);
    });
    socket.on('close', () => {
      if (this.#closed) return;
      this.#closed = true;
      this.onClose?.();
    });
    this.#tap = tap;
  }

  #tap?: (direction: 'out' | 'in', data: Uint8Array) => void;

  send(data: Uint8Array): void {
    if (this.#closed || this.socket.destroyed) return;
    if (this.stats) this.stats.bytesSent += data.length;
    this.#tap?.('out', data);
    this.socket.write(data);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.end();
    this.socket.destroySoon();
  }
}

/** A StreamFactory for node:net with shared counters (bytes both ways) and an optional tap. */
export class TcpStreamFactory implements StreamFactory {
  readonly stats: TcpStats = { bytesSent: 0, bytesReceived: 0, connects: 0 };
  tap?: (direction: 'out' | 'in', data: Uint8Array) => void;
  last?: TcpStream;
  connect(host: string, port: number): TcpStream {
    this.last = new TcpStream(host, port, this.stats, this.tap);
    return this.last;
  }
}
