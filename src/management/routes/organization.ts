import { z } from 'zod';

import type { OrganizationPolicy } from '../../domain/types.js';
import { cliClientId } from '../../domain/cli-client.js';
import { PLATFORM_SCOPE } from '../../domain/types.js';
import type { AuditActor, AuditLog } from '../../audit/audit-event.js';
import { diff } from '../../audit/audit-event.js';
import { provisionOrganization } from '../../domain/organization-provisioning.js';
import type { ProvisioningDependencies } from '../../domain/organization-provisioning.js';
import type { Organization } from '../../domain/types.js';
import { ProblemError } from '../../http/middleware.js';
import type { OrganizationRepository } from '../../storage/organization-repository.js';
import type { RequestFacts } from '../../tokens/token-service.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { auditContext } from '../audit-context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';

/** Organization policy as the API accepts it: every member optional, each bounded. */
export const policySchema = z
  .object({
    max_pat_lifetime_days: z.number().positive().max(3650),
    max_sat_lifetime_days: z.number().positive().max(3650),
    idle_revocation_days: z.number().positive().max(3650),
    allowed_pat_scopes: z.array(z.string().max(200)).max(500).nullable(),
    refresh_reuse_grace_seconds: z.number().int().min(0).max(60),
    token_rotation_grace_seconds: z.number().int().min(0).max(30 * 86400),
    token_pair_sliding_renewal: z.boolean(),
    client_secret_rotation_grace_seconds: z.number().int().min(0).max(30 * 86400),
    audit_retention_days: z.number().int().min(1).max(3650),
    secret_rotation_days: z.number().int().min(1).max(3650),
    expiry_warning_days: z.array(z.number().positive().max(3650)).max(10),
    refresh_absolute_lifetime_seconds: z.number().int().min(60).max(365 * 86400),
    refresh_idle_lifetime_seconds: z.number().int().min(60).max(365 * 86400),
    refresh_token_issuance: z.enum(['offline_access', 'always']),
    pkce_required_for_confidential_clients: z.boolean(),
    logout_revokes_refresh_tokens: z.boolean(),
  })
  .partial()
  .strict();

const cliClientIdSchema = z.string().describe('The organization\'s built-in public client for user sign-in from scripts and `tessera login` (tessera-cli.<organization id>)');

const organizationSchema = z.object({
  id: z.string(),
  name: z.string(),
  cli_client_id: cliClientIdSchema,
  policy: z.record(z.string(), z.unknown()),
  created_at: z.string(),
  updated_at: z.string(),
});

const nameSchema = z.string().trim().min(1).max(100).regex(/^[\w][\w .-]*$/, 'letters, digits, spaces, dot, dash and underscore only');

export interface OrganizationRouteDependencies extends ProvisioningDependencies {
  organizationRepository: OrganizationRepository;
  policyDefaults: OrganizationPolicy;
  audit: AuditLog;
  /** The effective policy changed: the token service names the tokens a new lifetime cap blocks or frees. */
  onLifetimePolicyChanged?(organizationId: string, before: OrganizationPolicy, after: OrganizationPolicy, actor: AuditActor, facts: RequestFacts): Promise<void>;
  /** Drops this node's cached policy of the organization, so a change applies here at once. */
  onPolicyChanged?: (organizationId: string) => void;
}

export function effectivePolicy(defaults: OrganizationPolicy, org: Pick<Organization, 'policy'>): OrganizationPolicy {
  return { ...defaults, ...org.policy };
}

