/*
 * Simulated I2C bus for running the sensor drivers unchanged on the host.
 *
 * SimI2CBus routes transfers by 7-bit address to attached parts. createSimI2C(bus) returns a class
 * with the ECMA-419 I2C IO constructor semantics (embedded:io/i2c: `new I2C({address, hz, ...})`,
 * `read(lengthOrBuffer, stop)`, `write(buffer, stop)`, `close()`), to pass as `options.sensor.io`.
 * Like Moddable's I2C, a NACK or bus error is a thrown Error.
 */
import type { I2CIo, I2CIoConstructor, I2COptions } from '../../../src/platform/types';

/** A register-level part on the bus. Throw from read/write to NACK. */
export interface SimI2CDevice {
  write(bytes: Uint8Array, stop: boolean): void;
  read(length: number, stop: boolean): Uint8Array;
}

/** Fault counters shared by the simulated parts: each counts transfers/measurements still to fault; Infinity = always. */
export interface SimFaults {
  /** The part NACKs this many transfers (as if absent or busy). */
  nack: number;
  /** Flip a data byte in this many responses (CRC / data corruption). */
  badCrc: number;
  /** This many measurements report an out-of-range (skipped) raw value. */
  outOfRange: number;
}

export function noFaults(): SimFaults {
  return { nack: 0, badCrc: 0, outOfRange: 0 };
}

/** Consumes one occurrence of a fault; true if it applies now. */
export function takeFault(faults: SimFaults, kind: keyof SimFaults): boolean {
  if (faults[kind] <= 0) return false;
  faults[kind]--;
  return true;
}

export function nackError(address: number, op: 'read' | 'write'): Error {
  return new Error(`I2C ${op} failed: NACK from 0x${address.toString(16).padStart(2, '0')}`);
}

export class SimI2CBus {
  /** Every transfer throws "bus stuck" while set (SDA held low). */
  stuck = false;
  /** Options of every IO opened on this bus, in order (lets tests check the drivers' defaults). */
  readonly opened: I2COptions[] = [];
  /** Count of transfers, for tests. */
  transfers = 0;
  #devices = new Map<number, SimI2CDevice>();

  attach(address: number, device: SimI2CDevice): this {
    if (this.#devices.has(address)) throw new Error(`SimI2CBus: address 0x${address.toString(16)} already in use`);
    this.#devices.set(address, device);
    return this;
  }

  detach(address: number): void {
    this.#devices.delete(address);
  }

  write(address: number, bytes: Uint8Array, stop: boolean): void {
    this.#device(address, 'write').write(bytes, stop);
  }

  read(address: number, length: number, stop: boolean): Uint8Array {
    const data = this.#device(address, 'read').read(length, stop);
    if (data.length !== length) throw new Error(`SimI2CBus: part at 0x${address.toString(16)} returned ${data.length} of ${length} bytes`);
    return data;
  }

  #device(address: number, op: 'read' | 'write'): SimI2CDevice {
    this.transfers++;
    if (this.stuck) throw new Error('bus stuck');
    const device = this.#devices.get(address);
    if (!device) throw nackError(address, op);
    return device;
  }
}

function bytesOf(buffer: ArrayBufferView | ArrayBuffer): Uint8Array {
  return buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** An I2C IO class bound to `bus`, for `options.sensor.io`. */
export function createSimI2C(bus: SimI2CBus): I2CIoConstructor {
  return class SimI2C implements I2CIo {
    readonly #address: number;
    #closed = false;

    constructor(options: I2COptions) {
      const { address, hz } = options;
      if (!Number.isInteger(address) || address < 0 || address > 0x7f) throw new RangeError(`invalid address ${address}`);
      if (hz !== undefined && !(hz > 0 && hz <= 3_400_000)) throw new RangeError(`invalid hz ${hz}`);
      this.#address = address;
      bus.opened.push({ ...options });
    }

    read(byteLengthOrBuffer: number | ArrayBufferView, stop = true): ArrayBuffer | void {
      this.#check();
      if (typeof byteLengthOrBuffer === 'number') {
        const data = bus.read(this.#address, byteLengthOrBuffer, stop);
        return data.slice().buffer;
      }
      const into = bytesOf(byteLengthOrBuffer);
      into.set(bus.read(this.#address, into.length, stop));
    }

    write(buffer: ArrayBufferView | ArrayBuffer, stop = true): void {
      this.#check();
      bus.write(this.#address, bytesOf(buffer).slice(), stop);
    }

    close(): void {
      this.#closed = true;
    }

    #check(): void {
      if (this.#closed) throw new Error('closed');
    }
  };
}
