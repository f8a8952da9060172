export * from './engine';
export { DtlsDatagram, DEFAULT_RETRANSMIT_MS, DEFAULT_RETRANSMIT_MAX_MS, DTLS_OVERHEAD } from './datagram';
export type { DtlsDatagramOptions, DtlsDatagramState } from './datagram';
