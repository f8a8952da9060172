declare module 'dtls/native' {
  import type { DtlsEngine, DtlsEngineOptions } from 'dtls/engine';
  export class DtlsEndpoint implements DtlsEngine {
    constructor(options: DtlsEngineOptions);
    onSend?: ((record: Uint8Array) => void) | null;
    step(): number;
    handshake(): number;
    feed(datagram: Uint8Array | ArrayBuffer): number;
    read(): Uint8Array | null;
    write(plaintext: Uint8Array | ArrayBuffer): number;
    timerMs(): number;
    readonly timerGeneration: number;
    timerExpired(): number;
    saveSession(): Uint8Array | null;
    saveContext(): Uint8Array | null;
    peerCertificate(): Uint8Array | null;
    close(): void;
    destroy(): void;
    readonly state: 'handshaking' | 'connected' | 'closed' | 'failed';
    readonly resumed: boolean;
    readonly restored: boolean;
    readonly cidAvailable: boolean;
    readonly cidInUse: boolean;
    readonly maxPayload: number;
    readonly ciphersuite: string;
  }
  export function create(options: DtlsEngineOptions): DtlsEndpoint;
  export const defaults: Readonly<{ tickets: boolean; restore: null }>;
  export default DtlsEndpoint;
}
