/* Test double: an in-memory Datagram that records what the client sends and lets a test reply. */
import { decode, encode } from '../../src/coap/codec';
import type { CoapMessage } from '../../src/coap/types';
import { CoapType } from '../../src/coap/types';
import type { Clock, Datagram } from '../../src/platform/types';

export interface Sent {
  at: number;
  bytes: Uint8Array;
  msg: CoapMessage;
}

export class FakeDatagram implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  mtu?: number;
  readonly sent: Sent[] = [];
  closed = false;
  /** When set, every sent request is answered (asynchronously, in a microtask) with its result. */
  responder?: (req: CoapMessage) => Partial<CoapMessage> | undefined;
  #clock: Clock;

  constructor(clock: Clock, mtu?: number) {
    this.#clock = clock;
    if (mtu !== undefined) this.mtu = mtu;
  }

  /**
   * When set, a datagram longer than this is not sent: onError gets a DatagramTooLargeError for it,
   * synchronously, as DtlsDatagram reports a datagram larger than one record.
   */
  refuseOver?: number;
  /** Datagrams refused by refuseOver. */
  refused = 0;

  send(data: Uint8Array): void {
    if (this.refuseOver !== undefined && data.length > this.refuseOver) {
      this.refused++;
      const e = Object.assign(new Error(`datagram of ${data.length} bytes larger than one record`), { code: 'DTLS_TOO_LONG', datagram: data, mtu: this.refuseOver });
      this.onError?.(e);
      return;
    }
    const bytes = data.slice();
    const msg = decode(bytes);
    this.sent.push({ at: this.#clock.now(), bytes, msg });
    const responder = this.responder;
    if (responder && (msg.type === CoapType.CON || msg.type === CoapType.NON) && msg.code !== 0) {
      queueMicrotask(() => {
        const r = responder(msg);
        if (r) this.inject({ type: msg.type === CoapType.CON ? CoapType.ACK : CoapType.NON, code: 0x45, messageId: msg.messageId, token: msg.token, options: [], payload: new Uint8Array(0), ...r });
      });
    }
  }

  inject(m: CoapMessage): void {
    this.onReceive?.(encode(m));
  }

  injectRaw(data: Uint8Array): void {
    this.onReceive?.(data);
  }

  last(): CoapMessage {
    const s = this.sent[this.sent.length - 1];
    if (!s) throw new Error('nothing sent');
    return s.msg;
  }

  close(): void {
    this.closed = true;
  }
}

/** Lets every queued promise job and microtask run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
