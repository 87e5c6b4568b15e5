import { z } from 'zod';

import { ProblemError } from '../../http/middleware.js';
import type { RateLimiter } from '../../http/rate-limit.js';
import { MAX_TOKEN_LENGTH } from '../../tokens/format.js';
import type { TokenService } from '../../tokens/token-service.js';
import { MIN_EXPIRES_IN } from '../../tokens/token-service.js';
import { bearerToken, unauthorized } from '../auth.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { route } from '../route.js';
import type { Route, RouteContext } from '../route.js';

/**
 * /api/v1/tokens: PATs and SATs (docs/tokens.md). Issue, list, get, revoke, rotate,
 * rotate with a token pair's rotation key, and the public leaked-token report.
 */
const tokenSchema = z.object({
  id: z.string(),
  type: z.enum(['pat', 'sat']),
  name: z.string(),
  owner: z.object({ type: z.enum(['user', 'service_account']), id: z.string(), name: z.string().optional() }),
  scopes: z.array(z.string()),
  resources: z.array(z.string()),
  state: z.enum(['active', 'revoked', 'expired']),
  paired: z.boolean(),
  created_by: z.string().nullable(),
  created_at: z.string(),
  issued_at: z.string(),
  expires_at: z.string(),
  rotated_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  use_count: z.number(),
  revoked_at: z.string().nullable(),
  revoked_reason: z.string().nullable(),
});

const withSecret = tokenSchema.extend({
  token: z.string().describe('The secret, shown this once'),
  rotation_key: z.string().optional().describe('Token pairs only: the rotation key, shown this once'),
});

/** Ids one listing may name (a page of the audit trail names at most this many tokens). */
const MAX_IDS = 100;

const rfc3339 = z.string().datetime({ offset: true }).transform((s) => new Date(s));

export interface TokenRouteDependencies {
  tokens: TokenService;
  leakReports: RateLimiter;
  realm: string;
}

const facts = (ctx: RouteContext<unknown, unknown>) => ({ requestId: ctx.requestId, ip: ctx.ip, userAgent: ctx.userAgent });

