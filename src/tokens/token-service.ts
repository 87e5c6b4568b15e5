import type { AuditActor, AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { OrganizationPolicy } from '../domain/types.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, PLATFORM_SCOPE } from '../domain/types.js';
import type { Logger } from '../http/logger.js';
import { authorityRefused, ProblemError } from '../http/middleware.js';
import { administersCredentials, grantDenials, rotationDenials, scopeFactsOf, seesCredentialOf } from '../domain/authority.js';
import type { Principal } from '../domain/principal.js';
import type { OrganizationRepository } from '../storage/organization-repository.js';
import type { ReferenceTokenRepository, ReferenceTokenRow, ReferenceTokenWithOwner, TokenHashes } from '../storage/reference-token-repository.js';
import type { ResourceServerRepository } from '../storage/resource-server-repository.js';
import type { ServiceAccountRepository } from '../storage/service-account-repository.js';
import type { UserRepository } from '../storage/user-repository.js';
import { BoundedCache } from './bounded-cache.js';
import { generateToken, hashToken, MAX_TOKEN_LENGTH, parseToken } from './format.js';
import type { ReferenceTokenCache } from './reference-token-cache.js';
import type { ReferenceTokenIssuer } from './reference-tokens.js';

/**
 * The lifecycle of PATs and SATs: issue within policy, list, revoke, rotate (by id, or with a
 * token pair's rotation key), leaked-token reports, idle revocation, and ownership changes. Every
 * change invalidates the introspection cache on every node and leaves an audit event.
 */
export interface TokenServiceDependencies {
  tokens: ReferenceTokenRepository;
  organizations: OrganizationRepository;
  users: UserRepository;
  serviceAccounts: ServiceAccountRepository;
  resourceServers: ResourceServerRepository;
  issuer: ReferenceTokenIssuer;
  cache: ReferenceTokenCache;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  policyDefaults: OrganizationPolicy;
  /** Writes usage counted in memory, so the idle job never revokes a token used moments ago. */
  flushUsage?: () => Promise<void>;
}

export interface IssueRequest {
  type: 'pat' | 'sat';
  service_account_id?: string;
  name: string;
  scopes: string[];
  resources: string[];
  expires_in: number;
  pair?: boolean;
}

export interface RequestFacts {
  requestId?: string;
  ip?: string;
  userAgent?: string;
}

export interface TokenListQuery {
  type?: 'pat' | 'sat';
  owner?: string;
  state?: 'active' | 'revoked' | 'expired';
  expiring_before?: Date;
  last_used_before?: Date;
  /** Only these tokens (of those the caller may see). */
  ids?: string[];
  after?: { k: string; id: string };
  limit: number;
}

const DAY = 86400;
/** The shortest lifetime worth issuing; anything shorter is a mistake, not a token. */
export const MIN_EXPIRES_IN = 60;
/** How long a token whose reuse was handled is not handled again (the revocation is idempotent anyway). */
const REUSE_DEBOUNCE_MS = 60_000;

const invalid = (field: string, message: string) => new ProblemError(422, 'Unprocessable Content', `${field}: ${message}`, { errors: [{ field, message }] });
const notFound = () => new ProblemError(404, 'Not Found', 'no such token');
const forbidden = (detail: string) => new ProblemError(403, 'Forbidden', detail);
const ownerOf = (row: ReferenceTokenRow) => (row.type === 'pat' ? { type: 'user', id: row.user_id } : { type: 'service_account', id: row.service_account_id });

export type TokenState = 'active' | 'revoked' | 'expired';

export function createTokenService(deps: TokenServiceDependencies) {
  const { tokens, clock, audit, logger } = deps;
  const now = () => new Date(clock.now());
  const recentlyReused = new BoundedCache<true>(10_000, () => clock.now());

  async function policyOf(organizationId: string): Promise<OrganizationPolicy> {
    const org = await deps.organizations.findById(organizationId);
    return { ...deps.policyDefaults, ...(org?.policy ?? {}) } as OrganizationPolicy;
  }

  /** Who sees a token is the authority module's rule (src/domain/authority.ts), the inventory's too. */
  const visibleTo = (p: Principal, row: ReferenceTokenRow) =>
    row.organization_id === p.organizationId && seesCredentialOf(p, ownerOf(row));

  const actorOf = (p: Principal): AuditActor => ({ type: p.actor.type, id: p.actor.id, name: p.actor.name });

  function stateOf(row: ReferenceTokenRow, at = clock.now()): TokenState {
    if (row.revoked_at) return 'revoked';
    return row.expires_at.getTime() <= at ? 'expired' : 'active';
  }

  function present(row: ReferenceTokenWithOwner | (ReferenceTokenRow & { owner_name?: string })) {
    return {
      id: row.id,
      type: row.type,
      name: row.name,
      owner: {
        type: row.type === 'pat' ? ('user' as const) : ('service_account' as const),
        id: (row.user_id ?? row.service_account_id)!,
        ...(row.owner_name !== undefined ? { name: row.owner_name } : {}),
      },
      scopes: row.scopes,
      resources: row.resources,
      state: stateOf(row),
      paired: row.rotation_key_hash !== null,
      created_by: row.created_by,
      created_at: row.created_at.toISOString(),
      issued_at: row.issued_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      rotated_at: row.rotated_at?.toISOString() ?? null,
      last_used_at: row.last_used_at?.toISOString() ?? null,
      use_count: Number(row.use_count),
      revoked_at: row.revoked_at?.toISOString() ?? null,
      revoked_reason: row.revoked_reason,
    };
  }

  async function visibleToken(p: Principal, id: string): Promise<ReferenceTokenWithOwner> {
    const row = await tokens.findWithOwnerById(id);
    if (!row || !visibleTo(p, row)) throw notFound();
    return row;
  }

  /** Organization policy `allowed_pat_scopes` (null: every scope) narrows what a PAT may carry. */
  const patScopeAllowed = (policy: OrganizationPolicy, scope: string) => !policy.allowed_pat_scopes || policy.allowed_pat_scopes.includes(scope);

  /**
   * What a PAT or SAT may carry: every scope is defined by one of the requested resources (422
   * otherwise), organization policy `allowed_pat_scopes` narrows PATs, and the authority module
   * decides whether the caller may hand those scopes out at all (403 naming what is missing).
   */
  async function checkScopes(p: Principal, input: IssueRequest, policy: OrganizationPolicy): Promise<void> {
    const { facts, unknown } = await scopeFactsOf(p.organizationId, input.resources, (identifier) => deps.resourceServers.findByIdentifier(identifier));
    if (unknown.length > 0) throw invalid('resources', `unknown resource server "${input.resources[unknown[0]!]}"`);
    for (const scope of input.scopes) {
      if (!facts.has(scope)) throw invalid('scopes', `"${scope}" is not a scope of the requested resources`);
      if (input.type === 'pat' && !patScopeAllowed(policy, scope)) {
        throw invalid('scopes', `"${scope}" is not allowed in PATs by organization policy`);
      }
    }
    const denials = grantDenials(p, input.type, input.scopes, facts);
    if (denials.length > 0) throw authorityRefused(denials);
  }

  async function invalidate(rows: Pick<TokenHashes, 'id' | 'secret_hash' | 'previous_secret_hash'>[]): Promise<void> {
    try {
      await deps.cache.invalidate(rows);
    } catch (error) {
      // The change is durable; other nodes converge within the local cache lifetime.
      logger.warn({ err: error }, 'reference-token cache invalidation failed');
    }
  }

  /** Revokes a whole token family (all its secrets and its rotation key: they share the row). */
  async function revokeFamily(id: string, reason: string, actor: AuditActor, facts: RequestFacts, organizationId?: string): Promise<boolean> {
    const revoked = await tokens.revoke(id, reason, now());
    if (!revoked) return false;
    await invalidate([revoked]);
    audit.record({
      organizationId: organizationId ?? revoked.organization_id,
      actor,
      action: 'token.revoked',
      target: { type: 'reference_token', id },
      outcome: 'success',
      ...facts,
      details: { reason },
    });
    return true;
  }

  const SYSTEM: AuditActor = { type: 'system', id: null, name: 'tessera' };

  // A replaced secret presented after its grace period (or a secret replaced twice): a copy
  // that should be gone is in use. The family is revoked, like refresh-token reuse detection.
  deps.cache.onReuse((tokenId, organizationId) => {
    if (recentlyReused.get(tokenId)) return;
    recentlyReused.set(tokenId, true, REUSE_DEBOUNCE_MS);
    audit.record({
      organizationId,
      actor: SYSTEM,
      action: 'token.reuse_detected',
      target: { type: 'reference_token', id: tokenId },
      outcome: 'failure',
      details: { credential: 'replaced_secret' },
    });
    revokeFamily(tokenId, 'replaced_secret_reused', SYSTEM, {}, organizationId).catch((error) => logger.error({ err: error, tokenId }, 'revoking a reused token family failed'));
  });

  function graceUntil(policy: OrganizationPolicy, row: ReferenceTokenRow): Date {
    return new Date(Math.min(clock.now() + policy.token_rotation_grace_seconds * 1000, row.expires_at.getTime()));
  }

  return {
    present,
    policyOf,

    async issue(p: Principal, input: IssueRequest, facts: RequestFacts) {
      const policy = await policyOf(p.organizationId);
      const resources = [...new Set(input.resources)];
      const scopes = [...new Set(input.scopes)];
      const request = { ...input, resources, scopes };
      let owner: { userId?: string; serviceAccountId?: string };
      if (input.type === 'pat') {
        if (input.service_account_id !== undefined) throw invalid('service_account_id', 'a PAT acts for the calling user; use type "sat" for a service account');
        // A PAT acts for the calling user and only for them: a service account or client has no PATs.
        if (p.actor.type !== 'user') throw forbidden('a PAT acts for a user: only a user may issue one, for themselves');
        owner = { userId: p.actor.id };
      } else {
        if (!input.service_account_id) throw invalid('service_account_id', 'required for a SAT');
        if (!administersCredentials(p)) throw authorityRefused([{ missing: 'role:admin', detail: 'only an admin or owner (or a token holding service-accounts:write) may issue a SAT' }]);
        const account = await deps.serviceAccounts.findById(input.service_account_id);
        if (!account || account.organization_id !== p.organizationId) throw invalid('service_account_id', 'unknown service account');
        if (account.status !== 'active') throw invalid('service_account_id', 'the service account is disabled');
        owner = { serviceAccountId: account.id };
      }
      if (scopes.includes(PLATFORM_SCOPE)) throw forbidden(`"${PLATFORM_SCOPE}" cannot be granted`);
      await checkScopes(p, request, policy);
      const maxDays = input.type === 'pat' ? policy.max_pat_lifetime_days : policy.max_sat_lifetime_days;
      if (input.expires_in > maxDays * DAY) {
        throw invalid('expires_in', `at most ${Math.floor(maxDays * DAY)} seconds (${maxDays} days) for a ${input.type.toUpperCase()} by organization policy`);
      }
      const issued = await deps.issuer.issue({
        organizationId: p.organizationId,
        type: input.type,
        name: input.name,
        ...owner,
        scopes,
        resources,
        expiresInSeconds: input.expires_in,
        createdBy: `${p.actor.type}:${p.actor.id}`,
        pair: input.pair === true,
      });
      audit.record({
        organizationId: p.organizationId,
        actor: actorOf(p),
        action: 'token.issued',
        target: { type: 'reference_token', id: issued.row.id },
        outcome: 'success',
        ...facts,
        details: { type: input.type, name: input.name, scopes, resources, expires_at: issued.row.expires_at.toISOString(), pair: input.pair === true, owner_id: owner.userId ?? owner.serviceAccountId },
      });
      const row = await tokens.findWithOwnerById(issued.row.id);
      return { ...present(row ?? issued.row), token: issued.token, ...(issued.rotationKey ? { rotation_key: issued.rotationKey } : {}) };
    },

    /**
     * What the caller could put into a new token of `type` right now: every API of the
     * organization (the Management API first) with its scopes, each marked with why it may not
     * be granted, if it may not, by the same rules `issue` applies; and the lifetime cap and
     * rotation grace of organization policy. Forms (the console) offer exactly this.
     */
    async options(p: Principal, type: 'pat' | 'sat') {
      const policy = await policyOf(p.organizationId);
      const servers = await deps.resourceServers.listByOrganization(p.organizationId);
      const apis = [
        { identifier: MANAGEMENT_AUDIENCE, name: 'Tessera Management API', sensitive: false, scopes: ORGANIZATION_SCOPES.map((name) => ({ name, description: null as string | null })) },
        ...servers.map((rs) => ({ identifier: rs.identifier, name: rs.name, sensitive: rs.sensitive, scopes: rs.scopes.map((s) => ({ name: s.name, description: s.description ?? null })) })),
      ];
      const byIdentifier = new Map(servers.map((rs) => [rs.identifier, rs]));
      const resources = [];
      for (const api of apis) {
        const { facts } = await scopeFactsOf(p.organizationId, [api.identifier], async (identifier) => byIdentifier.get(identifier));
        resources.push({
          ...api,
          scopes: api.scopes.map((scope) => {
            const refusal = type === 'pat' && !patScopeAllowed(policy, scope.name)
              ? 'not allowed in PATs by organization policy'
              : grantDenials(p, type, [scope.name], facts)[0]?.detail;
            return { ...scope, grantable: refusal === undefined, ...(refusal !== undefined ? { refusal } : {}) };
          }),
        });
      }
      return {
        type,
        max_lifetime_days: type === 'pat' ? policy.max_pat_lifetime_days : policy.max_sat_lifetime_days,
        rotation_grace_seconds: policy.token_rotation_grace_seconds,
        resources,
      };
    },

    async list(p: Principal, query: TokenListQuery) {
      const administrator = administersCredentials(p);
      if (!administrator && query.type === 'sat') return [];
      return tokens.list({
        organizationId: p.organizationId,
        type: administrator ? query.type : 'pat',
        ownerId: administrator ? query.owner : p.actor.id,
        state: query.state,
        expiringBefore: query.expiring_before,
        lastUsedBefore: query.last_used_before,
        ids: query.ids,
        now: now(),
        after: query.after,
        limit: query.limit,
      });
    },

    async get(p: Principal, id: string) {
      const row = await visibleToken(p, id);
      const usage = await tokens.usage(id);
      return {
        ...present(row),
        usage: usage.map((u) => ({ resource: u.resource, use_count: Number(u.use_count), last_used_at: u.last_used_at.toISOString() })),
      };
    },

    async revoke(p: Principal, id: string, reason: string | undefined, facts: RequestFacts): Promise<void> {
      const row = await visibleToken(p, id);
      if (row.revoked_at) return;
      await revokeFamily(row.id, reason ?? 'revoked_by_api', actorOf(p), facts, row.organization_id);
    },

    /** RFC 7009 revocation by an introspection client that was allowed to see the token. */
    async revokeForClient(id: string, clientId: string, facts: RequestFacts): Promise<void> {
      await revokeFamily(id, 'rfc7009', { type: 'client', id: clientId }, facts);
    },

    /** A new secret for the same token; the old one keeps working for the policy's grace period, never past expiry. */
    async rotate(p: Principal, id: string, facts: RequestFacts) {
      const row = await visibleToken(p, id);
      // Rotation hands out the token's whole power: the caller must be able to issue it now.
      const scopeFacts = await scopeFactsOf(row.organization_id, row.resources, (identifier) => deps.resourceServers.findByIdentifier(identifier));
      const denials = rotationDenials(p, row, scopeFacts.facts);
      if (denials.length > 0) throw authorityRefused(denials);
      if (stateOf(row) !== 'active') throw new ProblemError(409, 'Conflict', `the token is ${stateOf(row)} and cannot be rotated`);
      const policy = await policyOf(row.organization_id);
      const token = generateToken(row.type);
      const result = await tokens.rotate({ id: row.id, newSecretHash: hashToken(token), previousValidUntil: graceUntil(policy, row), now: now() });
      if (!result) throw new ProblemError(409, 'Conflict', 'the token is revoked and cannot be rotated');
      await invalidate([result.before]);
      audit.record({
        organizationId: row.organization_id,
        actor: actorOf(p),
        action: 'token.rotated',
        target: { type: 'reference_token', id: row.id },
        outcome: 'success',
        ...facts,
        details: { previous_valid_until: result.after.previous_valid_until?.toISOString(), via: 'api' },
      });
      // The grace the previous secret keeps, so whoever rotates can tell the users of the old one.
      return { ...present({ ...result.after, owner_name: row.owner_name }), token, previous_secret_expires_at: result.after.previous_valid_until?.toISOString() ?? null };
    },

    /**
     * Token pairs: the rotation key's one power. It is consumed; a new token and a new key are
     * returned. A consumed key presented again revokes the family. The new expiry repeats the
     * token's lifetime, capped by policy counted from the original issue (or from now when the
     * policy allows sliding renewal).
     */
    async rotateWithKey(key: string, facts: RequestFacts): Promise<(ReturnType<typeof present> & { token: string; rotation_key: string }) | undefined> {
      if (key.length > MAX_TOKEN_LENGTH || parseToken(key) !== 'rk') return undefined;
      const presented = hashToken(key);
      const row = await tokens.findByRotationKey(presented);
      if (!row) {
        const retired = await tokens.findRetired(presented);
        if (retired?.kind === 'rotation_key') {
          audit.record({
            organizationId: retired.organization_id,
            actor: SYSTEM,
            action: 'token.reuse_detected',
            target: { type: 'reference_token', id: retired.token_id },
            outcome: 'failure',
            ...facts,
            details: { credential: 'rotation_key' },
          });
          await revokeFamily(retired.token_id, 'rotation_key_reused', SYSTEM, facts, retired.organization_id);
        }
        return undefined;
      }
      if (stateOf(row) !== 'active' || row.owner_status !== 'active') return undefined;
      const policy = await policyOf(row.organization_id);
      const maxMs = (row.type === 'pat' ? policy.max_pat_lifetime_days : policy.max_sat_lifetime_days) * DAY * 1000;
      const lifetimeMs = (row.lifetime_seconds ?? Math.round((row.expires_at.getTime() - row.created_at.getTime()) / 1000)) * 1000;
      const sliding = policy.token_pair_sliding_renewal === true;
      const expiresAt = new Date(
        sliding ? clock.now() + Math.min(lifetimeMs, maxMs) : Math.min(clock.now() + lifetimeMs, row.created_at.getTime() + maxMs),
      );
      const token = generateToken(row.type);
      const nextKey = generateToken('rk');
      const result = await tokens.rotate({
        id: row.id,
        newSecretHash: hashToken(token),
        previousValidUntil: graceUntil(policy, row),
        now: now(),
        expiresAt,
        consumeRotationKey: { presented, next: hashToken(nextKey) },
      });
      if (!result) {
        // Consumed by a concurrent call between our read and our lock: that is reuse too.
        await revokeFamily(row.id, 'rotation_key_reused', SYSTEM, facts, row.organization_id);
        return undefined;
      }
      await invalidate([result.before]);
      audit.record({
        organizationId: row.organization_id,
        actor: { type: row.type === 'pat' ? 'user' : 'service_account', id: (row.user_id ?? row.service_account_id)!, name: row.owner_name },
        action: 'token.rotated',
        target: { type: 'reference_token', id: row.id },
        outcome: 'success',
        ...facts,
        details: { via: 'rotation_key', expires_at: expiresAt.toISOString(), previous_valid_until: result.after.previous_valid_until?.toISOString() },
      });
      return { ...present({ ...result.after, owner_name: row.owner_name }), token, rotation_key: nextKey };
    },

    /**
     * A leaked-token report (like GitHub's credential revocation API): whoever holds a token string
     * may report it. The token is revoked and its organization gets an audit event. The caller
     * learns nothing: the work happens after the answer, whatever the strings were.
     */
    reportLeaks(candidates: string[], facts: RequestFacts): void {
      const work = async () => {
        for (const candidate of candidates) {
          if (candidate.length > MAX_TOKEN_LENGTH) continue;
          const kind = parseToken(candidate);
          if (!kind) continue;
          const hash = hashToken(candidate);
          const row = kind === 'rk' ? await tokens.findByRotationKey(hash) : await tokens.findByHash(hash);
          if (!row || row.type !== (kind === 'rk' ? row.type : kind)) continue;
          audit.record({
            organizationId: row.organization_id,
            actor: { type: 'anonymous', id: null },
            action: 'token.leak_reported',
            target: { type: 'reference_token', id: row.id },
            outcome: 'success',
            ...facts,
            details: { credential: kind === 'rk' ? 'rotation_key' : 'token', already_revoked: row.revoked_at !== null },
          });
          if (!row.revoked_at) await revokeFamily(row.id, 'leaked', { type: 'anonymous', id: null }, facts, row.organization_id);
        }
      };
      work().catch((error) => logger.error({ err: error }, 'handling a leaked-token report failed'));
    },

    /**
     * Ownership changed (user deactivated, demoted or promoted; service account disabled or
     * re-enabled): every node forgets the owner's tokens, so the next use sees the new state.
     * Call after the change is committed.
     */
    async ownerChanged(ownerId: string): Promise<void> {
      await invalidate(await tokens.hashesOfOwner(ownerId));
    },

    /** Every scope the owner's live PATs/SATs carry (what re-enabling the owner would give back). */
    async scopesHeldBy(organizationId: string, ownerId: string): Promise<string[]> {
      const held = new Set<string>();
      let after: { k: string; id: string } | undefined;
      for (;;) {
        const rows = await tokens.list({ organizationId, ownerId, state: 'active', now: now(), after, limit: 500 });
        for (const row of rows) for (const scope of row.scopes) held.add(scope);
        if (rows.length < 500) return [...held];
        const last = rows.at(-1)!;
        after = { k: last.created_at.toISOString(), id: last.id };
      }
    },

    /** Before deleting a user or service account: revokes its tokens (the rows go with the owner). */
    async revokeOwnerTokens(ownerId: string, reason: string, actor: AuditActor = SYSTEM): Promise<number> {
      let count = 0;
      for (const t of await tokens.hashesOfOwner(ownerId)) if (await revokeFamily(t.id, reason, actor, {}, t.organization_id)) count += 1;
      return count;
    },

    /** Idle revocation: live tokens unused for their organization's idle limit. Returns how many. */
    async revokeIdle(): Promise<number> {
      await deps.flushUsage?.();
      let total = 0;
      for (;;) {
        const revoked = await tokens.revokeIdle(now(), deps.policyDefaults.idle_revocation_days, 500);
        if (revoked.length === 0) break;
        await invalidate(revoked);
        for (const r of revoked) {
          audit.record({ organizationId: r.organization_id, actor: SYSTEM, action: 'token.revoked', target: { type: 'reference_token', id: r.id }, outcome: 'success', details: { reason: 'idle' } });
        }
        total += revoked.length;
        if (revoked.length < 500) break;
      }
      if (total > 0) logger.info({ revoked: total }, 'idle reference tokens revoked');
      return total;
    },
    /**
     * Writes each PAT/SAT that reached its expiry since the last run to the audit trail, as a
     * revocation with reason "expired" (the token stopped working at its expiry on its own; this
     * is the record of why it ended). Bounded batches, like the idle revocation.
     */
    async recordExpiries(): Promise<number> {
      let total = 0;
      for (;;) {
        const expired = await tokens.markExpired(now(), 500);
        for (const t of expired) {
          audit.record({ organizationId: t.organization_id, actor: SYSTEM, action: 'token.revoked', target: { type: 'reference_token', id: t.id }, outcome: 'success', details: { reason: 'expired', token_kind: t.type, expired_at: t.expires_at.toISOString() } });
        }
        total += expired.length;
        if (expired.length < 500) break;
      }
      return total;
    },
  };
}
export type TokenService = ReturnType<typeof createTokenService>;

/** Advisory lock key of the idle-revocation job (unique among jobs). */
export const IDLE_REVOCATION_LOCK_KEY = 0x74_6b_69_64; // "tkid"
/** Advisory lock key of the expiry-recording job. */
export const EXPIRY_RECORDING_LOCK_KEY = 0x74_6b_65_78; // "tkex"
