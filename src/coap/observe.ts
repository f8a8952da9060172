/* RFC 7641 §3.4 notification ordering. */

const HALF = 1 << 23;
/** After this long without a notification the sequence number no longer orders (RFC 7641 §3.4). */
export const OBSERVE_REORDER_WINDOW_MS = 128_000;

/**
 * True if a notification (v2 received at t2) is fresher than the last one (v1 at t1). Observe
 * values are 24-bit and wrap; after 128 s any value is accepted.
 */
export function isFresher(v1: number, t1: number, v2: number, t2: number): boolean {
  return (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF) || t2 > t1 + OBSERVE_REORDER_WINDOW_MS;
}
