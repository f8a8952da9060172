/*
 * Host clocks implementing src/platform Clock.
 *
 * ManualClock: time moves only when a test calls advance()/runUntil(); timers fire in order, so
 *   a retransmission schedule can be asserted to the millisecond.
 * ScaledClock: virtual time = start + wall elapsed * speed, timers on Node's setTimeout scaled down;
 *   used with real sockets (the simulator), where I/O happens in wall time.
 */
import type { Clock, TimerHandle } from '../../src/platform/types';

interface ManualTimer {
  id: number;
  due: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  #now: number;
  #epochOffset: number;
  #timers: ManualTimer[] = [];
  #nextId = 1;

  constructor(startMs = 0, epochStartMs = 1_700_000_000_000) {
    this.#now = startMs;
    this.#epochOffset = epochStartMs - startMs;
  }

  now(): number {
    return this.#now;
  }

  epochMs(): number {
    return this.#now + this.#epochOffset;
  }

  setTimer(callback: () => void, ms: number): TimerHandle {
    const timer = { id: this.#nextId++, due: this.#now + Math.max(0, ms), callback };
    this.#timers.push(timer);
    this.#timers.sort((a, b) => a.due - b.due || a.id - b.id);
    return timer.id;
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Due time of the next timer, or undefined. */
  nextDue(): number | undefined {
    return this.#timers[0]?.due;
  }

  /** Advances time by ms, firing every timer that falls due, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      const next = this.#timers[0];
      if (!next || next.due > target) break;
      this.#timers.shift();
      this.#now = next.due;
      next.callback();
    }
    this.#now = Math.max(this.#now, target);
  }

  /**
   * Async form for code that awaits between timers: fires timers one by one up to target,
   * letting promise jobs (and optionally real I/O) run between them.
   */
  async advanceAsync(ms: number, settle: () => Promise<void> = flushMicrotasks): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers[0];
      if (!next || next.due > target) break;
      this.#timers.shift();
      this.#now = next.due;
      next.callback();
      await settle();
    }
    this.#now = Math.max(this.#now, target);
  }
}

/** Lets queued promise jobs run (several turns, for chains of awaits). */
export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

export class ScaledClock implements Clock {
  readonly speed: number;
  #wallStart = performance.now();
  #virtualStart: number;
  #epochStart: number;

  constructor(speed = 1, virtualStartMs = 0, epochStartMs = Date.now()) {
    if (!(speed > 0)) throw new RangeError('speed must be > 0');
    this.speed = speed;
    this.#virtualStart = virtualStartMs;
    this.#epochStart = epochStartMs;
  }

  now(): number {
    return this.#virtualStart + (performance.now() - this.#wallStart) * this.speed;
  }

  epochMs(): number {
    return Math.round(this.#epochStart + (this.now() - this.#virtualStart));
  }

  setTimer(callback: () => void, ms: number): TimerHandle {
    const t = setTimeout(callback, Math.max(0, ms) / this.speed);
    return t;
  }

  clearTimer(handle: TimerHandle): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}
