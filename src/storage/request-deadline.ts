import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * One deadline per request for everything it asks the cache store (Redis). A bound per command
 * is not a bound per answer: a request that meets an unresponsive Redis twice (the rate limit,
 * then the engine's session) would wait twice. Every command a request sends, whichever code
 * sends it, gets the time left of that request's one budget, and fails at once when none is
 * left, so the request's 503 goes out within the bound docs/operations.md states.
 *
 * The budget starts when the request arrives, not with its first command: a request that waits
 * for another's command (the /token rate limit sends one command for a batch of requests,
 * src/http/rate-limit.ts) has spent that time too.
 */
export interface RequestDeadline {
  /** A new request, from now: what it runs shares one budget. */
  begin(): RequestScope;
  /** Milliseconds left to the current request's deadline (at least 0); undefined outside a request. */
  remaining(): number | undefined;
}

export interface RequestScope {
  /** Runs `fn` and everything it starts as part of this request. */
  run<T>(fn: () => T): T;
  /**
   * The request is answered. Work it left behind (a timer, a second delete) is no longer part of
   * an answer anyone waits for, and gets the cache's own per-command bound again.
   */
  end(): void;
}

export interface RequestDeadlineOptions {
  /** The whole budget of one request's cache work. */
  budgetMs: number;
  /**
   * A monotonic clock in milliseconds. Waiting on a socket is real time, whatever a test does
   * to the injected wall clock, so this is never the `Clock` of src/clock.ts.
   */
  monotonicNow: () => number;
}

/**
 * The cache work of one request, all commands together, is bounded by this; the rest of the
 * promised second (docs/operations.md, "Failure behaviour") is left to the answer itself.
 */
export const REQUEST_CACHE_BUDGET_MS = 800;

export function createRequestDeadline(options: RequestDeadlineOptions): RequestDeadline {
  const storage = new AsyncLocalStorage<{ deadline: number; ended?: boolean }>();
  return {
    begin() {
      const request: { deadline: number; ended?: boolean } = { deadline: options.monotonicNow() + options.budgetMs };
      return {
        run: (fn) => storage.run(request, fn),
        end: () => {
          request.ended = true;
        },
      };
    },
    remaining() {
      const request = storage.getStore();
      if (request === undefined || request.ended) return undefined;
      return Math.max(0, request.deadline - options.monotonicNow());
    },
  };
}
