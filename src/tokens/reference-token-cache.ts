import { randomUUID } from 'node:crypto';

import type { Clock } from '../clock.js';
import { exceedsLifetimeCap, tokenLifetimeSeconds } from '../domain/organization-policy.js';
import { notYetValid } from '../domain/token-constraints.js';
import { MANAGEMENT_AUDIENCE, MANAGEMENT_SCOPES, ROLE_SCOPES } from '../domain/types.js';
import type { OrganizationPolicy, Role } from '../domain/types.js';
import type { Logger } from '../http/logger.js';
import type { CacheStore } from '../storage/cache.js';
import type { ReferenceTokenRepository, ReferenceTokenWithOwner, TokenHashes } from '../storage/reference-token-repository.js';
import { BoundedCache } from './bounded-cache.js';
import { MAX_TOKEN_LENGTH, parseToken, tokenKey } from './format.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';

/**
 * What a presented PAT/SAT resolves to, answered from three tiers: a bounded in-process cache,
 * the shared cache store (Redis, minutes), PostgreSQL. Entries are keyed by sha256(token), so
 * the secret itself is never a key anywhere. Every change (revocation, rotation, ownership
 * change) deletes the shared entry and is announced on pub/sub, so each node drops its own copy
 * at once: staleness is 0 on the node that made the change and the pub/sub delay (milliseconds)
 * elsewhere.
 *
 * Documented bound: 1 s. Pub/sub delivers at most once, so a node must know its subscription
 * works before it trusts its local tier: each node publishes a heartbeat (stamped with the time
 * it was sent) every 250 ms and listens for its own. Redis delivers a subscriber's messages in
 * the order it received them, so once a heartbeat sent at time S has come back, every change
 * announced before S has been applied here. The local tier is trusted only while the latest
 * heartbeat that came back was sent less than 1 s ago; otherwise (Redis unreachable, the
 * subscriber reconnecting) the node drops its local tier and reads the shared tier or
 * PostgreSQL until heartbeats flow again. Heartbeats are also sent from the request path when
 * the timer is late, so a busy event loop does not by itself distrust the cache.
 *
 * The facts kept are those that do not depend on the clock; expiry and the end of a rotation
 * grace period are evaluated on every resolve, so a cached entry never outlives its token.
 */
export const REFERENCE_TOKEN_CHANNEL = 'reference-tokens';
/** Local entries live this long; invalidation, not expiry, is what keeps them fresh. */
export const LOCAL_TTL_MS = 60_000;
/** The local tier is trusted only while this node's own heartbeat came back within this bound. */
export const STALENESS_BOUND_MS = 1000;
const HEARTBEAT_INTERVAL_MS = 250;
const SHARED_TTL_SECONDS = 300;
/** A change is deleted from the shared cache twice: a node that was loading the old state at that moment may have written it back. */
const SECOND_DELETE_MS = 1000;
const DEFAULT_MAX_ENTRIES = 100_000;

export interface TokenFacts {
  k: 'token';
  id: string;
  org: string;
  type: 'pat' | 'sat';
  ownerId: string;
  ownerName: string;
  ownerActive: boolean;
  ownerRole: Role | null;
  /** Scopes the token holds right now: issued scopes narrowed by the owner's current role. */
  scopes: string[];
  resources: string[];
  /** Epoch ms. */
  exp: number;
  iat: number;
  /** The lifetime it was issued with, in seconds (held against the organization's cap on every use). */
  lifetime?: number;
  /** Constraints (src/domain/token-constraints.ts): not before (epoch ms), and the CIDR ranges it may be used from. */
  notBefore?: number | null;
  allowedIps?: string[] | null;
  /**
   * The RFC 7638 thumbprint of the DPoP key the token is bound to, or null for a bearer token
   * (src/tokens/key-binding.ts). Always present in an entry this version writes: one without it
   * (written by an older version) counts as a miss, so a bound token is never taken for a bearer one.
   */
  jkt: string | null;
  revoked: boolean;
  /** null for the current secret; for the previous one, when its rotation grace ends (epoch ms). */
  graceUntil: number | null;
  /** The previous secret only: when it ended because the new one was first used (epoch ms), or null. */
  endedAt?: number | null;
  /** The current secret only: its first use ends the previous secret (rotation with cutover "first_use"). */
  cutoverPending?: boolean;
  /** How many times the token was rotated: the generation of its current secret. */
  gen: number;
  /** When the previous secret's rotation grace ends (epoch ms), whichever secret was presented; null without one. */
  previousUntil: number | null;
}