export function organizationRoutes(deps: OrganizationRouteDependencies): Route[] {
  const present = (org: Organization) => ({
    id: org.id,
    name: org.name,
    cli_client_id: cliClientId(org.id),
    policy: effectivePolicy(deps.policyDefaults, org),
    created_at: org.created_at.toISOString(),
    updated_at: org.updated_at.toISOString(),
  });

  return [
    route({
      method: 'GET',
      path: '/organization',
      scope: 'organization:read',
      tag: 'Organization',
      summary: 'The caller\'s organization and its effective policy',
      response: organizationSchema,
      async handler({ principal }) {
        const org = await deps.organizationRepository.findById(principal.organizationId);
        if (!org) throw new ProblemError(404, 'Not Found', 'no such organization');
        return { body: present(org) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/organization',
      scope: 'organization:write',
      tag: 'Organization',
      summary: 'Rename the organization or change its policy (members not given keep their value)',
      body: z.object({ name: nameSchema.optional(), policy: policySchema.optional() }).strict(),
      response: organizationSchema,
      errors: [409],
      async handler(ctx) {
        const { principal, body } = ctx;
        const before = await deps.organizationRepository.findById(principal.organizationId);
        const org = await deps.organizationRepository.update(principal.organizationId, { name: body.name, policy: body.policy });
        if (!before || !org) throw new ProblemError(404, 'Not Found', 'no such organization');
        deps.onPolicyChanged?.(org.id);
        // Lifetime caps apply at every use: tokens the change blocks or lets work again are named in the trail.
        await deps.onLifetimePolicyChanged?.(org.id, effectivePolicy(deps.policyDefaults, before), effectivePolicy(deps.policyDefaults, org), auditContext(ctx).actor, { requestId: ctx.requestId, ip: ctx.ip, userAgent: ctx.userAgent });
        deps.audit.record({
          ...auditContext(ctx),
          action: 'organization.updated',
          target: { type: 'organization', id: org.id },
          details: { changes: diff({ name: before.name, ...before.policy }, { name: org.name, ...org.policy }) },
        });
        return { body: present(org) };
      },
    }),
    route({
      method: 'POST',
      path: '/organizations',
      scope: PLATFORM_SCOPE,
      tag: 'Organizations',
      summary: 'Create an organization with its first owner and a Management API token for automation',
      body: z
        .object({
          name: nameSchema,
          owner: z.object({
            username: z.string().trim().min(1).max(100).regex(/^[\w.@+-]+$/, 'letters, digits and . @ + - _ only'),
            password: z.string().min(12).max(1024).optional(),
            email: z.string().email().max(320).optional(),
            name: z.string().max(200).optional(),
          }).strict(),
          policy: policySchema.optional(),
        })
        .strict(),
      status: 201,
      response: z.object({
        id: z.string(),
        name: z.string(),
        owner: z.object({ id: z.string(), username: z.string(), password: z.string().optional() }),
        management_token: z.string(),
        cli_client_id: cliClientIdSchema,
      }),
      errors: [409],
      async handler(ctx) {
        const { principal, body } = ctx;
        if (!principal.platformAdmin) throw new ProblemError(403, 'Forbidden', 'only the platform administrator may create organizations');
        const result = await provisionOrganization(deps, {
          name: body.name,
          owner: body.owner,
          policy: body.policy,
          serviceAccountName: 'automation',
          platformAdmin: false,
          managementTokenLifetimeDays: body.policy?.max_sat_lifetime_days ?? deps.policyDefaults.max_sat_lifetime_days,
          createdBy: `${principal.actor.type}:${principal.actor.id}`,
        });
        deps.audit.record({
          ...auditContext(ctx),
          action: 'organization.created',
          target: { type: 'organization', id: result.organization.id },
          details: { name: result.organization.name, owner: result.owner.username, service_account_id: result.serviceAccount.id, management_token_id: result.managementTokenId, cli_client_id: result.cliClientId },
        });
        return {
          status: 201,
          body: {
            id: result.organization.id,
            name: result.organization.name,
            owner: { id: result.owner.id, username: result.owner.username, ...(result.ownerPassword ? { password: result.ownerPassword } : {}) },
            management_token: result.managementToken,
            cli_client_id: result.cliClientId,
          },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/organizations',
      scope: PLATFORM_SCOPE,
      tag: 'Organizations',
      summary: 'List every organization (platform administrator only)',
      query: z.object(pageQuery).strict(),
      response: pageSchema(organizationSchema),
      async handler({ principal, query }) {
        if (!principal.platformAdmin) throw new ProblemError(403, 'Forbidden', 'only the platform administrator may list organizations');
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.organizationRepository.list({ after, limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (o) => ({ k: o.created_at.toISOString(), id: o.id }), present) };
      },
    }),
  ];
}
