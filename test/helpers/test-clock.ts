import type { Clock } from '../../src/clock.js';

/** A clock that moves only when a test moves it, so expiry is tested without sleeping. */
export interface TestClock extends Clock {
  /** Moves time forward by `ms` milliseconds. */
  advance(ms: number): void;
  /** Jumps to an absolute time (milliseconds since the epoch, or a Date). */
  set(time: number | Date): void;
}

/** Starts at `start` (default: the real time now, so tokens it stamps look current to real clients). */
export function createTestClock(start: number | Date = Date.now()): TestClock {
  let now = typeof start === 'number' ? start : start.getTime();
  return {
    now: () => now,
    advance(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance() takes a non-negative duration, got ${ms}`);
      now += ms;
    },
    set(time) {
      now = typeof time === 'number' ? time : time.getTime();
    },
  };
}