type Facts = TokenFacts | { k: 'unknown' } | { k: 'retired'; id: string; org: string };

export type ReferenceRejection = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'replaced' | 'owner_inactive' | 'lifetime_exceeds_policy' | 'not_yet_valid';

export type Resolution = { ok: true; token: TokenFacts; viaPreviousSecret: boolean } | { ok: false; reason: ReferenceRejection; tokenId?: string; organizationId?: string };

/** Key of a token's facts by id (`resolveById`), beside the keys by secret hash; invalidated with them. */
const idKey = (id: string) => `id:${id}`;

/**
 * Whether the secret of generation `gen` of a token still works (tokens exchanged from it live
 * only as long as it does, src/tokens/exchange-lineage.ts): the token is live and `gen` is its
 * current secret, or the previous one inside its rotation grace. A secret replaced twice is gone.
 */
export function generationLive(t: TokenFacts | undefined, gen: number, now: number): boolean {
  if (t === undefined || t.revoked || !t.ownerActive || t.exp <= now) return false;
  return gen === t.gen || (gen === t.gen - 1 && t.previousUntil !== null && t.previousUntil > now);
}

export interface ReferenceTokenCacheDependencies {
  tokens: ReferenceTokenRepository;
  cache: CacheStore;
  clock: Clock;
  logger: Logger;
  /** Scopes among `scopes` that belong to a sensitive resource server of `resources` (they need admin or owner). */
  sensitiveScopes(organizationId: string, resources: string[], scopes: string[]): Promise<Set<string>>;
  /** The organization's policy now, plain when cached: its lifetime caps apply at every use. */
  policyOf?(organizationId: string): MaybePromise<Pick<OrganizationPolicy, 'max_pat_lifetime_days' | 'max_sat_lifetime_days'>>;
  maxEntries?: number;
}

const ELEVATED_ROLES = new Set<Role>(['owner', 'admin']);

/**
 * Scopes a PAT may exercise now (docs/security.md, "Who may do what"): Management API scopes within
 * the owner's role, sensitive resource servers' scopes only for admins and owners. A demotion
 * therefore removes the excess at once, at introspection as at the Management API.
 */
export function effectivePatScopes(scopes: string[], resources: string[], role: Role | null, sensitive: Set<string>): string[] {
  const roleScopes = new Set<string>(role ? ROLE_SCOPES[role] : []);
  const management = resources.includes(MANAGEMENT_AUDIENCE);
  return scopes.filter((s) => {
    if (management && MANAGEMENT_SCOPES.includes(s)) return roleScopes.has(s);
    if (sensitive.has(s)) return role !== null && ELEVATED_ROLES.has(role);
    return true;
  });
}

