/*
 * The slice of Moddable SDK modules the device build uses, for `tsc -p src/tsconfig.json` when no
 * SDK is installed. Written from the declarations of Moddable SDK 8.2.3 ($MODDABLE/typings and
 * $MODDABLE/xs/includes/xs.d.ts) and kept to their shapes, so code that checks here checks there:
 * `npm run build:moddable` type-checks the same code against the SDK's own typings (mcconfig).
 * Where the SDK's declaration omits a member the runtime has (UDP.close), the code casts locally
 * rather than widening these declarations.
 */

/** xs.d.ts: trace() prints to the debugger / serial console. */
interface Trace {
  (...log: (string | number | boolean)[]): void;
  left(log: string | ArrayBufferLike, conversation?: string): void;
  center(log: string | ArrayBufferLike, conversation?: string): void;
  right(log: string | ArrayBufferLike, conversation?: string): void;
}
declare const trace: Trace;

/** xs.d.ts: memory owned by the host (flash, resources). */
declare class HostBuffer {
  readonly byteLength: number;
  private brand: boolean;
}
interface ArrayBufferTypes {
  HostBuffer: HostBuffer;
}
interface ByteBufferTypes extends ArrayBufferTypes {
  Uint8Array: Uint8Array;
  Uint8ClampedArray: Uint8ClampedArray;
  Int8Array: Int8Array;
  DataView: DataView;
}
type ByteBuffer = ByteBufferTypes[keyof ByteBufferTypes];

declare module 'timer' {
  export type TimerCallback = (timer: Timer) => void;
  class Timer {
    private constructor();
    static set: (callback: TimerCallback, interval?: number, repeat?: number) => Timer;
    static repeat: (callback: TimerCallback, interval: number) => Timer;
    static schedule: (timer: Timer, interval?: number, repeat?: number) => void;
    static clear: (timer: Timer | undefined | null) => void;
    static delay: (milliseconds: number) => void;
    private brand: boolean;
  }
  export { Timer as default };
}

declare module 'time' {
  var Time: {
    set: (seconds: number) => void;
    timezone: number;
    dst: number;
    ticks: number;
    delta(start: number, end?: number): number;
    readonly microseconds?: number;
  };
  export { Time as default };
}

declare module 'net' {
  var Net: {
    get(what: 'IP', mode?: 'station' | 'ap' | 'ethernet'): string;
    get(what: 'MAC', mode?: 'station' | 'ap' | 'ethernet'): string;
    get(what: 'SSID'): string;
    get(what: 'BSSID'): string;
    get(what: 'RSSI'): number;
    get(what: 'DNS'): string[];
    resolve(name: string, callback: (name: string, address?: string) => void): void;
  };
  export { Net as default };
}

declare module 'embedded:io/socket/udp' {
  class UDP {
    constructor(
      options: {
        port?: number;
        address?: string;
        onReadable?: (this: UDP, packets: number) => void;
        onError?: () => void;
        format?: 'buffer';
        target?: any;
      } & ({} | { multicast: string; timeToLive: number }),
    );
    write(buffer: ByteBuffer, address: string, port: number): void;
    read(): ArrayBuffer & { address: string; port: number };
    get format(): 'buffer';
    set format(value: 'buffer');
  }
  export default UDP;
}

declare module 'embedded:io/socket/tcp' {
  /** As the SDK's typings/embedded_io/socket/tcp.d.ts (lin takes a numeric IPv4 `address` only). */
  class TCP {
    constructor(
      options: ({ address: string } | { host: string }) & {
        port: number;
        nodelay?: boolean;
        onReadable?: (this: TCP, bytes: number) => void;
        onWritable?: (this: TCP, bytes: number) => void;
        onError?: (this: TCP) => void;
        format?: 'number' | 'buffer';
        target?: any;
      },
    );
    readonly remoteAddress: string | undefined;
    readonly remotePort: number | undefined;
    read(byteLength?: number): number | ArrayBuffer;
    write(value: number | ByteBuffer): void;
    close(): void;
    get format(): 'number' | 'buffer';
    set format(value: 'number' | 'buffer');
  }
  export default TCP;
}

declare module 'embedded:io/_common' {
  export type PinSpecifier = number | string;
  export type PortSpecifier = number | string;
}

declare module 'embedded:io/i2c' {
  import { PinSpecifier, PortSpecifier } from 'embedded:io/_common';
  class I2C {
    constructor(options: {
      data: PinSpecifier;
      clock: PinSpecifier;
      hz: number;
      address: number;
      port?: PortSpecifier;
      format?: 'buffer';
      target?: any;
    });
    readonly resolution: number;
    write(value: ByteBuffer, stop?: boolean): void;
    read(byteLength: number, stop?: boolean): ArrayBuffer;
    read(buffer: ByteBuffer, stop?: boolean): number;
    get format(): 'buffer';
    set format(value: 'buffer');
  }
  export default I2C;
}

declare module 'embedded:io/analog' {
  import { PinSpecifier } from 'embedded:io/_common';
  class Analog {
    constructor(options: { pin: PinSpecifier; resolution?: number; onReadable?: (this: Analog) => void; format?: 'number' });
    readonly resolution: number;
    onReadable?: () => void;
    read(): number;
    get format(): 'number';
    set format(value: 'number');
    target?: any;
  }
  export default Analog;
}

declare module 'mc/config' {
  var Config: { file: { root: string } } & Record<string, any>;
  export { Config as default };
}

declare module 'flash' {
  class Flash {
    constructor(partition?: string);
    constructor(offset: number, byteLength: number);
    erase(sector: number): void;
    read(offset: number, byteLength: number, useHostBuffer?: boolean): ArrayBuffer | HostBuffer;
    write(offset: number, byteLength: number, buffer: ByteBuffer): void;
    readonly byteLength: number;
    readonly blockSize: number;
    map(): HostBuffer;
  }
  export { Flash as default };
}

declare module 'Resource' {
  interface ResourcePrototype extends HostBuffer {
    slice(begin: number, end?: number): ArrayBuffer;
    slice(begin: number, end?: number, copy?: boolean): HostBuffer;
  }
  export interface ResourceConstructor {
    new (path: string): ResourcePrototype;
    exists(path: string): boolean;
  }
  const Resource: ResourceConstructor;
  export { Resource as default };
}

declare module 'file' {
  export class File {
    constructor(path: string, write?: boolean);
    read<T extends typeof ArrayBuffer | typeof String>(type: T, bytes?: number): T extends typeof String ? string : InstanceType<T>;
    write(value: ArrayBufferLike | ArrayBuffer | string, ...moreValues: (ArrayBuffer | string)[]): void;
    close(): void;
    readonly length: number;
    position: number;
    static delete(path: string): boolean;
    static exists(path: string): boolean;
    static rename(from: string, to: string): boolean;
  }
}

// $(MODDABLE)/modules/crypt/digest (esp32 OTA checksums: src/platform/moddable/esp32/ota.ts), as the SDK's typings/crypt.d.ts.
declare module 'crypt' {
  type DigestType = 'MD5' | 'SHA1' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512';
  export class Digest {
    constructor(type: DigestType);
    write(message: string | ArrayBuffer): void;
    close(): ArrayBuffer;
    reset(): void;
    get blockSize(): number;
    get outputSize(): number;
    update(message: string | ArrayBuffer): void;
  }
}
