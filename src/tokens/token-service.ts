import type { AuditActor, AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { OrganizationPolicy } from '../domain/types.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, PLATFORM_SCOPE } from '../domain/types.js';
import type { Logger } from '../http/logger.js';
import { authorityRefused, ProblemError } from '../http/middleware.js';
import { administersCredentials, grantDenials, rotationDenials, scopeFactsOf, seesCredentialOf } from '../domain/authority.js';
import { exceedsLifetimeCap, lifetimeCapSeconds, tokenLifetimeSeconds } from '../domain/organization-policy.js';
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
  not_before?: Date;
  allowed_ips?: string[];
  /** Key binding (docs/tokens.md): the RFC 7638 thumbprint of the DPoP key the token is bound to. */
  cnf?: { jkt: string };
}

export interface RequestFacts {
  requestId?: string;
  ip?: string;
  userAgent?: string;
}

/** One string of a leak report, with where it was found when the reporter says (a partner's match). */
export interface LeakCandidate {
  token: string;
  /** Where the string was seen (a partner's URL); may be empty. */
  url?: string;
  /** The partner's kind of place (`content`, `commit`, `npm`, …), lower case. */
  location?: string;
}

/** Who reported leaks: `public` (anyone, unauthenticated) or a verified secret-scanning partner. */
export interface LeakReporter {
  source: 'public' | 'github';
  /** Shown as the audit actor's name. */
  name?: string;
  facts: RequestFacts;
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
      not_before: row.not_before?.toISOString() ?? null,
      allowed_ips: row.allowed_ips ?? null,
      // RFC 7800 confirmation: present only for a key-bound token.
      ...(row.cnf_jkt ? { cnf: { jkt: row.cnf_jkt } } : {}),
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
    recordRevoked(id, organizationId ?? revoked.organization_id, reason, actor, facts);
    return true;
  }

  function recordRevoked(id: string, organizationId: string, reason: string, actor: AuditActor, facts: RequestFacts): void {
    audit.record({ organizationId, actor, action: 'token.revoked', target: { type: 'reference_token', id }, outcome: 'success', ...facts, details: { reason } });
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

  // Cutover on first use: the new secret was used, so the previous one ends now, on every node.
  const cutOver = new BoundedCache<true>(10_000, () => clock.now());
  deps.cache.onFirstUse((tokenId, organizationId) => {
    if (cutOver.get(tokenId)) return;
    cutOver.set(tokenId, true, REUSE_DEBOUNCE_MS);
    (async () => {
      const ended = await tokens.endPreviousSecret(tokenId, now());
      if (!ended) return;
      await invalidate([ended]);
      audit.record({ organizationId, actor: SYSTEM, action: 'token.previous_secret_ended', target: { type: 'reference_token', id: tokenId }, outcome: 'success', details: { cutover: 'first_use' } });
    })().catch((error) => logger.error({ err: error, tokenId }, 'ending the previous secret on first use failed'));
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
      // The Management API takes bearer tokens only (src/management/auth.ts refuses a bound one):
      // a bound token for it would be a token nobody can use.
      if (input.cnf !== undefined && resources.includes(MANAGEMENT_AUDIENCE)) {
        throw invalid('cnf', `a key-bound token cannot be used at the Management API, which takes bearer tokens only: leave ${MANAGEMENT_AUDIENCE} out of resources`);
      }
      await checkScopes(p, request, policy);
      const maxDays = input.type === 'pat' ? policy.max_pat_lifetime_days : policy.max_sat_lifetime_days;
      if (exceedsLifetimeCap(input.expires_in, input.type, policy)) {
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
        notBefore: input.not_before,
        allowedIps: input.allowed_ips,
        ...(input.cnf ? { jkt: input.cnf.jkt } : {}),
      });
      audit.record({
        organizationId: p.organizationId,
        actor: actorOf(p),
        action: 'token.issued',
        target: { type: 'reference_token', id: issued.row.id },
        outcome: 'success',
        ...facts,
        details: { type: input.type, name: input.name, scopes, resources, expires_at: issued.row.expires_at.toISOString(), pair: input.pair === true, owner_id: owner.userId ?? owner.serviceAccountId, ...(input.not_before ? { not_before: input.not_before.toISOString() } : {}), ...(input.allowed_ips ? { allowed_ips: input.allowed_ips } : {}), key_bound: input.cnf !== undefined, ...(input.cnf ? { cnf: { jkt: input.cnf.jkt } } : {}) },
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
      const [usage, seen] = await Promise.all([tokens.usage(id), tokens.sightings(id)]);
      return {
        ...present(row),
        usage: usage.map((u) => ({ resource: u.resource, use_count: Number(u.use_count), last_used_at: u.last_used_at.toISOString() })),
        seen_from: seen.map((s) => ({ ip: s.ip, user_agent: s.user_agent || null, last_seen: new Date(s.last_seen).toISOString() })),
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
    async rotate(p: Principal, id: string, options: { cutover?: 'grace' | 'first_use' }, facts: RequestFacts) {
      const row = await visibleToken(p, id);
      // Rotation hands out the token's whole power: the caller must be able to issue it now.
      const scopeFacts = await scopeFactsOf(row.organization_id, row.resources, (identifier) => deps.resourceServers.findByIdentifier(identifier));
      const denials = rotationDenials(p, row, scopeFacts.facts);
      if (denials.length > 0) throw authorityRefused(denials);
      if (stateOf(row) !== 'active') throw new ProblemError(409, 'Conflict', `the token is ${stateOf(row)} and cannot be rotated`);
      const policy = await policyOf(row.organization_id);
      const token = generateToken(row.type);
      const firstUse = options.cutover === 'first_use';
      const result = await tokens.rotate({ id: row.id, newSecretHash: hashToken(token), previousValidUntil: graceUntil(policy, row), now: now(), endPreviousOnFirstUse: firstUse });
      if (!result) throw new ProblemError(409, 'Conflict', 'the token is revoked and cannot be rotated');
      await invalidate([result.before]);
      audit.record({
        organizationId: row.organization_id,
        actor: actorOf(p),
        action: 'token.rotated',
        target: { type: 'reference_token', id: row.id },
        outcome: 'success',
        ...facts,
        details: { previous_valid_until: result.after.previous_valid_until?.toISOString(), via: 'api', cutover: firstUse ? 'first_use' : 'grace' },
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
      const maxMs = lifetimeCapSeconds(policy, row.type) * 1000;
      const lifetimeMs = tokenLifetimeSeconds(row) * 1000;
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
     * A leaked-token report: whoever holds a token string may report it (the public endpoint, like
     * GitHub's credential revocation API), and a secret-scanning partner reports what it found
     * (a verified GitHub report). Each held token is revoked with reason `leaked` and its
     * organization gets a `token.leak_reported` and a `token.revoked` event. Strings of the wrong
     * shape or checksum are dropped before any storage lookup; the rest cost one statement to look
     * up and one to revoke, whatever their number. Returns, per candidate, whether Tessera holds
     * it: the partner's feedback. The public endpoint does not wait for it and answers the same
     * whatever was sent.
     */
    async reportLeaks(candidates: readonly LeakCandidate[], reporter: LeakReporter): Promise<boolean[]> {
      const hashes = candidates.map((c) => (c.token.length <= MAX_TOKEN_LENGTH && parseToken(c.token) ? hashToken(c.token) : undefined));
      const present = hashes.filter((h): h is Buffer => h !== undefined);
      if (present.length === 0) return candidates.map(() => false);
      const found = new Map<string, { row: ReferenceTokenRow; credential: 'token' | 'rotation_key' }>();
      for (const row of await tokens.findByAnyHash(present)) {
        found.set(row.secret_hash.toString('hex'), { row, credential: 'token' });
        if (row.previous_secret_hash) found.set(row.previous_secret_hash.toString('hex'), { row, credential: 'token' });
        if (row.rotation_key_hash) found.set(row.rotation_key_hash.toString('hex'), { row, credential: 'rotation_key' });
      }
      const matches = hashes.map((h) => (h ? found.get(h.toString('hex')) : undefined));
      const actor: AuditActor = { type: 'anonymous', id: null, ...(reporter.name ? { name: reporter.name } : {}) };
      const reported = new Set<string>();
      matches.forEach((match, i) => {
        if (!match || reported.has(match.row.id)) return;
        reported.add(match.row.id);
        const candidate = candidates[i]!;
        audit.record({
          organizationId: match.row.organization_id,
          actor,
          action: 'token.leak_reported',
          target: { type: 'reference_token', id: match.row.id },
          outcome: 'success',
          ...reporter.facts,
          details: {
            reporter: reporter.source,
            credential: match.credential,
            already_revoked: match.row.revoked_at !== null,
            ...(candidate.url ? { url: candidate.url } : {}),
            ...(candidate.location ? { location: candidate.location } : {}),
          },
        });
      });
      const live = [...new Set(matches.filter((m) => m && !m.row.revoked_at).map((m) => m!.row.id))];
      const revoked = await tokens.revokeMany(live, 'leaked', now());
      await invalidate(revoked);
      for (const r of revoked) recordRevoked(r.id, r.organization_id, 'leaked', actor, reporter.facts);
      return matches.map((m) => m !== undefined);
    },

    /**
     * The organization's lifetime caps changed (docs/tokens.md, lifetime policy at use time):
     * each live PAT/SAT that the new policy blocks, and each one it lets work again, gets an
     * audit event (and so a webhook). Nothing is rewritten: the cap is applied at every use.
     */
    async lifetimePolicyChanged(organizationId: string, before: OrganizationPolicy, after: OrganizationPolicy, actor: AuditActor, facts: RequestFacts): Promise<void> {
      if (before.max_pat_lifetime_days === after.max_pat_lifetime_days && before.max_sat_lifetime_days === after.max_sat_lifetime_days) return;
      let cursor: { k: string; id: string } | undefined;
      for (;;) {
        const rows = await tokens.list({ organizationId, state: 'active', now: now(), after: cursor, limit: 500 });
        for (const row of rows) {
          const lifetime = tokenLifetimeSeconds(row);
          const was = exceedsLifetimeCap(lifetime, row.type, before);
          const is = exceedsLifetimeCap(lifetime, row.type, after);
          if (was === is) continue;
          audit.record({
            organizationId,
            actor,
            action: is ? 'token.blocked_by_policy' : 'token.unblocked_by_policy',
            target: { type: 'reference_token', id: row.id },
            outcome: 'success',
            ...facts,
            details: { reason: 'lifetime_exceeds_policy', token_kind: row.type, lifetime_days: Math.round((lifetime / 86400) * 100) / 100, max_lifetime_days: row.type === 'pat' ? after.max_pat_lifetime_days : after.max_sat_lifetime_days },
          });
        }
        if (rows.length < 500) return;
        const last = rows.at(-1)!;
        cursor = { k: last.created_at.toISOString(), id: last.id };
      }
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
          recordRevoked(r.id, r.organization_id, 'idle', SYSTEM, {});
        }
        total += revoked.length;
        if (revoked.length < 500) break;
      }
      if (total > 0) logger.info({ revoked: total }, 'idle reference tokens revoked');
      return total;
    },
    /**
     * Expiry warnings: a `token.expiring` event (and so a webhook) for each PAT/SAT that came
     * within one of its organization's thresholds (policy `expiry_warning_days`), exactly once per
     * threshold and expiry, so automation can rotate before the token stops. A token that crossed
     * several thresholds at once (a week-long token, seen by the 30- and 7-day thresholds) is
     * warned for the tightest; the wider ones are passed over. Bounded batches, like the idle job.
     */
    async warnExpiring(): Promise<number> {
      let total = 0;
      for (let round = 0; round < 20; round += 1) {
        const due = await tokens.dueExpiryWarnings(now(), deps.policyDefaults.expiry_warning_days, 500);
        if (due.length === 0) break;
        const tightest = new Map<string, (typeof due)[number]>();
        for (const d of due) if (!tightest.has(d.id) || d.threshold_days < tightest.get(d.id)!.threshold_days) tightest.set(d.id, d);
        const claimed = await tokens.claimExpiryWarnings(
          due.map((d) => ({ tokenId: d.id, thresholdDays: d.threshold_days, expiresAt: d.expires_at })),
          now(),
        );
        const announce = new Set(claimed.map((c) => `${c.token_id}:${Number(c.threshold_days)}`));
        for (const d of tightest.values()) {
          if (!announce.has(`${d.id}:${Number(d.threshold_days)}`)) continue;
          audit.record({
            organizationId: d.organization_id,
            actor: SYSTEM,
            action: 'token.expiring',
            target: { type: 'reference_token', id: d.id },
            outcome: 'success',
            details: { threshold_days: Number(d.threshold_days), expires_at: d.expires_at.toISOString(), token_kind: d.type, name: d.name, owner_id: d.owner_id },
          });
          total += 1;
        }
        if (due.length < 500) break;
      }
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
/** Advisory lock key of the expiry-warning job. */
export const EXPIRY_WARNING_LOCK_KEY = 0x74_6b_77_6e; // "tkwn"
/** Advisory lock key of the expiry-recording job. */
export const EXPIRY_RECORDING_LOCK_KEY = 0x74_6b_65_78; // "tkex"
