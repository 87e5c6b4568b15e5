/** Time as Tessera sees it. Injected wherever expiry matters, so tests move time instead of sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Seconds since the epoch, the unit of OAuth's `exp` and `iat` (RFC 7519 §2 NumericDate). */
export const epochSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000);
