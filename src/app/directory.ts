import { createClientDirectory } from '../domain/client-directory.js';
import { createPrincipalLiveness, PRINCIPALS_CHANNEL } from '../tokens/principal-liveness.js';
import type { Foundation } from './foundation.js';

/** Pub/sub channel on which a node announces changed clients (a JSON array of ids, or "all"). */
export const CLIENTS_CHANNEL = 'clients';

/**
 * Who may act, as every node sees it: the client directory (clients with their decrypted secrets
 * and owners) and the principal-liveness rule (src/tokens/principal-liveness.ts), both cached
 * in-process and invalidated on every node through pub/sub.
 *
 * The in-process caches answer only while this node's pub/sub subscription is known to work (its
 * heartbeat, run by the reference-token cache, comes back within 1 s): `trustSubscription` hands
 * that check in once the tokens layer exists.
 */
export async function openDirectory(f: Pick<Foundation, 'repos' | 'envelope' | 'clock' | 'cache' | 'logger' | 'config'>) {
  const { repos, envelope, clock, cache, logger } = f;
  let subscriptionHealthy = () => false;
  const trusted = () => subscriptionHealthy();
  const clients = createClientDirectory({ clients: repos.clients, resourceServers: repos.resourceServers, serviceAccounts: repos.serviceAccounts, envelope, clock, trusted, issuer: f.config.issuer });
  const principals = createPrincipalLiveness({ users: repos.users, clients, cache, clock, logger, trusted });
  await cache.subscribe(PRINCIPALS_CHANNEL, (message) => principals.applyMessage(message));

  const forget = (ids: string[] | 'all') => {
    if (ids === 'all') clients.invalidate();
    else ids.forEach((id) => clients.invalidate(String(id)));
  };
  await cache.subscribe(CLIENTS_CHANNEL, (message) => {
    try {
      const ids = JSON.parse(message) as string[] | 'all';
      if (ids === 'all' || Array.isArray(ids)) forget(ids);
    } catch {
      logger.warn('ignored a malformed client change message');
    }
  });

  return {
    clients,
    principals,
    /**
     * A changed client is dropped from this node's cache at once and from every other node's
     * through pub/sub, so a deleted client or rotated secret is not honoured for the cache TTL.
     */
    async clientsChanged(ids: string[] | 'all') {
      forget(ids);
      await cache.publish(CLIENTS_CHANNEL, JSON.stringify(ids)).catch((error) => logger.warn({ err: error }, 'client change announcement failed'));
    },
    /** Whether this node's pub/sub subscription is known to work (false until the tokens layer says). */
    subscriptionHealthy: trusted,
    trustSubscription(healthy: () => boolean) {
      subscriptionHealthy = healthy;
    },
  };
}
export type Directory = Awaited<ReturnType<typeof openDirectory>>;
