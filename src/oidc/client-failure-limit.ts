import type { Clock } from '../clock.js';
import type { RateLimiter } from '../http/rate-limit.js';

/**
 * Failed requests at the token endpoints (/token, introspection, revocation), limited per source
 * address and the client id the request claims (config `rateLimits.tokenFailures`).
 *
 * Keyed by source as well as by client so that nobody can spend a client's budget from
 * elsewhere: the per-client limit counts only requests that authenticated as the client
 * (src/oidc/token-rate-limit.ts), and failures shut out only the address they came from. The
 * client id is part of the key so that one misconfigured client behind a shared address (a
 * NAT) does not shut out the other clients there.
 *
 * Once a source has used up its budget for a client, every request of that source for that
 * client is refused until the window ends, a correct credential included: otherwise the 429s
 * would tell a guesser which of its attempts was right. This refusal is decided from memory
 * (`retryAfter` is synchronous and costs no store call, so the introspection fast path keeps
 * answering without awaiting anything); the failures themselves are counted in the shared store.
 * A node learns that a budget is spent from the answer to a failure it counts itself, so across
 * N nodes a source gets at most N - 1 more failed attempts than its budget, and a burst of
 * concurrent attempts at most its own size more on a node that had not yet learnt it.
 */
export interface ClientFailureLimit {
  /** The seconds `source` must wait before it tries `clientId` again; undefined while it may. */
  retryAfter(source: string, clientId: string | undefined): number | undefined;
  /**
   * Counts a failure that is not answered yet: the seconds to wait (answer 429 instead) when it
   * is beyond the budget, else undefined.
   */
  consume(source: string, clientId: string | undefined): Promise<number | undefined>;
  /** Counts a failure that was already answered. */
  record(source: string, clientId: string | undefined): Promise<void>;
  /** Whether any source is refused now: a hot path asks this before it works out its own source. */
  shutsOutAny(): boolean;
}

/** Sources remembered as over their budget, at most; the oldest is forgotten first (the store still counts it). */
const MAX_REMEMBERED = 10_000;

export function createClientFailureLimit(deps: { limiter: RateLimiter; clock: Clock; maxRemembered?: number }): ClientFailureLimit {
  const { limiter, clock } = deps;
  const maxRemembered = deps.maxRemembered ?? MAX_REMEMBERED;
  /** Limiter key → epoch ms until which it is refused. */
  const shutOut = new Map<string, number>();
  // An address holds no space, so the source ends at the first one whatever the client id holds.
  const keyOf = (source: string, clientId: string | undefined) => `${source} ${clientId ?? ''}`;

  async function count(source: string, clientId: string | undefined): Promise<number | undefined> {
    const key = keyOf(source, clientId);
    const { over, spent } = await limiter.count(key);
    if (spent !== undefined) {
      shutOut.delete(key);
      if (shutOut.size >= maxRemembered) shutOut.delete(shutOut.keys().next().value!);
      shutOut.set(key, clock.now() + spent * 1000);
    }
    return over;
  }

  return {
    retryAfter(source, clientId) {
      if (shutOut.size === 0) return undefined;
      const key = keyOf(source, clientId);
      const until = shutOut.get(key);
      if (until === undefined) return undefined;
      const left = until - clock.now();
      if (left <= 0) {
        shutOut.delete(key);
        return undefined;
      }
      return Math.ceil(left / 1000);
    },
    consume: count,
    async record(source, clientId) {
      await count(source, clientId);
    },
    shutsOutAny: () => shutOut.size > 0,
  };
}
