/*
 * Throughput and allocation measurement for the codec benches (coap-codec, mqtt-codec): ours
 * against an npm package on the same messages, in the same run.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

/** One encode+decode of every case; returns a value derived from the output (keeps it live). */
export type RoundTrip = () => number;

let blackhole = 0;

/** What the loops summed (read it once at the end, so no result is dead code). */
export function blackholeValue(): number {
  return blackhole;
}

/** Messages (encode+decode) per second over a time-boxed loop. */
export function throughput(fn: RoundTrip, perCall: number, ms: number): number {
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < 256; i++) blackhole += fn();
    calls += 256;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (calls * perCall) / (elapsed / 1000);
}

/**
 * Warm-up (JIT) for both, then 5 interleaved slices of ms / 5 each (so load from other processes
 * hits both alike), keeping each side's best slice: messages per second.
 */
export function compareThroughput(ours: RoundTrip, theirs: RoundTrip, perCall: number, ms: number): { ours: number; theirs: number } {
  throughput(ours, perCall, 200);
  throughput(theirs, perCall, 200);
  let oursRate = 0;
  let theirsRate = 0;
  for (let i = 0; i < 5; i++) {
    oursRate = Math.max(oursRate, throughput(ours, perCall, ms / 5));
    theirsRate = Math.max(theirsRate, throughput(theirs, perCall, ms / 5));
  }
  return { ours: oursRate, theirs: theirsRate };
}

/** A full GC: global.gc under --expose-gc, else one enabled at run time; undefined if neither. */
export function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/**
 * Bytes allocated per message: forced full GC, then N calls, then the growth of heapUsed plus
 * arrayBuffers (off-heap typed-array stores). N is kept small so no scavenge runs in between
 * (checked: a negative or shrinking delta would show it); the median of 7 rounds is reported.
 */
export function bytesPerMessage(fn: RoundTrip, perCall: number, gc: () => void): number {
  const calls = 250;
  const samples: number[] = [];
  for (let round = 0; round < 7; round++) {
    gc();
    const m0 = process.memoryUsage();
    for (let i = 0; i < calls; i++) blackhole += fn();
    const m1 = process.memoryUsage();
    samples.push((m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers)) / (calls * perCall));
  }
  samples.sort((a, b) => a - b);
  return samples[3]!;
}

export const fmtRate = (x: number): string => Math.round(x).toLocaleString('en-US');
