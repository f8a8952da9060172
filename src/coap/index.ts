/* Public API of the CoAP layer. */
export * from './types';
export * from './errors';
export * from './codec';
export { encodeUtf8, decodeUtf8, utf8Length, writeUtf8 } from './utf8';
export { isFresher, OBSERVE_REORDER_WINDOW_MS } from './observe';
export { szxForMtu, concatChunks, BLOCK_HEADER_ALLOWANCE } from './block';
export { CoapClient, type CoapClientOptions, type CoapClientStats, type Observation } from './client';
