/*
 * The slice of Moddable SDK modules the device build uses, typed for `tsc -p src/tsconfig.json`.
 * With the SDK installed, $MODDABLE/typings has the full declarations; these match them.
 */
declare function trace(...args: unknown[]): void;

declare module 'timer' {
  type TimerID = object;
  const Timer: {
    set(callback: (id: TimerID) => void, delay?: number, repeat?: number): TimerID;
    clear(id: TimerID): void;
  };
  export { Timer as default };
}

declare module 'time' {
  const Time: { readonly ticks: number; delta(start: number, end?: number): number };
  export { Time as default };
}

declare module 'net' {
  const Net: { resolve(host: string, callback: (name: string, address?: string) => void): void; get(property: string): unknown };
  export { Net as default };
}

declare module 'embedded:io/socket/udp' {
  interface UDPOptions {
    port?: number;
    address?: string;
    onReadable?(this: UDP, count: number): void;
    onError?(this: UDP): void;
  }
  class UDP {
    constructor(options: UDPOptions);
    read(): ArrayBuffer & { address: string; port: number };
    write(buffer: ArrayBufferLike | ArrayBufferView, address: string, port: number): void;
    close(): void;
  }
  export { UDP as default };
}

declare module 'embedded:io/i2c' {
  class I2C {
    constructor(options: { data: number; clock: number; hz?: number; address: number; port?: number });
    read(byteLength: number | ArrayBufferView, stop?: boolean): ArrayBuffer | void;
    write(buffer: ArrayBufferLike | ArrayBufferView, stop?: boolean): void;
    close(): void;
  }
  export { I2C as default };
}

declare module 'embedded:io/analog' {
  class Analog {
    constructor(options: { pin: number; resolution?: number });
    read(): number;
    readonly resolution: number;
    close(): void;
  }
  export { Analog as default };
}

declare module 'mc/config' {
  const config: Record<string, unknown>;
  export { config as default };
}

declare module 'flash' {
  class Flash {
    constructor(partition: string);
    read(offset: number, byteLength: number): ArrayBuffer;
    write(offset: number, byteLength: number, buffer: ArrayBufferLike | ArrayBufferView): void;
    erase(sector: number): void;
    readonly byteLength: number;
    readonly blockSize: number;
  }
  export { Flash as default };
}

declare module 'Resource' {
  class Resource extends ArrayBuffer {
    constructor(path: string);
    static exists(path: string): boolean;
  }
  export { Resource as default };
}
