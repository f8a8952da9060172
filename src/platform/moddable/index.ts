/*
 * src/platform on Moddable XS: the only place (with src/main.ts) that imports Moddable modules.
 *   Clock    -> `timer` + `time` (Time.ticks is monotonic; Date.now() is epoch once SNTP set it)
 *   Datagram -> ECMA-419 `embedded:io/socket/udp`, host names through `net` Net.resolve
 *   Random   -> Math.random (XS seeds it from the chip's RNG on ESP32)
 *   Log      -> trace()
 * The Flash platform lives in ./flash (module `platform/moddable/flash`), so an app that keeps
 * nothing in flash does not need the SDK's `flash` module in its manifest.
 */
import Timer from 'timer';
import Time from 'time';
import Net from 'net';
import UDP from 'embedded:io/socket/udp';
import type { Clock, Datagram, DatagramFactory, Log, Platform, Random, TimerHandle } from '../types';

export const moddableClock: Clock = Object.freeze<Clock>({
  now: () => Time.ticks,
  epochMs: () => Date.now(),
  setTimer(callback: () => void, ms: number): TimerHandle {
    return Timer.set(() => callback(), Math.max(0, ms));
  },
  clearTimer(handle: TimerHandle): void {
    Timer.clear(handle as Timer);
  },
});

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

class ModdableUdp implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  readonly mtu = 1152;
  #socket: UDP;
  #address: string | undefined;
  #port: number;
  #pending: Uint8Array[] = [];

  constructor(host: string, port: number) {
    this.#port = port;
    const self = this;
    this.#socket = new UDP({
      onReadable(count: number) {
        while (count-- > 0) {
          const packet = this.read();
          if (packet.address === self.#address && packet.port === self.#port) self.onReceive?.(new Uint8Array(packet));
        }
      },
      onError() {
        self.onError?.(new Error('UDP socket error'));
      },
    });
    if (IPV4.test(host)) this.#address = host;
    else
      Net.resolve(host, (_name, address) => {
        if (!address) {
          this.onError?.(new Error(`DNS: cannot resolve ${host}`));
          return;
        }
        this.#address = address;
        for (const d of this.#pending.splice(0)) this.send(d);
      });
  }

  send(data: Uint8Array): void {
    if (this.#address === undefined) {
      if (this.#pending.length < 4) this.#pending.push(data);
      return;
    }
    try {
      this.#socket.write(data, this.#address, this.#port);
    } catch (e) {
      this.onError?.(e as Error);
    }
  }

  close(): void {
    // The runtime's UDP has close() (ECMA-419 IO classes all do); SDK 8.2.3's udp.d.ts omits it.
    (this.#socket as unknown as { close(): void }).close();
  }
}

export const moddableNet: DatagramFactory = Object.freeze<DatagramFactory>({
  open: (host, port) => new ModdableUdp(host, port),
});

export const moddableRandom: Random = Object.freeze<Random>({
  fill(bytes: Uint8Array) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.random() * 256) & 0xff;
  },
  next: () => Math.random(),
});

export const moddableLog: Log = Object.freeze<Log>({
  debug: (m) => trace(`[debug] ${m}\n`),
  info: (m) => trace(`[info] ${m}\n`),
  warn: (m) => trace(`[warn] ${m}\n`),
  error: (m) => trace(`[error] ${m}\n`),
});

export const moddablePlatform: Platform = Object.freeze<Platform>({
  clock: moddableClock,
  net: moddableNet,
  random: moddableRandom,
  log: moddableLog,
});
