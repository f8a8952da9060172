/*
 * `flash` on the Moddable Linux host (mcconfig -p lin), which has no flash module: Moddable's Flash
 * API over a file through the SDK's `file` module, with NOR semantics so the storage code meets the
 * same rules as on ESP32: erase sets a block to 0xFF, a write can only clear bits (new = old AND
 * data). The image is `<config.file.root>flash-<partition>.bin` (/tmp/ on lin), 80 KB of 4 KB
 * blocks unless config.flash says otherwise; it survives restarts of the app, as flash does.
 */
import { File } from 'file';
import config from 'mc/config';

const BLOCK = 4096;

export default class Flash {
  readonly byteLength: number;
  readonly blockSize = BLOCK;
  #path: string;

  /** `byteLength`: this partition's size (the OTA stand-in's image slots); default config.flash.size or 80 KB. */
  constructor(partition = 'storage', byteLength?: number) {
    const c = (config.flash ?? {}) as { size?: number };
    this.byteLength = Number(byteLength ?? c.size ?? 80 * 1024);
    this.#path = `${config.file?.root ?? '/tmp/'}flash-${partition}.bin`;
    const exists = File.exists(this.#path);
    const f = new File(this.#path, true);
    try {
      if (!exists || f.length !== this.byteLength) {
        f.position = 0;
        const erased = new Uint8Array(BLOCK).fill(0xff).buffer;
        for (let o = 0; o < this.byteLength; o += BLOCK) f.write(erased);
      }
    } finally {
      f.close();
    }
  }

  #check(offset: number, byteLength: number): void {
    if (!(offset >= 0 && byteLength >= 0 && offset + byteLength <= this.byteLength)) throw new RangeError(`flash: ${byteLength} bytes at ${offset} outside the ${this.byteLength}-byte partition`);
  }

  read(offset: number, byteLength: number): ArrayBuffer {
    this.#check(offset, byteLength);
    if (byteLength === 0) return new ArrayBuffer(0);
    const f = new File(this.#path);
    try {
      f.position = offset;
      return f.read(ArrayBuffer, byteLength);
    } finally {
      f.close();
    }
  }

  write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    this.#check(offset, byteLength);
    if (byteLength === 0) return;
    const src = ArrayBuffer.isView(buffer) ? new Uint8Array(buffer.buffer, buffer.byteOffset, byteLength) : new Uint8Array(buffer, 0, byteLength);
    const out = new Uint8Array(this.read(offset, byteLength));
    for (let i = 0; i < byteLength; i++) out[i] = out[i]! & src[i]!;
    const f = new File(this.#path, true);
    try {
      f.position = offset;
      f.write(out.buffer);
    } finally {
      f.close();
    }
  }

  erase(sector: number): void {
    this.#check(sector * BLOCK, BLOCK);
    const f = new File(this.#path, true);
    try {
      f.position = sector * BLOCK;
      f.write(new Uint8Array(BLOCK).fill(0xff).buffer);
    } finally {
      f.close();
    }
  }
}
