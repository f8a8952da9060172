/*
 * Simulated Sensirion SHT3x-DIS at command level (datasheet section 4): single-shot measurements
 * without clock stretching, status register, clear status, soft reset, heater. Data words carry the
 * datasheet CRC-8. With `enforceTiming`, a read before the conversion time has passed on the
 * environment's clock is NACKed, as the real part does.
 */
import { type SimFaults, type SimI2CDevice, nackError, noFaults, takeFault } from './bus';
import type { Environment } from './environment';

const ADDRESS = 0x44;
/** Commands kept in SimSht3x.commands. */
export const COMMAND_LOG_LIMIT = 64;

/** Max conversion times, datasheet table 4. */
const Conversion: Readonly<Record<number, number>> = Object.freeze({
  0x2400: 15, // high repeatability
  0x240b: 6, // medium
  0x2416: 4, // low
  0x2c06: 15, // clock-stretching variants, answered the same way
  0x2c0d: 6,
  0x2c10: 4,
});

const STATUS_HEATER = 1 << 13;
const STATUS_RESET = 1 << 4;
const STATUS_COMMAND_FAILED = 1 << 1;

export interface SimSht3xOptions {
  address?: number;
  /** NACK reads until the conversion time has elapsed on the environment's clock. */
  enforceTiming?: boolean;
}

/** Datasheet CRC-8 (poly 0x31, init 0xFF); written here independently of the driver's. */
function crc(a: number, b: number): number {
  let c = 0xff;
  for (const byte of [a, b]) {
    c ^= byte;
    for (let i = 0; i < 8; i++) c = (c & 0x80 ? (c << 1) ^ 0x31 : c << 1) & 0xff;
  }
  return c;
}

export class SimSht3x implements SimI2CDevice {
  readonly address: number;
  readonly faults: SimFaults = noFaults();
  readonly enforceTiming: boolean;
  /** The last COMMAND_LOG_LIMIT commands received, oldest first, for tests. */
  readonly commands: number[] = [];
  #env: Environment;
  #status = STATUS_RESET;
  #pending: Uint8Array | undefined;
  #readyAt = 0;

  constructor(env: Environment, options: SimSht3xOptions = {}) {
    this.#env = env;
    this.address = options.address ?? ADDRESS;
    this.enforceTiming = options.enforceTiming ?? false;
  }

  get heater(): boolean {
    return (this.#status & STATUS_HEATER) !== 0;
  }

  write(bytes: Uint8Array): void {
    if (takeFault(this.faults, 'nack')) throw nackError(this.address, 'write');
    if (bytes.length !== 2) throw nackError(this.address, 'write');
    const command = (bytes[0] << 8) | bytes[1];
    this.commands.push(command);
    // a simulation runs for days of device time: keep the log bounded
    if (this.commands.length > COMMAND_LOG_LIMIT) this.commands.splice(0, this.commands.length - COMMAND_LOG_LIMIT);
    this.#status &= ~STATUS_COMMAND_FAILED;
    const now = this.#env.clock.now();
    const conversion = Conversion[command];
    if (conversion !== undefined) {
      const t = Math.round(((this.#env.temperature() + 45) * 65535) / 175);
      const rh = Math.round((this.#env.humidity() * 65535) / 100);
      this.#pending = this.#words(clamp16(t), clamp16(rh));
      this.#readyAt = now + conversion;
      return;
    }
    this.#pending = undefined;
    switch (command) {
      case 0xf32d:
        this.#pending = this.#words(this.#status);
        this.#readyAt = now;
        return;
      case 0x3041:
        this.#status &= ~(STATUS_RESET | 0x8c00); // alert bits and reset flag
        return;
      case 0x30a2:
        this.#status = STATUS_RESET;
        return;
      case 0x306d:
        this.#status |= STATUS_HEATER;
        return;
      case 0x3066:
        this.#status &= ~STATUS_HEATER;
        return;
      default:
        this.#status |= STATUS_COMMAND_FAILED;
        throw nackError(this.address, 'write');
    }
  }

  read(length: number): Uint8Array {
    if (takeFault(this.faults, 'nack')) throw nackError(this.address, 'read');
    const data = this.#pending;
    // No data (or conversion still running): the read header is NACKed, datasheet section 4.5.
    if (!data || (this.enforceTiming && this.#env.clock.now() < this.#readyAt)) throw nackError(this.address, 'read');
    this.#pending = undefined;
    const out = data.slice(0, length);
    if (out.length < length) {
      const padded = new Uint8Array(length).fill(0xff);
      padded.set(out);
      return padded;
    }
    if (takeFault(this.faults, 'badCrc')) out[out.length > 3 ? 4 : 1] ^= 0x01;
    return out;
  }

  #words(...words: number[]): Uint8Array {
    const out = new Uint8Array(words.length * 3);
    words.forEach((w, i) => {
      out[i * 3] = w >> 8;
      out[i * 3 + 1] = w & 0xff;
      out[i * 3 + 2] = crc(w >> 8, w & 0xff);
    });
    return out;
  }
}

function clamp16(v: number): number {
  return v < 0 ? 0 : v > 0xffff ? 0xffff : v;
}
