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
    /** Drops a cached policy at once (after the Management API changes it). */
    invalidate(organizationId?: string): void {
      if (organizationId === undefined) entries.clear();
      else entries.delete(organizationId);
    },
  };
}
export type PolicyService = ReturnType<typeof createPolicyService>;
