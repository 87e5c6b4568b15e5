import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * One budget per request for the time it spends waiting on the cache store (Redis). A bound per
 * command is not a bound per answer: a request that meets an unresponsive Redis twice (the rate
 * limit, then the engine's session) would wait twice. Every command a request sends, whichever
 * code sends it, gets what is left of that request's one budget, and fails at once when none is
 * left, so the request's 503 goes out within the bound docs/operations.md states.
 *
 * Only waiting counts, not the request's own work between commands: a sign-in hashes a password
 * (hundreds of milliseconds of CPU on a busy machine) between two commands, and a budget that
 * ran from the request's arrival refused its second command with Redis healthy. Commands in
 * flight together count once. A request that waits for another's command (the /token rate limit
 * sends one command for a batch of requests, src/http/rate-limit.ts) counts that wait through
 * `waitFor`.
 */
export interface RequestDeadline {
  /** A new request: what it runs shares one budget. */
  begin(): RequestScope;
  /** Milliseconds left of the current request's budget (at least 0); undefined outside a request. */
  remaining(): number | undefined;
  /** Counts the time until `work` settles as the current request's waiting (no-op outside a request). */
  waitFor<T>(work: Promise<T>): Promise<T>;
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
  /** The whole budget of one request's waiting on the cache. */
  budgetMs: number;
  /**
   * A monotonic clock in milliseconds. Waiting on a socket is real time, whatever a test does
   * to the injected wall clock, so this is never the `Clock` of src/clock.ts.
   */
  monotonicNow: () => number;
}

/**
 * The cache waiting of one request, all commands together, is bounded by this; the rest of the
 * promised second (docs/operations.md, "Failure behaviour") is left to the answer itself.
 */
export const REQUEST_CACHE_BUDGET_MS = 700;

interface RequestState {
  /** Waiting already over, in ms. */
  waited: number;
  /** Waits in flight now, and since when the first of them began. */
  inFlight: number;
  since: number;
  ended: boolean;
}

export function createRequestDeadline(options: RequestDeadlineOptions): RequestDeadline {
  const storage = new AsyncLocalStorage<RequestState>();
  const now = options.monotonicNow;
  const live = () => {
    const request = storage.getStore();
    return request === undefined || request.ended ? undefined : request;
  };
  return {
    begin() {
      const request: RequestState = { waited: 0, inFlight: 0, since: 0, ended: false };
      return {
        run: (fn) => storage.run(request, fn),
        end: () => {
          request.ended = true;
        },
      };
    },
    remaining() {
      const request = live();
      if (request === undefined) return undefined;
      const waiting = request.inFlight > 0 ? now() - request.since : 0;
      return Math.max(0, options.budgetMs - request.waited - waiting);
    },
    waitFor(work) {
      const request = live();
      if (request === undefined) return work;
      if (request.inFlight === 0) request.since = now();
      request.inFlight += 1;
      const settle = () => {
        request.inFlight -= 1;
        if (request.inFlight === 0) request.waited += now() - request.since;
      };
      work.then(settle, settle);
      return work;
    },
  };
}
