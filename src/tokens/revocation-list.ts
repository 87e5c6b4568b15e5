import type { Clock } from '../clock.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { CacheStore } from '../storage/cache.js';
import type { RevokedJtiRepository } from '../storage/revoked-jti-repository.js';

export const REVOCATION_CHANNEL = 'revocations';
const key = (jti: string) => `revoked:jti:${jti}`;

/**
 * The revocation list of JWT access tokens (docs/tokens.md, "Revocation"): a revoked JWT's
 * `jti` is kept until the token's `exp`, in PostgreSQL (durable), in the cache store (shared by
 * every node) and in each node's memory (so the hot path asks nobody). A pub/sub message puts a
 * revocation into every node's memory at once; a periodic reload from PostgreSQL repairs any
 * message lost while Redis was away.
 */
export function createRevocationList(deps: {
  cache: CacheStore;
  repository: RevokedJtiRepository;
  clock: Clock;
  /**
   * True while this node's pub/sub subscription is known to work (its heartbeat returns within
   * 1 s): then every revocation has reached local memory and the hot path asks nobody else.
   */
  subscriptionHealthy?: () => boolean;
}) {
  const { cache, repository, clock } = deps;
  const local = new Map<string, number>();

  const remember = (jti: string, expMs: number) => {
    if (expMs > clock.now()) local.set(jti, expMs);
  };

  return {
    async revoke(jti: string, organizationId: string | null, expSeconds: number): Promise<void> {
      const expMs = expSeconds * 1000;
      remember(jti, expMs);
      await repository.insert(jti, organizationId, new Date(expMs));
      const ttl = Math.max(1, Math.ceil((expMs - clock.now()) / 1000));
      await cache.set(key(jti), '1', ttl);
      await cache.publish(REVOCATION_CHANNEL, JSON.stringify({ kind: 'jti', jti, exp: expSeconds }));
    },
    /** Answered from memory (synchronously) while the subscription is healthy; else the cache store is asked. */
    isRevoked(jti: string): MaybePromise<boolean> {
      const exp = local.get(jti);
      if (exp !== undefined) {
        if (exp > clock.now()) return true;
        local.delete(jti);
      }
      if (deps.subscriptionHealthy?.()) return false;
      return cache.get(key(jti)).then((value) => value !== null);
    },
    /** Applies a revocation announced by another node. */
    applyMessage(message: { jti: string; exp: number }): void {
      remember(message.jti, message.exp * 1000);
    },
    /** Loads unexpired revocations from PostgreSQL (start-up, and periodically). */
    async reload(): Promise<void> {
      for (const [jti, exp] of local) if (exp <= clock.now()) local.delete(jti);
      for (const row of await repository.listActive(new Date(clock.now()))) remember(row.jti, row.expires_at.getTime());
    },
  };
}
export type RevocationList = ReturnType<typeof createRevocationList>;
