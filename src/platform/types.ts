/*
 * Platform interfaces: the only things the device code depends on below it.
 *
 * Implementations: src/platform/moddable/ (XS on the device), tools/sim/ (Node on the host).
 * Everything above this layer is plain TypeScript over Uint8Array/DataView: no Node globals,
 * no setTimeout. All waiting goes through Clock so a simulator can run device time faster than
 * wall time.
 */

import type { DtlsEngineFactory } from '../dtls/engine';

/** Opaque timer handle returned by Clock.setTimer. */
export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds, monotonic. On a virtual clock this is virtual time. */
  now(): number;
  /** Epoch milliseconds (for telemetry `ts`). May be unset (0-based) on a device without time sync. */
  epochMs(): number;
  /** Calls `callback` once after `ms` milliseconds of this clock's time. */
  setTimer(callback: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/**
 * A connected datagram endpoint: one local socket talking to one remote peer (the CoAP server).
 * A DTLS session implements the same interface on top of a plain one, so the CoAP client does not
 * know whether it is encrypted.
 */
export interface Datagram {
  /** Sends one datagram to the peer. Must not throw on a network error; report through onError. */
  send(data: Uint8Array): void;
  /** Set by the owner (the CoAP client) to receive datagrams from the peer. */
  onReceive?: (data: Uint8Array) => void;
  /**
   * Set by the owner: a transport-level failure (ICMP unreachable, socket closed, DTLS alert). A
   * datagram that could not be sent at all because it is larger than the transport carries comes
   * as a DatagramTooLargeError (possibly from inside send()): sending it again cannot help.
   */
  onError?: (error: Error) => void;
  close(): void;
  /** Largest datagram payload the path carries (CoAP sizes Block1/Block2 to fit). */
  readonly mtu?: number;
}

/** onError's report of one datagram that was not sent: larger than the transport carries (see Datagram.onError). */
export interface DatagramTooLargeError extends Error {
  readonly code: string;
  /** The datagram that was not sent. */
  readonly datagram: Uint8Array;
  /** The largest datagram the transport takes now. */
  readonly mtu: number;
}

export interface DatagramFactory {
  /** Opens a connected datagram endpoint to host:port. */
  open(host: string, port: number): Datagram;
}

/**
 * A connected byte stream to one remote peer (TCP; TLS on top implements the same interface), for
 * MQTT. Bytes arrive in arbitrary pieces: the protocol above does its own framing.
 * On Moddable: embedded:io/socket/tcp (ECMA-419 TCP socket); on the host: node:net.
 */
export interface Stream {
  /**
   * Queues bytes to the peer (in order, once connected; earlier bytes are kept until then). Must
   * not throw on a network error: report through onError.
   */
  send(data: Uint8Array): void;
  /** Set by the owner: the connection is up (TCP established; for TLS, the handshake verified). */
  onConnect?: () => void;
  /** Set by the owner to receive bytes from the peer. */
  onReceive?: (data: Uint8Array) => void;
  /** Set by the owner: a failure (refused, reset, TLS alert, certificate rejected). onClose follows. */
  onError?: (error: Error) => void;
  /** Set by the owner: the connection ended (peer closed, or after onError). Not called for close(). */
  onClose?: () => void;
  /** Ends the connection; no callback is made afterwards. */
  close(): void;
}

export interface StreamFactory {
  /** Opens a connection to host:port; onConnect reports when it is up. */
  connect(host: string, port: number): Stream;
}

export interface Random {
  /** Fills `bytes` with random bytes (CoAP tokens, message-ID seed, jitter). */
  fill(bytes: Uint8Array): void;
  /** Uniform in [0, 1). */
  next(): number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Log {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A log that drops everything. */
export const silentLog: Log = Object.freeze<Log>({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/**
 * ECMA-419 I2C IO instance (embedded:io/i2c): the subset drivers use.
 * `read` fills a buffer or returns a new one; `write` sends bytes; both throw on NACK.
 */
export interface I2CIo {
  read(byteLengthOrBuffer: number | ArrayBufferView, stop?: boolean): ArrayBuffer | void;
  write(buffer: ArrayBufferView | ArrayBuffer, stop?: boolean): void;
  close(): void;
}

/** ECMA-419 IO constructor options for I2C. */
export interface I2COptions {
  data?: number;
  clock?: number;
  hz?: number;
  address: number;
  port?: number;
  [key: string]: unknown;
}

export type I2CIoConstructor = new (options: I2COptions) => I2CIo;

/**
 * `options.sensor` of an ECMA-419 I2C sensor driver: the bus class and its wiring. The driver
 * spreads its chip's defaults (address, hz) under these before `new io(...)`.
 */
export interface I2CSensorOptions {
  io: I2CIoConstructor;
  data?: number;
  clock?: number;
  hz?: number;
  address?: number;
  port?: number;
  /** Blocking wait for conversion times; none by default (simulated parts answer at once). On a device: Timer.delay. */
  delay?: (ms: number) => void;
  [key: string]: unknown;
}

/** ECMA-419 Analog IO instance (embedded:io/analog). */
export interface AnalogIo {
  read(): number;
  readonly resolution: number;
  close(): void;
}

export interface AnalogOptions {
  pin: number;
  [key: string]: unknown;
}

export type AnalogIoConstructor = new (options: AnalogOptions) => AnalogIo;

/**
 * A flash partition with NOR semantics, as Moddable's `flash` module exposes one: erase sets a
 * whole block to 0xFF; write can only clear bits (new = old AND data). A power cut can stop a
 * write or an erase part way, which is what the record store above must survive.
 */
export interface Flash {
  readonly byteLength: number;
  /** Erase-block size (4096 on ESP32 SPI flash). */
  readonly blockSize: number;
  read(offset: number, byteLength: number): Uint8Array;
  write(offset: number, data: Uint8Array): void;
  /** Erases block number `block` (offset block * blockSize). */
  erase(block: number): void;
}

/**
 * A serial line (UART) to an AT modem: bytes out, bytes in, in arbitrary pieces (the AT channel in
 * src/modem does the line framing). On Moddable: embedded:io/serial (ECMA-419), whose onReadable
 * handler reads what is available and passes it to onReceive; on the host: tools/sim/modem.
 */
export interface Serial {
  /** Queues bytes to the modem. Must not throw on a line error: report through onError. */
  write(data: Uint8Array): void;
  /** Set by the owner (the AT channel) to receive bytes from the modem. */
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  close(): void;
}

/**
 * The MCU's own sleep between wake cycles (the modem sleeps on its own in PSM / eDRX).
 * - 'light': execution resumes after sleep() (ESP32 light sleep, nRF52 System ON idle, the simulator);
 * - 'deep': the MCU restarts on wake (ESP32 deep sleep): RAM is lost, sleep() never resolves, and what
 *   must survive is written to `retained` (RTC slow memory, 8 KB on ESP32) or flash before.
 */
export interface Sleep {
  readonly mode: 'light' | 'deep';
  /** Sleeps the MCU for `ms` of clock time between wake cycles (light: resolves on wake). */
  sleep(ms: number): Promise<void>;
  /**
   * Waits `ms` inside a wake cycle (the activity window) in the lightest sleep that still wakes on
   * the modem's UART and on timers (ESP32 light sleep); always resolves.
   */
  idle(ms: number): Promise<void>;
  /** Memory kept across deep sleep, when the board has it. */
  retained?: { read(): Uint8Array | undefined; write(data: Uint8Array): void };
}

/** The image that is running, as its firmware build names it (ThingsBoard's fw_title / fw_version). */
export interface FirmwareImage {
  title: string;
  version: string;
}

/**
 * Two firmware image slots (A/B) and the boot loader's switch, for updates over the air (src/ota).
 *
 * - `update` is the inactive slot, a Flash (NOR: erase a block, then program): the download writes
 *   it at any offset and reads it back, so a download continues after a reboot where it stopped.
 * - `activate()` makes it the next boot image *on trial*; the loader boots it, and keeps booting it
 *   while `running().trial` until the firmware calls `confirm()` (it reached the server) or the trial
 *   runs out of boots (`trialBoots` counts them): then it boots the previous image again.
 *   `rollback()` asks for that at once.
 *
 * Simulator: tools/sim/ota-slots.ts, and the Moddable Linux build: src/platform/moddable/lin/ota.ts
 * (two images and a boot record, one loader: src/ota/ab-slots.ts). ESP32:
 * src/platform/moddable/esp32/ota.ts: the `nextota` partition written raw through the SDK's `flash`
 * module (resumable), the switch and ESP-IDF's app-rollback calls through hardware/ota (docs/ota.md).
 */
export interface FirmwareSlots {
  readonly update: Flash;
  /** The running image; `trial`: booted after activate() and not confirmed yet; `trialBoots`: boots on trial so far (1 = this one). */
  running(): FirmwareImage & { trial: boolean; trialBoots: number };
  /** The first `size` bytes of `update` are the next boot image, on trial. Throws when the loader rejects the image. */
  activate(size: number, image: FirmwareImage): void;
  /** The image on trial works: keep it (ESP-IDF esp_ota_mark_app_valid_cancel_rollback). */
  confirm(): void;
  /** Boot the previous image at the next boot. */
  rollback(): void;
  /** Restarts the device; does not return on a device (the simulator reboots its device from here). */
  restart(): void;
}

/** What src/main.ts gives the platform's `ota/platform` module (openFirmwareSlots) on every target. */
export interface FirmwareSlotsOptions {
  /** The storage partition's name (lin: the slot and record files are named after it; ESP32: unused, the slots are the OTA app partitions). */
  partition: string;
  /** The image this build is (config.firmware): what runs when no update was ever installed. */
  firmware: FirmwareImage;
  log: Log;
  /** The storage partition's key/value store (ESP32: the names of the images activate() installed; lin: unused). */
  kv?: { get(key: number): Uint8Array | undefined; put(key: number, value: Uint8Array): void };
  /** Called by restart() where the process does not end (lin): stop the app and start the firmware again. */
  onRestart?: () => void;
}

/** Everything the firmware app needs from its host, gathered in one place for wiring. */
export interface Platform {
  clock: Clock;
  net: DatagramFactory;
  random: Random;
  log: Log;
  /** Persistent storage (credentials, config, offline queue), when the board has it. */
  flash?: Flash;
  /** The native DTLS engine (mbedTLS through N-API on the host, xsmc on the device), for coaps:// (and TLS for mqtts://). */
  dtls?: DtlsEngineFactory;
  /** TCP connections, for mqtt:// and mqtts:// (embedded:io/socket/tcp on the device, node:net on the host). */
  tcp?: StreamFactory;
}