export function tokenRoutes(deps: TokenRouteDependencies): Route[] {
  const { tokens } = deps;
  return [
    route({
      method: 'POST',
      path: '/tokens',
      scope: 'tokens:write',
      tag: 'Tokens',
      summary: 'Issue a PAT (for yourself) or a SAT (for a service account; admins and owners); the secret is shown once',
      body: z
        .object({
          type: z.enum(['pat', 'sat']),
          service_account_id: z.string().max(200).optional(),
          name: z.string().trim().min(1).max(100),
          scopes: z.array(z.string().min(1).max(200)).max(200),
          resources: z.array(z.string().min(1).max(2048)).min(1).max(50),
          expires_in: z.number().int().min(MIN_EXPIRES_IN).describe('Seconds; capped by organization policy (max_pat_lifetime_days, max_sat_lifetime_days)'),
          pair: z.boolean().optional().describe('Also issue a rotation key (tsr_rk_…) whose only power is to rotate this token'),
        })
        .strict(),
      status: 201,
      response: withSecret,
      errors: [404],
      async handler(ctx) {
        return { status: 201, body: await tokens.issue(ctx.principal, ctx.body, facts(ctx)) };
      },
    }),
    route({
      method: 'GET',
      path: '/tokens',
      scope: 'tokens:read',
      tag: 'Tokens',
      summary: 'List tokens (members: their own PATs), with filters; never the secrets',
      query: z
        .object({
          ...pageQuery,
          kind: z.enum(['pat', 'sat']).optional(),
          owner: z.string().max(200).optional().describe('A user id or service account id'),
          state: z.enum(['active', 'revoked', 'expired']).optional(),
          expiring_before: rfc3339.optional(),
          last_used_before: rfc3339.optional().describe('Not used since this time; never-used tokens count from their creation'),
          ids: z
            .string()
            .max(4000)
            .transform((v) => v.split(',').filter(Boolean))
            .pipe(z.array(z.string().min(1).max(200)).min(1).max(MAX_IDS))
            .optional()
            .describe(`Only these tokens: ids separated by commas, at most ${MAX_IDS}`),
        })
        .strict(),
      response: pageSchema(tokenSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await tokens.list(principal, {
          type: query.kind,
          owner: query.owner,
          state: query.state,
          expiring_before: query.expiring_before,
          last_used_before: query.last_used_before,
          ids: query.ids,
          after,
          limit: query.limit + 1,
        });
        return { body: page(principal.organizationId, rows, query.limit, (r) => ({ k: r.created_at.toISOString(), id: r.id }), tokens.present) };
      },
    }),
    route({
      method: 'GET',
      path: '/token-options',
      scope: 'tokens:write',
      tag: 'Tokens',
      summary: 'What the caller may put into a new PAT or SAT now: each API of the organization with its scopes and descriptions, each marked grantable or with why not, and the lifetime cap of organization policy',
      query: z.object({ type: z.enum(['pat', 'sat']).default('pat') }).strict(),
      response: z.object({
        type: z.enum(['pat', 'sat']),
        max_lifetime_days: z.number(),
        rotation_grace_seconds: z.number(),
        resources: z.array(z.object({
          identifier: z.string(),
          name: z.string().nullable(),
          sensitive: z.boolean(),
          scopes: z.array(z.object({ name: z.string(), description: z.string().nullable(), grantable: z.boolean(), refusal: z.string().optional() })),
        })),
      }),
      async handler({ principal, query }) {
        return { body: await tokens.options(principal, query.type) };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/rotate',
      scope: null,
      auth: 'none',
      tag: 'Tokens',
      summary: 'Rotate a token pair with its rotation key as Bearer credential: returns a new token and a new key; the old key is consumed',
      body: z.object({}).strict(),
      response: withSecret,
      errors: [401],
      async handler(ctx) {
        const key = bearerToken(ctx.koa);
        if (!key) throw new ProblemError(401, 'Unauthorized', 'a rotation key (tsr_rk_…) is required as Bearer credential', {}, { 'www-authenticate': `Bearer realm="${deps.realm}"` });
        const rotated = await tokens.rotateWithKey(key, facts(ctx));
        if (!rotated) throw unauthorized(deps.realm, 'the rotation key is invalid, consumed or its token is no longer active');
        return { body: rotated };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/leaks',
      scope: null,
      auth: 'none',
      tag: 'Tokens',
      summary: 'Report leaked tokens (anyone holding one may); they are revoked. The answer is the same whatever was sent',
      body: z.object({ tokens: z.array(z.string().max(MAX_TOKEN_LENGTH * 4)).min(1).max(100) }).strict(),
      status: 202,
      response: z.object({ status: z.literal('accepted') }),
      errors: [429],
      async handler(ctx) {
        const wait = await deps.leakReports.consume(ctx.ip);
        if (wait !== undefined) throw new ProblemError(429, 'Too Many Requests', 'too many leak reports; retry later', {}, { 'retry-after': String(wait) });
        tokens.reportLeaks(ctx.body.tokens, facts(ctx));
        return { status: 202, body: { status: 'accepted' } };
      },
    }),
    route({
      method: 'GET',
      path: '/tokens/{id}',
      scope: 'tokens:read',
      tag: 'Tokens',
      summary: 'One token: metadata and usage per resource server, never the secret',
      response: tokenSchema.extend({ usage: z.array(z.object({ resource: z.string(), use_count: z.number(), last_used_at: z.string() })) }),
      errors: [404],
      async handler({ principal, params }) {
        return { body: await tokens.get(principal, params.id!) };
      },
    }),
    route({
      method: 'DELETE',
      path: '/tokens/{id}',
      scope: 'tokens:write',
      tag: 'Tokens',
      summary: 'Revoke a token (all its secrets and its rotation key), effective on every node at once',
      query: z.object({ reason: z.string().trim().min(1).max(200).optional() }).strict(),
      errors: [404],
      async handler(ctx) {
        await tokens.revoke(ctx.principal, ctx.params.id!, ctx.query.reason, facts(ctx));
        return { status: 204 };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/{id}/rotate',
      scope: 'tokens:write',
      tag: 'Tokens',
      summary: 'New secret for the token; the old one keeps working for the grace period (policy token_rotation_grace_seconds), never past expiry',
      body: z.object({}).strict(),
      response: withSecret.extend({ previous_secret_expires_at: z.string().nullable().describe('Until when the previous secret keeps working') }),
      errors: [404, 409],
      async handler(ctx) {
        return { body: await tokens.rotate(ctx.principal, ctx.params.id!, facts(ctx)) };
      },
    }),
  ];
}
