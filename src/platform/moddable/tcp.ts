/*
 * Stream (src/platform/types.ts) over ECMA-419 `embedded:io/socket/tcp`, for mqtt:// (and under
 * TlsStream for mqtts://). Module `platform/moddable/tcp`.
 *
 * - Host names are resolved with `net` (Net.resolve) first: the SDK's lin TCP takes a numeric IPv4
 *   `address` only.
 * - Connected = the socket's first onWritable (the non-blocking connect completed).
 * - Writes go out as far as the socket's writable count allows (write() beyond it throws "would
 *   block"); the rest waits, bounded by MAX_QUEUED bytes, for the next onWritable. Bytes sent
 *   before the connection is up wait the same way.
 * - onError of the socket: before the connection is up, a failed connect (onError, then
 *   onClose); after, the peer closed or reset the connection (lin reports both as an error once
 *   the bytes read are consumed): onClose.
 */
import Net from 'net';
import TCP from 'embedded:io/socket/tcp';
import type { Stream, StreamFactory } from '../types';

/** Bytes held for the socket at most (the MQTT client keeps its own bounded in-flight list). */
const MAX_QUEUED = 8192;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

class ModdableTcp implements Stream {
  onConnect?: () => void;
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  onClose?: () => void;
  #socket: TCP | undefined;
  #host: string;
  #port: number;
  #state: 'resolving' | 'connecting' | 'connected' | 'closed' = 'resolving';
  #writable = 0;
  #queue: Uint8Array[] = [];
  #queued = 0;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
    if (IPV4.test(host)) this.#open(host);
    else
      Net.resolve(host, (_name, address) => {
        if (this.#state !== 'resolving') return;
        if (!address) this.#fail(new Error(`DNS: cannot resolve ${host}`));
        else this.#open(address);
      });
  }

  #open(address: string): void {
    this.#state = 'connecting';
    const self = this;
    try {
      this.#socket = new TCP({
        address,
        port: this.#port,
        nodelay: true,
        onWritable(count: number) {
          self.#onWritable(count);
        },
        onReadable(count: number) {
          if (self.#state !== 'connected' || count <= 0) return;
          const buffer = this.read();
          if (typeof buffer !== 'number') self.onReceive?.(new Uint8Array(buffer));
        },
        onError() {
          if (self.#state === 'connected') self.#end();
          else self.#fail(new Error(`TCP: cannot connect to ${self.#host}:${self.#port}`));
        },
      });
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  #onWritable(count: number): void {
    if (this.#state === 'closed') return;
    this.#writable = count;
    if (this.#state === 'connecting') {
      this.#state = 'connected';
      this.onConnect?.();
    }
    this.#drain();
  }

  send(data: Uint8Array): void {
    if (this.#state === 'closed') return;
    const socket = this.#socket;
    if (this.#state === 'connected' && socket && !this.#queue.length && data.length <= this.#writable) {
      // The usual case: the socket takes it all now, no copy.
      try {
        socket.write(data);
      } catch (e) {
        this.#fail(e as Error);
        return;
      }
      this.#writable -= data.length;
      return;
    }
    if (this.#queued + data.length > MAX_QUEUED) {
      this.#fail(new Error(`TCP: more than ${MAX_QUEUED} bytes waiting for the socket`));
      return;
    }
    this.#queue.push(data.slice());
    this.#queued += data.length;
    this.#drain();
  }

  #drain(): void {
    const socket = this.#socket;
    if (this.#state !== 'connected' || !socket) return;
    while (this.#queue.length && this.#writable > 0) {
      const head = this.#queue[0]!;
      const n = Math.min(head.length, this.#writable);
      try {
        socket.write(n === head.length ? head : head.subarray(0, n));
      } catch (e) {
        this.#fail(e as Error);
        return;
      }
      this.#writable -= n;
      this.#queued -= n;
      if (n === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(n);
    }
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#release();
  }

  #release(): void {
    this.#queue = [];
    this.#queued = 0;
    const socket = this.#socket;
    this.#socket = undefined;
    try {
      socket?.close();
    } catch {
      /* closed */
    }
  }

  #fail(error: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#release();
    this.onError?.(error);
    this.onClose?.();
  }

  #end(): void {
    this.#state = 'closed';
    this.#release();
    this.onClose?.();
  }
}

export const moddableTcp: StreamFactory = Object.freeze<StreamFactory>({
  connect: (host, port) => new ModdableTcp(host, port),
});