export function createReferenceTokenCache(deps: ReferenceTokenCacheDependencies) {
  const { tokens, cache, clock, logger } = deps;
  const local = new BoundedCache<Facts>(deps.maxEntries ?? DEFAULT_MAX_ENTRIES, () => clock.now());
  const shared = cache.kind === 'redis';
  const sharedKey = (key: string) => `rt:${key}`;
  let onReuse: ((tokenId: string, organizationId: string) => void) | undefined;
  let onFirstUse: ((tokenId: string, organizationId: string) => void) | undefined;
  // Heartbeats measure real elapsed time (not the injected clock): they are about the network.
  const nodeId = randomUUID();
  /** When the latest heartbeat that came back was sent; and when the latest one was sent. */
  let lastHeartbeat = shared ? -Infinity : Infinity;
  let lastSent = -Infinity;
  const beat = () => {
    lastSent = performance.now();
    cache.publish(REFERENCE_TOKEN_CHANNEL, JSON.stringify({ hb: nodeId, t: lastSent })).catch(() => {});
  };
  let localTrusted = !shared;
  let heartbeat: NodeJS.Timeout | undefined;
  /** Where answers came from (for metrics, tests and the benchmark). */
  const stats = { local: 0, shared: 0, database: 0, untrusted: 0 };
  /** Loads in flight, so concurrent requests for one cold token share a single lookup. */
  const inFlight = new Map<string, Promise<Facts>>();
  /** Bumped by every invalidation: a load that started before one must not be cached after it. */
  let generation = 0;
  /** Whether the local tier may answer now; a lost subscription drops everything it held. */
  function useLocal(): boolean {
    if (!shared) return true;
    const now = performance.now();
    if (heartbeat && now - lastSent >= HEARTBEAT_INTERVAL_MS) beat();
    const fresh = now - lastHeartbeat < STALENESS_BOUND_MS;
    if (!fresh && localTrusted) local.clear();
    localTrusted = fresh;
    return fresh;
  }

  async function toFacts(row: ReferenceTokenWithOwner, hash: Buffer): Promise<TokenFacts> {
    const role = (row.owner_role as Role | null) ?? null;
    let scopes = row.scopes;
    if (row.type === 'pat') scopes = effectivePatScopes(row.scopes, row.resources, role, await deps.sensitiveScopes(row.organization_id, row.resources, row.scopes));
    const current = row.secret_hash.equals(hash);
    return {
      k: 'token',
      id: row.id,
      org: row.organization_id,
      type: row.type,
      ownerId: (row.user_id ?? row.service_account_id)!,
      ownerName: row.owner_name,
      ownerActive: row.owner_status === 'active',
      ownerRole: role,
      scopes,
      resources: row.resources,
      exp: row.expires_at.getTime(),
      iat: row.issued_at.getTime(),
      lifetime: tokenLifetimeSeconds(row),
      notBefore: row.not_before?.getTime() ?? null,
      allowedIps: row.allowed_ips ?? null,
      jkt: row.cnf_jkt ?? null,
      revoked: row.revoked_at !== null,
      graceUntil: current ? null : Math.min(row.previous_valid_until?.getTime() ?? 0, row.expires_at.getTime()),
      ...(current ? { cutoverPending: row.previous_ends_on_first_use && row.previous_secret_hash !== null } : { endedAt: row.previous_ended_at?.getTime() ?? null }),
      gen: Number(row.rotation_count ?? 0),
      previousUntil: row.previous_secret_hash === null ? null : Math.min(row.previous_valid_until?.getTime() ?? 0, row.expires_at.getTime()),
    };
  }

  /**
   * Facts from the shared tier, else from PostgreSQL (`fromDatabase`), kept in the shared tier
   * for the other nodes. The shared tier is an optimisation: when Redis is away, PostgreSQL still
   * answers. An entry an older version wrote (without `gen`, or without `jkt`) counts as a miss.
   */
  async function loadThrough(key: string, fromDatabase: () => Promise<Facts>): Promise<Facts> {
    const value = shared ? await cache.get(sharedKey(key)).catch(() => null) : null;
    const cached = value ? (JSON.parse(value) as Facts) : undefined;
    if (cached && !(cached.k === 'token' && (typeof cached.gen !== 'number' || cached.jkt === undefined))) {
      stats.shared += 1;
      return cached;
    }
    stats.database += 1;
    const facts = await fromDatabase();
    // Unknown keys stay out of the shared store: a flood of made-up tokens must not fill Redis.
    if (shared && facts.k !== 'unknown') await cache.set(sharedKey(key), JSON.stringify(facts), SHARED_TTL_SECONDS).catch(() => {});
    return facts;
  }

  function firstUse(id: string, org: string): void {
    try {
      onFirstUse?.(id, org);
    } catch (error) {
      logger.error({ err: error, tokenId: id }, 'first-use cutover failed');
    }
  }
  const loadById = (id: string, key: string): Promise<Facts> =>
    loadThrough(key, async () => {
      const row = await tokens.findWithOwnerById(id);
      // By id, no secret was presented: `graceUntil` does not apply (generationLive reads `gen`).
      return row ? { ...(await toFacts(row, row.secret_hash)), graceUntil: null } : { k: 'unknown' };
    });

  const load = (hash: Buffer, key: string): Promise<Facts> =>
    loadThrough(key, async () => {
      const row = await tokens.findWithOwnerByHash(hash);
      if (row) return toFacts(row, hash);
      const retired = await tokens.findRetired(hash);
      return retired ? { k: 'retired', id: retired.token_id, org: retired.organization_id } : { k: 'unknown' };
    });

  function reuse(id: string, org: string): void {
    try {
      onReuse?.(id, org);
    } catch (error) {
      logger.error({ err: error, tokenId: id }, 'reuse handling failed');
    }
  }

  function evaluate(facts: Facts, kind: 'pat' | 'sat'): Resolution {
    if (facts.k === 'unknown') return { ok: false, reason: 'unknown' };
    if (facts.k === 'retired') {
      reuse(facts.id, facts.org);
      return { ok: false, reason: 'replaced', tokenId: facts.id, organizationId: facts.org };
    }
    const base = { tokenId: facts.id, organizationId: facts.org };
    if (facts.type !== kind) return { ok: false, reason: 'unknown' };
    if (facts.revoked) return { ok: false, reason: 'revoked', ...base };
    const now = clock.now();
    if (facts.exp <= now) return { ok: false, reason: 'expired', ...base };
    if (facts.graceUntil !== null && facts.graceUntil <= now) {
      // A replaced secret presented after its grace period: someone still holds a copy that
      // should have been discarded. Like refresh-token reuse, the whole family is revoked.
      reuse(facts.id, facts.org);
      return { ok: false, reason: 'replaced', ...base };
    }
    // Ended by the new secret's first use: refused, but not reuse while the grace would have
    // run (a deployment not yet rolled over is a straggler, not a thief).
    if (facts.graceUntil !== null && facts.endedAt != null && facts.endedAt <= now) return { ok: false, reason: 'replaced', ...base };
    if (!facts.ownerActive) return { ok: false, reason: 'owner_inactive', ...base };
    // Its time constraint; the address one is checked where the address is known.
    if (notYetValid(facts, now)) return { ok: false, reason: 'not_yet_valid', ...base };
    if (facts.cutoverPending) firstUse(facts.id, facts.org);
    return { ok: true, token: facts, viaPreviousSecret: facts.graceUntil !== null };
  }

  /** A usable token whose lifetime is over its organization's cap now is refused (src/domain/organization-policy.ts). */
  function withinPolicy(resolution: Resolution): MaybePromise<Resolution> {
    if (!resolution.ok || !deps.policyOf || resolution.token.lifetime === undefined) return resolution;
    const t = resolution.token;
    return andThen(deps.policyOf(t.org), (policy) =>
      exceedsLifetimeCap(t.lifetime!, t.type, policy) ? { ok: false, reason: 'lifetime_exceeds_policy', tokenId: t.id, organizationId: t.org } : resolution,
    );
  }

  const dropLocal = (keys: string[]) => {
    generation += 1;
    for (const key of keys) {
      local.delete(key);
      inFlight.delete(key);
    }
  };

  return {
    /**
     * Resolves a presented PAT/SAT. Garbage is rejected by shape and checksum before any lookup.
     * Answered synchronously from the local tier; a Promise only when a lower tier is asked.
     */
    resolve(token: string): MaybePromise<Resolution> {
      if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
      const key = tokenKey(token);
      const trusted = useLocal();
      if (!trusted) stats.untrusted += 1;
      const cached = trusted ? local.get(key) : undefined;
      // Only hashes of stored tokens enter the local tier, so a hit is a well-formed token and
      // its prefix names its kind; the checksum is checked before anything below this tier.
      if (cached !== undefined) {
        stats.local += 1;
        return withinPolicy(evaluate(cached, token.startsWith('tsr_pat_') ? 'pat' : 'sat'));
      }
      const kind = parseToken(token);
      if (kind !== 'pat' && kind !== 'sat') return { ok: false, reason: 'malformed' };
      const startedAt = generation;
      let loading = inFlight.get(key);
      if (!loading) {
        loading = load(Buffer.from(key, 'base64url'), key).finally(() => inFlight.delete(key));
        inFlight.set(key, loading);
      }
      return loading.then((facts) => {
        // Unknown hashes are not kept: made-up tokens must not grow the heap.
        if (trusted && generation === startedAt && facts.k !== 'unknown') local.set(key, facts, LOCAL_TTL_MS);
        return withinPolicy(evaluate(facts, kind));
      });
    },
    /** Called when the new secret of a first-use cutover is used (until the change is announced, maybe more than once). */
    onFirstUse(handler: (tokenId: string, organizationId: string) => void): void {
      onFirstUse = handler;
    },
    /**
     * A token's facts by its id, with no secret presented and no reuse handling: what a token
     * exchanged from it checks (`generationLive`). Cached and invalidated like `resolve`.
     */
    resolveById(id: string): MaybePromise<TokenFacts | undefined> {
      const key = idKey(id);
      const trusted = useLocal();
      const cached = trusted ? local.get(key) : undefined;
      if (cached !== undefined) {
        stats.local += 1;
        return cached.k === 'token' ? cached : undefined;
      }
      const startedAt = generation;
      let loading = inFlight.get(key);
      if (!loading) {
        loading = loadById(id, key).finally(() => inFlight.delete(key));
        inFlight.set(key, loading);
      }
      return loading.then((facts) => {
        if (trusted && generation === startedAt && facts.k !== 'unknown') local.set(key, facts, LOCAL_TTL_MS);
        return facts.k === 'token' ? facts : undefined;
      });
    },
    /** Called when a retired or out-of-grace secret is presented. */
    onReuse(handler: (tokenId: string, organizationId: string) => void): void {
      onReuse = handler;
    },
    /**
     * Forgets the given tokens everywhere: here at once, in the shared store, and on every other
     * node through pub/sub.
     */
    async invalidate(rows: (Pick<TokenHashes, 'secret_hash' | 'previous_secret_hash'> & { id?: string })[]): Promise<void> {
      const keys = [
        ...rows.flatMap((r) => [r.secret_hash, r.previous_secret_hash]).filter((h): h is Buffer => h !== null).map((h) => h.toString('base64url')),
        // Facts by id (resolveById) go with the facts by hash, on every node, through the same message.
        ...rows.flatMap((r) => (r.id === undefined ? [] : [idKey(r.id)])),
      ];
      if (keys.length === 0) return;
      const deleteShared = () => (shared ? cache.del(...keys.map(sharedKey)) : Promise.resolve());
      // Shared tier first, then this node's: a load racing with us then either reads the new
      // state or finishes after the generation bump and is not kept.
      await deleteShared().finally(() => dropLocal(keys));
      await cache.publish(REFERENCE_TOKEN_CHANNEL, JSON.stringify({ h: keys }));
      setTimeout(() => {
        dropLocal(keys);
        deleteShared().catch((error) => logger.warn({ err: error }, 'second reference-token cache delete failed'));
      }, SECOND_DELETE_MS).unref();
    },
    /** A message from another node (or this one) on REFERENCE_TOKEN_CHANNEL. */
    applyMessage(message: string): void {
      try {
        const parsed = JSON.parse(message) as { h?: unknown; hb?: unknown; t?: unknown };
        if (parsed.hb === nodeId && typeof parsed.t === 'number') lastHeartbeat = Math.max(lastHeartbeat, parsed.t);
        if (Array.isArray(parsed.h)) dropLocal(parsed.h.filter((k): k is string => typeof k === 'string'));
      } catch {
        logger.warn('ignored a malformed reference-token message');
      }
    },
    /** Whether this node's pub/sub subscription is known to work right now (heartbeat within 1 s). */
    subscriptionHealthy(): boolean {
      return !shared || performance.now() - lastHeartbeat < STALENESS_BOUND_MS;
    },
    /** Starts this node's heartbeat (after subscribing to REFERENCE_TOKEN_CHANNEL). */
    start(): void {
      if (!shared || heartbeat) return;
      beat();
      heartbeat = setInterval(() => {
        if (performance.now() - lastSent >= HEARTBEAT_INTERVAL_MS / 2) beat();
      }, HEARTBEAT_INTERVAL_MS);
      heartbeat.unref();
    },
    stop(): void {
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = undefined;
    },
    /** Drops every local entry (tests, or after a long pub/sub outage). */
    clearLocal(): void {
      local.clear();
    },
    stats,
    get localSize(): number {
      return local.size;
    },
  };
}
export type ReferenceTokenCache = ReturnType<typeof createReferenceTokenCache>;
