import { createTrustGate } from '../domain/trust-gate.js';
import type { Clock } from '../clock.js';
import type { ClientView } from '../domain/client-directory.js';
import type { Role, User } from '../domain/types.js';
import type { Logger } from '../http/logger.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { CacheStore } from '../storage/cache.js';
import { BoundedCache } from './bounded-cache.js';

/**
 * "Is the principal behind this token still live?" — one rule, asked by everything that accepts
 * an OAuth token after it was issued: introspection (the fast path and the Koa path alike, JWT
 * and opaque), the engine's refresh-token introspection, the refresh-token reuse grace, and the
 * Management API's bearer authentication. A token is live only while
 *  - the client it was issued to exists and, when a service account owns that client, the account
 *    is active (`ClientView.active`; a client has no disabled state of its own, so deleting it or
 *    disabling its service account are the client's stops), and
 *  - when it acts for a user: that user exists, is active, and belongs to the client's
 *    organization (and to the token's own `org_id`).
 * The Management API also reads the user's current role from here, so a demotion narrows a user
 * JWT as it narrows a PAT. PATs and SATs have no client: their owner's state is read with the
 * token itself (src/tokens/reference-token-cache.ts) and invalidated by the same `ownerChanged`.
 *
 * Clients come from the client directory (invalidated through CLIENTS_CHANNEL). Users are kept
 * here, in a bounded in-process cache, so a cached token's whole answer stays synchronous
 * (src/maybe-promise.ts). A user's status or role change, or deletion, is announced with
 * `changed` after it is committed: this node drops the user at once, every other node when the
 * PRINCIPALS_CHANNEL message arrives. The local tier is trusted only while `trusted()` says this
 * node's pub/sub subscription works (the reference-token cache's heartbeat, which comes back
 * within 1 s): otherwise every question goes to PostgreSQL. That is the documented bound: at once
 * on the node that made the change, within 1 s on the others.
 */
export const PRINCIPALS_CHANNEL = 'principals';
/** Entries live this long; invalidation, not expiry, is what keeps them fresh. */
const LOCAL_TTL_MS = 60_000;
const DEFAULT_MAX_ENTRIES = 100_000;

/** What the checks need to know about a user; nothing that can change without `changed` being called. */
export interface UserFacts {
  id: string;
  organizationId: string;
  username: string;
  role: Role;
  active: boolean;
}

/** A live principal: the client alone (client credentials), or the user the token acts for. */
export interface LivePrincipal {
  user?: UserFacts;
}

const CLIENT_PRINCIPAL: LivePrincipal = Object.freeze({});

/** The facts the rule reads, from a user row (the engine's findAccount reads whole rows). */
export function userFacts(row: User): UserFacts {
  return { id: row.id, organizationId: row.organization_id, username: row.username, role: row.role, active: row.status === 'active' };
}

/** The rule for a user: exists, active, and of the organization (when one is given). */
export function userIsLive(user: UserFacts | undefined, organizationId: string | undefined): user is UserFacts {
  return user !== undefined && user.active && (organizationId === undefined || user.organizationId === organizationId);
}

/** The rule for a client: it exists and the service account owning it (if any) is active. */
export const clientIsLive = (view: ClientView | undefined): view is ClientView => view?.active === true;

export interface PrincipalLivenessDependencies {
  users: { findById(id: string): Promise<User | undefined> };
  clients: { get(clientId: string): MaybePromise<ClientView | undefined> };
  cache: Pick<CacheStore, 'publish'>;
  clock: Clock;
  logger: Logger;
  /** Whether this node's pub/sub subscription is known to work now (changes have all arrived). */
  trusted?: () => boolean;
  maxEntries?: number;
}

type Entry = { facts: UserFacts; live: LivePrincipal } | { facts: undefined; live: undefined };

export function createPrincipalLiveness(deps: PrincipalLivenessDependencies) {
  const { clock, logger } = deps;
  const local = new BoundedCache<Entry>(deps.maxEntries ?? DEFAULT_MAX_ENTRIES, () => clock.now());
  const inFlight = new Map<string, Promise<Entry>>();
  /** Bumped by every invalidation: a load that started before one must not be cached after it. */
  let generation = 0;
  const trusted = createTrustGate(deps.trusted, () => local.clear());

  async function load(userId: string): Promise<Entry> {
    const row = await deps.users.findById(userId);
    if (!row) return { facts: undefined, live: undefined };
    const facts = userFacts(row);
    return { facts, live: { user: facts } };
  }

  /** The cached entry of a user (a deleted user is cached too: ids are never reused). */
  function entryOf(userId: string): MaybePromise<Entry> {
    const useLocal = trusted();
    const cached = useLocal ? local.get(userId) : undefined;
    if (cached !== undefined) return cached;
    const startedAt = generation;
    let loading = inFlight.get(userId);
    if (!loading) {
      loading = load(userId).finally(() => inFlight.delete(userId));
      inFlight.set(userId, loading);
    }
    return loading.then((entry) => {
      if (useLocal && generation === startedAt) local.set(userId, entry, LOCAL_TTL_MS);
      return entry;
    });
  }

  const liveUser = (entry: Entry, organizationId: string | undefined): Entry | undefined => (userIsLive(entry.facts, organizationId) ? entry : undefined);

  function forget(userIds: readonly string[]): void {
    generation += 1;
    for (const id of userIds) {
      local.delete(id);
      inFlight.delete(id);
    }
  }

  return {
    /**
     * The principal of a token issued to `clientId`, acting for `userId` when it is a user's
     * token, in organization `organizationId` (the token's `org_id`, when it has one); undefined
     * when the token must be refused. Synchronous when the client and the user are cached.
     */
    check(clientId: unknown, userId?: unknown, organizationId?: unknown): MaybePromise<LivePrincipal | undefined> {
      if (typeof clientId !== 'string') return undefined;
      return andThen(deps.clients.get(clientId), (view) => {
        if (!clientIsLive(view)) return undefined;
        const org = view.record.organization_id;
        if (organizationId !== undefined && organizationId !== org) return undefined;
        if (userId === undefined || userId === null) return CLIENT_PRINCIPAL;
        if (typeof userId !== 'string') return undefined;
        return andThen(entryOf(userId), (entry) => liveUser(entry, org)?.live);
      });
    },

    /**
     * Users whose status or role changed, or who were deleted (call after the change is
     * committed): dropped here at once and on every other node through pub/sub.
     */
    async changed(userIds: string[]): Promise<void> {
      forget(userIds);
      await deps.cache.publish(PRINCIPALS_CHANNEL, JSON.stringify(userIds)).catch((error) => logger.warn({ err: error }, 'principal change announcement failed'));
    },

    /** A message on PRINCIPALS_CHANNEL, from another node or this one. */
    applyMessage(message: string): void {
      try {
        const ids = JSON.parse(message) as unknown;
        if (Array.isArray(ids)) forget(ids.filter((id): id is string => typeof id === 'string'));
      } catch {
        logger.warn('ignored a malformed principal change message');
      }
    },
  };
}
export type PrincipalLiveness = ReturnType<typeof createPrincipalLiveness>;
