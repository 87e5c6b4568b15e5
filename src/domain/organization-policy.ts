import type { Clock } from '../clock.js';
import type { OrganizationPolicy } from './types.js';

export interface PolicySource {
  findById(id: string): Promise<{ policy: Partial<OrganizationPolicy> } | undefined>;
}

/**
 * Organization policy as every part of Tessera reads it: the configured defaults, overridden
 * member by member by what the organization stored (docs/design.md, "The domain").
 *
 * oidc-provider asks some questions synchronously (`ttl.*` and `pkce.required` must return a
 * value, not a Promise), so the policy is loaded asynchronously wherever the engine first meets
 * an organization (when it loads a client) and read back with `cached` inside those callbacks.
 * Entries are reused for `ttlMs`, so a policy change reaches every node within that time.
 */
export function createPolicyService(deps: { organizations: PolicySource; defaults: OrganizationPolicy; clock: Clock; ttlMs?: number }) {
  const ttlMs = deps.ttlMs ?? 30_000;
  const entries = new Map<string, { policy: OrganizationPolicy; until: number }>();

  const merge = (stored: Partial<OrganizationPolicy> | undefined): OrganizationPolicy => ({ ...deps.defaults, ...(stored ?? {}) });

  return {
    /** The organization's effective policy (defaults for an unknown organization). */
    async forOrganization(organizationId: string | undefined): Promise<OrganizationPolicy> {
      if (!organizationId) return deps.defaults;
      const hit = entries.get(organizationId);
      if (hit && hit.until > deps.clock.now()) return hit.policy;
      const organization = await deps.organizations.findById(organizationId);
      const policy = merge(organization?.policy);
      entries.set(organizationId, { policy, until: deps.clock.now() + ttlMs });
      return policy;
    },
    /** The last loaded policy, for synchronous engine callbacks; defaults if never loaded. */
    cached(organizationId: string | undefined): OrganizationPolicy {
      return (organizationId ? entries.get(organizationId)?.policy : undefined) ?? deps.defaults;
    },
    /** The policy without waiting when it is cached and fresh (the introspection fast path), else loaded. */
    current(organizationId: string): OrganizationPolicy | Promise<OrganizationPolicy> {
      const hit = entries.get(organizationId);
      return hit && hit.until > deps.clock.now() ? hit.policy : this.forOrganization(organizationId);
    },
    /** Drops a cached policy at once (after the Management API changes it). */
    invalidate(organizationId?: string): void {
      if (organizationId === undefined) entries.clear();
      else entries.delete(organizationId);
    },
  };
}
export type PolicyService = ReturnType<typeof createPolicyService>;

const DAY_SECONDS = 86_400;

/** The lifetime a PAT/SAT was issued with (a token pair's renewal repeats it); older rows: expiry minus creation. */
export function tokenLifetimeSeconds(token: { lifetime_seconds: number | null; expires_at: Date; created_at: Date }): number {
  return token.lifetime_seconds ?? Math.round((token.expires_at.getTime() - token.created_at.getTime()) / 1000);
}

/** The organization's longest allowed lifetime of a PAT or SAT, in seconds. */
export const lifetimeCapSeconds = (policy: Pick<OrganizationPolicy, 'max_pat_lifetime_days' | 'max_sat_lifetime_days'>, type: 'pat' | 'sat') =>
  (type === 'pat' ? policy.max_pat_lifetime_days : policy.max_sat_lifetime_days) * DAY_SECONDS;

/**
 * The lifetime policy at use time (docs/tokens.md): a PAT/SAT whose lifetime is longer than the
 * organization allows now is refused wherever it is used, without being changed, so lowering
 * `max_pat_lifetime_days` / `max_sat_lifetime_days` stops tokens issued under the old cap and
 * raising it back lets them work again. Issue applies the same cap to a new token.
 */
export function exceedsLifetimeCap(lifetimeSeconds: number, type: 'pat' | 'sat', policy: Pick<OrganizationPolicy, 'max_pat_lifetime_days' | 'max_sat_lifetime_days'>): boolean {
  return lifetimeSeconds > lifetimeCapSeconds(policy, type);
}
