/*
 * A UDP proxy on 127.0.0.1 for the byte-count benches (dtls-bytes, proto, ota): forwards datagrams
 * client <-> target port, one upstream socket per client address, and counts the bytes (UDP
 * payloads: DTLS records with their headers; IP/UDP headers not included) and datagrams in both
 * directions.
 */
import dgram from 'node:dgram';

export class CountingProxy {
  bytes = 0;
  datagrams = 0;
  #socket = dgram.createSocket('udp4');
  #upstreams = new Map<string, dgram.Socket>();
  constructor(readonly targetPort: number) {
    this.#socket.on('message', (msg, rinfo) => {
      const key = `${rinfo.address}:${rinfo.port}`;
      let up = this.#upstreams.get(key);
      if (!up) {
        up = dgram.createSocket('udp4');
        up.on('message', (reply) => {
          this.bytes += reply.length;
          this.datagrams++;
          this.#socket.send(reply, rinfo.port, rinfo.address);
        });
        up.bind(0, '127.0.0.1');
        this.#upstreams.set(key, up);
      }
      this.bytes += msg.length;
      this.datagrams++;
      up.send(msg, this.targetPort, '127.0.0.1');
    });
  }
  /** Binds to an ephemeral port on 127.0.0.1 and resolves to it (the port clients send to). */
  listen(): Promise<number> {
    return new Promise((r) => this.#socket.bind(0, '127.0.0.1', () => r(this.#socket.address().port)));
  }
  reset(): void {
    this.bytes = 0;
    this.datagrams = 0;
  }
  close(): void {
    for (const u of this.#upstreams.values()) u.close();
    this.#socket.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
