import { Readable } from 'node:stream';

import { z } from 'zod';

import type { InventoryItem, TokenInventory } from '../../audit/token-inventory.js';
import { inventoryCsvHeader, inventoryCsvRow } from '../../audit/token-inventory.js';
import type { OrganizationPolicy } from '../../domain/types.js';
import { administersCredentials, seesCredentialOf } from '../../domain/authority.js';
import { ProblemError } from '../../http/middleware.js';
import type { OrganizationRepository } from '../../storage/organization-repository.js';
import { decodeCursor, encodeCursor, pageQuery } from '../pagination.js';
import { route } from '../route.js';
import type { Route } from '../route.js';

const reasonSchema = z.object({ code: z.string(), points: z.number(), detail: z.string() });

const itemSchema = z.object({
  id: z.string(),
  kind: z.enum(['pat', 'sat', 'client_secret', 'refresh_token_family']),
  name: z.string().nullable(),
  owner: z.object({ type: z.string(), id: z.string(), name: z.string().nullable(), status: z.string() }),
  client_id: z.string().nullable(),
  scopes: z.array(z.string()),
  audiences: z.array(z.string()),
  created_at: z.string(),
  age_days: z.number(),
  expires_at: z.string().nullable(),
  expires_in_days: z.number().nullable(),
  last_used_at: z.string().nullable(),
  idle_days: z.number().nullable(),
  use_count: z.number().nullable(),
  risk_score: z.number().int().min(0).max(100),
  risk_reasons: z.array(reasonSchema),
  blocked_reason: z.string().nullable().describe('lifetime_exceeds_policy: live, but refused at every use because its lifetime is longer than the organization allows now'),
  cnf: z.object({ jkt: z.string() }).optional().describe('A key-bound PAT or SAT: the RFC 7638 thumbprint of the DPoP key it is bound to'),
});

const query = z
  .object({
    ...pageQuery,
    kind: z.enum(['pat', 'sat', 'client_secret', 'refresh_token_family']).optional(),
    owner: z.string().min(1).max(200).optional(),
    owner_status: z.enum(['active', 'inactive']).optional(),
    min_score: z.coerce.number().int().min(0).max(100).optional(),
    min_idle_days: z.coerce.number().int().min(0).max(36500).optional(),
    expires_within_days: z.coerce.number().int().min(0).max(36500).optional(),
    audience: z.string().min(1).max(500).optional(),
    scope: z.string().min(1).max(200).optional(),
    format: z.enum(['json', 'csv'], { message: 'format must be json or csv' }).optional(),
  })
  .strict();

/** Sort position of an item in the inventory (risk descending, id ascending), for cursors. */
const position = (item: InventoryItem) => ({ k: String(item.risk_score), id: item.id });

/**
 * GET /token-inventory: every live long-lived credential of the organization with its risk
 * score and reasons, riskiest first; `format=csv` (or `Accept: text/csv`) for a spreadsheet.
 */
export function tokenInventoryRoutes(deps: { inventory: TokenInventory; organizations: OrganizationRepository; policyDefaults: OrganizationPolicy }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/token-inventory',
      scope: 'tokens:read',
      tag: 'Tokens',
      summary: 'Live PATs, SATs, client secrets and refresh-token families with their blast-radius risk score, riskiest first (administrators: the organization\'s; anyone else: their own); `format=csv` or `Accept: text/csv` for CSV',
      query,
      queryErrorStatus: 400,
      response: z.object({ items: z.array(itemSchema), next_cursor: z.string().nullable() }),
      errors: [400],
      async handler({ principal, query: q, koa }) {
        const org = await deps.organizations.findById(principal.organizationId);
        const policy = { ...deps.policyDefaults, ...org?.policy };
        const filter = { kind: q.kind, ownerId: q.owner, ownerStatus: q.owner_status, minScore: q.min_score, minIdleDays: q.min_idle_days, expiresWithinDays: q.expires_within_days, audience: q.audience, scope: q.scope };
        const wantsCsv = q.format === 'csv' || (q.format === undefined && koa.accepts('application/json', 'text/csv') === 'text/csv');
        const after = decodeCursor(principal.organizationId, q.cursor);
        if (after && !/^\d{1,3}$/.test(after.k)) throw new ProblemError(400, 'Bad Request', 'cursor: cursor is malformed or belongs to another listing', { errors: [{ field: 'cursor', message: 'invalid cursor' }] });
        // The same rule as GET /tokens (src/domain/authority.ts): administrators see every
        // credential of the organization, anyone else only their own.
        const visible = (item: InventoryItem) => seesCredentialOf(principal, item.owner);

        if (wantsCsv) {
          // The whole filtered inventory, one row per credential.
          const items = (await deps.inventory.list(principal.organizationId, policy, filter)).filter(visible);
          function* lines() {
            yield inventoryCsvHeader();
            for (const item of items) yield inventoryCsvRow(item);
          }
          koa.set('cache-control', 'no-store');
          koa.set('content-disposition', 'attachment; filename="token-inventory.csv"');
          koa.type = 'text/csv; charset=utf-8';
          koa.body = Readable.from(lines());
          return { raw: true };
        }

        // A page in the database's order of stored scores; a viewer who sees only their own
        // credentials gets a page of those (the filter after it is the rule itself, and drops nothing).
        const ownUserId = administersCredentials(principal) ? undefined : principal.actor.type === 'user' ? principal.actor.id : '';
        const { items, more } = await deps.inventory.page(principal.organizationId, policy, filter, { after: after ? { score: Number(after.k), id: after.id } : undefined, limit: q.limit, ownUserId });
        const slice = items.filter(visible);
        return { body: { items: slice, next_cursor: more && slice.length > 0 ? encodeCursor(principal.organizationId, position(slice.at(-1)!)) : null } };
      },
    }),
  ];
}
