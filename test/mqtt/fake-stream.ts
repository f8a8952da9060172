// In-memory Stream pair for the MQTT client tests: the test plays the server, parsing what the
// client sends with the independent mqtt-packet package and answering with mqtt-packet too.
import * as mqttPacket from 'mqtt-packet';
import type { Stream, StreamFactory } from '../../src/platform/types';

export class FakeConnection implements Stream {
  onConnect?: () => void;
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  onClose?: () => void;
  closed = false;
  /** Packets the client sent, parsed by mqtt-packet. */
  readonly packets: mqttPacket.Packet[] = [];
  /** Raw bytes the client sent, one entry per send(). */
  readonly raw: Uint8Array[] = [];
  #parser = mqttPacket.parser({ protocolVersion: 4 });

  constructor(readonly host: string, readonly port: number) {
    this.#parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    this.#parser.on('error', (e: Error) => { throw e; });
  }

  send(data: Uint8Array): void {
    if (this.closed) throw new Error('send on a closed stream');
    this.raw.push(data.slice());
    this.#parser.parse(Buffer.from(data));
  }

  close(): void {
    this.closed = true;
  }

  // ---- the server side

  accept(): void {
    this.onConnect?.();
  }

  reply(p: mqttPacket.Packet): void {
    this.bytes(mqttPacket.generate(p));
  }

  bytes(b: Uint8Array | number[]): void {
    if (this.closed) return;
    this.onReceive?.(Uint8Array.from(b));
  }

  /** The server closes the connection. */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }

  of<T extends mqttPacket.Packet['cmd']>(cmd: T): Extract<mqttPacket.Packet, { cmd: T }>[] {
    return this.packets.filter((p) => p.cmd === cmd) as Extract<mqttPacket.Packet, { cmd: T }>[];
  }
}

export class FakeNet implements StreamFactory {
  readonly connections: FakeConnection[] = [];
  /** Accept at once and answer CONNACK 0 (the usual case). */
  autoAccept = false;
  connect(host: string, port: number): FakeConnection {
    const c = new FakeConnection(host, port);
    this.connections.push(c);
    return c;
  }
  get last(): FakeConnection {
    return this.connections[this.connections.length - 1]!;
  }
}
