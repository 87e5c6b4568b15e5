import { z } from 'zod';

import { reenableDenials } from '../../domain/authority.js';
import type { ServiceAccount } from '../../domain/types.js';
import { authorityRefused } from '../../http/middleware.js';
import { isUniqueViolation } from '../../storage/database.js';
import { newId } from '../../storage/ids.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { conflict, notFound } from '../problems.js';
import { route } from '../route.js';
import { text } from '../schemas.js';
import type { Route } from '../route.js';
import type { ResourceRouteDependencies } from './dependencies.js';

/**
 * Service accounts: the non-human identities of an organization. Disabling one stops its SATs
 * (the reference-token lookup checks the owner) and the clients it owns (the client directory
 * hides them from the token endpoint) at once.
 */
const nameSchema = z.string().trim().min(1).max(100).regex(/^[\w][\w .:@-]*$/, 'letters, digits, spaces and . : @ - _ only');

const accountSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  status: z.enum(['active', 'disabled']),
  created_at: z.string(),
  updated_at: z.string(),
});

export const presentServiceAccount = (account: ServiceAccount) => ({
  id: account.id,
  name: account.name,
  description: account.description,
  status: account.status,
  created_at: account.created_at.toISOString(),
  updated_at: account.updated_at.toISOString(),
});

export function serviceAccountRoutes(deps: ResourceRouteDependencies): Route[] {
  const nameTaken = (error: unknown) => {
    if (isUniqueViolation(error)) throw conflict('name', 'already in use');
    throw error;
  };

  return [
    route({
      method: 'POST',
      path: '/service-accounts',
      scope: 'service-accounts:write',
      tag: 'Service accounts',
      summary: 'Create a service account',
      body: z.object({ name: nameSchema, description: text(500).optional() }).strict(),
      status: 201,
      response: accountSchema,
      errors: [409],
      async handler(ctx) {
        const { principal, body } = ctx;
        const account = await deps.serviceAccounts
          .insert({ id: newId('sa'), organization_id: principal.organizationId, name: body.name, description: body.description ?? null, platform_admin: false })
          .catch(nameTaken);
        const presented = presentServiceAccount(account);
        recordChange(deps.audit, ctx, { action: 'service_account.created', target: { type: 'service_account', id: account.id }, after: presented });
        return { status: 201, body: presented };
      },
    }),
    route({
      method: 'GET',
      path: '/service-accounts',
      scope: 'service-accounts:read',
      tag: 'Service accounts',
      summary: 'List service accounts',
      query: z.object(pageQuery).strict(),
      response: pageSchema(accountSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.serviceAccounts.list(principal.organizationId, { after, limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (a) => ({ k: a.created_at.toISOString(), id: a.id }), presentServiceAccount) };
      },
    }),
    route({
      method: 'GET',
      path: '/service-accounts/{id}',
      scope: 'service-accounts:read',
      tag: 'Service accounts',
      summary: 'One service account',
      response: accountSchema,
      errors: [404],
      async handler({ principal, params }) {
        const account = await deps.serviceAccounts.findInOrganization(principal.organizationId, params.id!);
        if (!account) throw notFound('service account');
        return { body: presentServiceAccount(account) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/service-accounts/{id}',
      scope: 'service-accounts:write',
      tag: 'Service accounts',
      summary: 'Rename, describe, disable (status "disabled") or re-enable a service account',
      body: z.object({
        name: nameSchema.optional(),
        description: text(500).nullable().optional(),
        status: z.enum(['active', 'disabled']).optional(),
      }).strict(),
      response: accountSchema,
      errors: [404, 409],
      async handler(ctx) {
        const { principal, params, body } = ctx;
        const before = await deps.serviceAccounts.findInOrganization(principal.organizationId, params.id!);
        if (!before) throw notFound('service account');
        const changes: Parameters<typeof deps.serviceAccounts.update>[2] = {};
        if (body.name !== undefined) changes.name = body.name;
        if (body.description !== undefined) changes.description = body.description;
        if (body.status !== undefined) changes.status = body.status;
        if (before.status === 'disabled' && body.status === 'active') {
          const clients = await deps.clients.listByServiceAccount(principal.organizationId, before.id);
          const held = [...(await deps.scopesHeldBy?.(principal.organizationId, before.id) ?? []), ...clients.flatMap((c) => c.allowed_scopes)];
          const denials = reenableDenials(principal, before, held);
          if (denials.length > 0) throw authorityRefused(denials);
        }
        const after = await deps.serviceAccounts.update(principal.organizationId, before.id, changes).catch(nameTaken);
        if (!after) throw notFound('service account');
        if (before.status !== after.status) {
          await deps.ownerChanged?.(after.id);
          const owned = await deps.clients.listByServiceAccount(principal.organizationId, after.id);
          await deps.clientsChanged(owned.map((c) => c.client_id));
        }
        const presented = presentServiceAccount(after);
        recordChange(deps.audit, ctx, {
          action: after.status === 'disabled' && before.status !== 'disabled' ? 'service_account.disabled' : 'service_account.updated',
          target: { type: 'service_account', id: after.id },
          before: presentServiceAccount(before),
          after: presented,
        });
        return { body: presented };
      },
    }),
    route({
      method: 'DELETE',
      path: '/service-accounts/{id}',
      scope: 'service-accounts:write',
      tag: 'Service accounts',
      summary: 'Delete a service account and its SATs; refused while it owns clients',
      errors: [404, 409],
      async handler(ctx) {
        const { principal, params } = ctx;
        const target = await deps.serviceAccounts.findInOrganization(principal.organizationId, params.id!);
        if (!target) throw notFound('service account');
        const owning = await deps.clients.listByServiceAccount(principal.organizationId, target.id);
        if (owning.length > 0) throw conflict('id', `the service account owns ${owning.length} client(s); delete them or move them to another account first`);
        // Its SATs are revoked (and dropped from every cache) before the rows go with the account.
        await deps.revokeOwnerTokens?.(target.id, 'owner_deleted');
        const deleted = await deps.db.transaction(async (tx) => {
          const account = await deps.serviceAccounts.findInOrganization(principal.organizationId, params.id!, tx);
          if (!account) throw notFound('service account');
          const owned = await deps.clients.listByServiceAccount(principal.organizationId, account.id, tx);
          // Deleting the owner would leave its clients working without anyone accountable for them.
          if (owned.length > 0) throw conflict('id', `the service account owns ${owned.length} client(s); delete them or move them to another account first`);
          await deps.serviceAccounts.delete(principal.organizationId, account.id, tx);
          return account;
        });
        recordChange(deps.audit, ctx, { action: 'service_account.deleted', target: { type: 'service_account', id: deleted.id }, before: presentServiceAccount(deleted) });
        return { status: 204 };
      },
    }),
  ];
}
