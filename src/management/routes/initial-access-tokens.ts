import { randomBytes } from 'node:crypto';

import { z } from 'zod';

import { grantDenials, scopeFactsOf } from '../../domain/authority.js';
import { checkScopesAndResources } from '../../domain/client-policy.js';
import { authorityRefused } from '../../http/middleware.js';
import { hashInitialAccessToken, IAT_PREFIX } from '../../domain/initial-access-token.js';
import type { FieldProblem } from '../../domain/client-policy.js';
import { MANAGEMENT_AUDIENCE, OPENID_SCOPES } from '../../domain/types.js';
import { newId } from '../../storage/ids.js';
import type { InitialAccessTokenRow } from '../../storage/initial-access-token-repository.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { assertValid, iso, notFound } from '../problems.js';
import { route } from '../route.js';
import { uriText } from '../schemas.js';
import type { Route } from '../route.js';
import type { ResourceRouteDependencies } from './dependencies.js';

/**
 * Initial access tokens for RFC 7591 dynamic registration (§3: the registration endpoint may
 * require one). The token is shown once and stored as its SHA-256; it can be used until it
 * expires or is revoked. A client registered with it lands in this organization and gets at
 * most its scopes and resources. The Management API is never among them: an integration that
 * registers itself must not be able to administer the organization (docs/design.md, "Separation of authority").
 */
const DEFAULT_EXPIRES_IN = 3600;
const MAX_EXPIRES_IN = 30 * 86400;

const iatSchema = z.object({
  id: z.string(),
  scopes: z.array(z.string()),
  resources: z.array(z.string()),
  expires_at: z.string(),
  revoked_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  use_count: z.number(),
  created_at: z.string(),
});

const present = (row: InitialAccessTokenRow) => ({
  id: row.id,
  scopes: row.scopes,
  resources: row.resources,
  expires_at: row.expires_at.toISOString(),
  revoked_at: iso(row.revoked_at),
  last_used_at: iso(row.last_used_at),
  use_count: row.use_count,
  created_at: row.created_at.toISOString(),
});

const scopeToken = z.string().min(1).max(128).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

export function initialAccessTokenRoutes(deps: ResourceRouteDependencies): Route[] {
  return [
    route({
      method: 'POST',
      path: '/initial-access-tokens',
      scope: 'clients:write',
      tag: 'Dynamic registration',
      summary: 'Issue an initial access token for RFC 7591 registration at /reg; the token is returned once',
      body: z.object({
        expires_in: z.number().int().min(60).max(MAX_EXPIRES_IN).default(DEFAULT_EXPIRES_IN),
        scopes: z.array(scopeToken).max(200).optional(),
        resources: z.array(uriText()).max(50).default([]),
      }).strict(),
      status: 201,
      response: iatSchema.extend({ token: z.string() }),
      async handler(ctx) {
        const { principal, body } = ctx;
        const resources = [...new Set(body.resources)];
        const problems: FieldProblem[] = resources.flatMap((r, i) =>
          r === MANAGEMENT_AUDIENCE ? [{ field: `resources.${i}`, message: 'dynamically registered clients cannot reach the Management API' }] : []);
        let scopes = body.scopes ? [...new Set(body.scopes)] : undefined;
        if (scopes === undefined) {
          // Default: everything the listed APIs define, plus the OpenID scopes.
          scopes = [...OPENID_SCOPES];
          for (const identifier of resources) {
            const rs = await deps.resourceServers.findByIdentifier(identifier);
            if (rs && rs.organization_id === principal.organizationId) scopes.push(...rs.scopes.map((s) => s.name));
          }
        }
        problems.push(...(await checkScopesAndResources({
          organizationId: principal.organizationId,
          scopes,
          resources: resources.filter((r) => r !== MANAGEMENT_AUDIENCE),
          principalScopes: new Set(),
          findResourceServer: (identifier) => deps.resourceServers.findByIdentifier(identifier),
        })));
        assertValid(problems);
        // The token lets anyone holding it register clients with these scopes: the caller must be
        // able to create such a client itself (src/domain/authority.ts).
        const { facts } = await scopeFactsOf(principal.organizationId, resources, (identifier) => deps.resourceServers.findByIdentifier(identifier));
        const denials = grantDenials(principal, 'client', scopes, facts);
        if (denials.length > 0) throw authorityRefused(denials);
        const token = `${IAT_PREFIX}${randomBytes(32).toString('base64url')}`;
        const now = new Date(deps.clock.now());
        const row = await deps.initialAccessTokens.insert({
          id: newId('iat'),
          organization_id: principal.organizationId,
          token_hash: hashInitialAccessToken(token),
          scopes,
          resources,
          created_by: `${principal.actor.type}:${principal.actor.id}`,
          expires_at: new Date(now.getTime() + body.expires_in * 1000),
          now,
        });
        const presented = present(row);
        recordChange(deps.audit, ctx, { action: 'initial_access_token.issued', target: { type: 'initial_access_token', id: row.id }, after: presented, omit: ['use_count', 'last_used_at', 'revoked_at'] });
        return { status: 201, body: { ...presented, token } };
      },
    }),
    route({
      method: 'GET',
      path: '/initial-access-tokens',
      scope: 'clients:read',
      tag: 'Dynamic registration',
      summary: 'List initial access tokens (never their values)',
      query: z.object(pageQuery).strict(),
      response: pageSchema(iatSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.initialAccessTokens.list(principal.organizationId, { after, limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (r) => ({ k: r.created_at.toISOString(), id: r.id }), present) };
      },
    }),
    route({
      method: 'DELETE',
      path: '/initial-access-tokens/{id}',
      scope: 'clients:write',
      tag: 'Dynamic registration',
      summary: 'Revoke an initial access token; clients already registered with it stay',
      errors: [404],
      async handler(ctx) {
        const { principal, params } = ctx;
        const row = await deps.initialAccessTokens.findInOrganization(principal.organizationId, params.id!);
        if (!row) throw notFound('initial access token');
        await deps.initialAccessTokens.revoke(principal.organizationId, row.id, new Date(deps.clock.now()));
        recordChange(deps.audit, ctx, { action: 'initial_access_token.revoked', target: { type: 'initial_access_token', id: row.id } });
        return { status: 204 };
      },
    }),
  ];
}
