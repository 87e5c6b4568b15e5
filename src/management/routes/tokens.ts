import { z } from 'zod';

import { ProblemError } from '../../http/middleware.js';
import type { RateLimiter } from '../../http/rate-limit.js';
import type { Logger } from '../../http/logger.js';
import { parseCidr } from '../../domain/token-constraints.js';
import { hashToken, MAX_TOKEN_LENGTH, tokenKey } from '../../tokens/format.js';
import { THUMBPRINT_PATTERN } from '../../tokens/key-binding.js';
import type { CredentialIdentification } from '../../tokens/credential-identification.js';
import { PartnerKeysUnavailableError } from '../../tokens/github-secret-scanning.js';
import type { GithubScanning, SignatureVerdict } from '../../tokens/github-secret-scanning.js';
import type { TokenService } from '../../tokens/token-service.js';
import { MIN_EXPIRES_IN } from '../../tokens/token-service.js';
import { bearerToken, unauthorized } from '../auth.js';
import type { Idempotency } from '../idempotency.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { route } from '../route.js';
import { parseJson, parseWith } from '../router.js';
import { text } from '../schemas.js';
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
  not_before: z.string().nullable(),
  allowed_ips: z.array(z.string()).nullable(),
  cnf: z.object({ jkt: z.string() }).optional().describe('Key-bound tokens only: the RFC 7638 thumbprint of the DPoP key it is bound to (RFC 7800 confirmation)'),
});

const withSecret = tokenSchema.extend({
  token: z.string().describe('The secret, shown this once'),
  rotation_key: z.string().optional().describe('Token pairs only: the rotation key, shown this once'),
});

/** Ids one listing may name (a page of the audit trail names at most this many tokens). */
const MAX_IDS = 100;

const rfc3339 = z.string().datetime({ offset: true }).transform((s) => new Date(s));

const identifiedSchema = z.object({
  kind: z.enum(['pat', 'sat', 'rotation_key', 'client_secret']),
  id: z.string().describe('The token id (tok_…), or the client id of a client secret'),
  matched: z.enum(['current_secret', 'previous_secret', 'rotation_key']),
  name: z.string().nullable(),
  owner: z.object({ type: z.string(), id: z.string(), name: z.string().nullable(), status: z.string() }).nullable(),
  scopes: z.array(z.string()),
  resources: z.array(z.string()),
  state: z.enum(['active', 'revoked', 'expired']),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  use_count: z.number().nullable(),
  addresses: z.array(z.object({ ip: z.string(), last_seen: z.string() })).describe('Client addresses it was used from (a PAT/SAT\'s telemetry) or that the audit trail recorded for it, most recent first, at most 5'),
  risk_score: z.number().nullable().describe('As the token inventory scores it; null when it is no longer live'),
  risk_reasons: z.array(z.object({ code: z.string(), points: z.number(), detail: z.string() })),
  revoked: z.boolean().describe('This call ended it'),
});

export interface TokenRouteDependencies {
  tokens: TokenService;
  identification: CredentialIdentification;
  /** Idempotency-Key for the rotation routes (src/management/idempotency.ts). */
  idempotency: Idempotency;
  leakReports: RateLimiter;
  githubScanning: Pick<GithubScanning, 'verify' | 'firstDelivery'>;
  logger: Logger;
  realm: string;
}

/** The most strings one leak report may carry (GitHub's credential revocation API takes as many). */
export const MAX_LEAK_REPORT = 1000;
/** A reported string longer than this cannot be a Tessera token; a little slack keeps the schema from naming the limit. */
const MAX_REPORTED_LENGTH = MAX_TOKEN_LENGTH * 4;
/** Room for a full report (1,000 matches with their URLs); anything larger is 413 before it is read. */
export const LEAK_REPORT_BODY_LIMIT = 1024 * 1024;

/** GitHub's report: a JSON array of matches; `url` may be empty, `source` is compared without regard to case. */
const githubReportSchema = z
  .array(z.object({ token: z.string().max(MAX_REPORTED_LENGTH), type: z.string().max(200), url: z.string().max(4096), source: z.string().max(100) }))
  .min(1)
  .max(MAX_LEAK_REPORT);

/** The Idempotency-Key request header, when there is one. */
const idempotencyKey = (ctx: RouteContext<unknown, unknown>) => ctx.koa.get('idempotency-key') || undefined;

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
          not_before: rfc3339.optional().describe('Not usable before this time'),
          allowed_ips: z
            .array(z.string().max(64).refine((v) => parseCidr(v) !== undefined, 'must be an IP address or CIDR range'))
            .min(1)
            .max(20)
            .optional()
            .describe('Client addresses (CIDR) it may be used from: checked at the Management API, and at introspection when the resource server passes client_ip'),
          cnf: z
            .object({ jkt: z.string().regex(THUMBPRINT_PATTERN, 'must be a base64url SHA-256 JWK thumbprint (RFC 7638, 43 characters)') })
            .strict()
            .optional()
            .describe('Bind the token to a DPoP key (RFC 9449 §6.1): introspection answers it active only when the resource server passes the matching dpop_jkt. Not for the Management API'),
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
      summary: 'Rotate a token pair with its rotation key as Bearer credential: returns a new token and a new key; the old key is consumed. A retry with the same Idempotency-Key header returns the same answer',
      body: z.object({}).strict(),
      response: withSecret,
      errors: [401],
      async handler(ctx) {
        const key = bearerToken(ctx.koa);
        if (!key) throw new ProblemError(401, 'Unauthorized', 'a rotation key (tsr_rk_…) is required as Bearer credential', {}, { 'www-authenticate': `Bearer realm="${deps.realm}"` });
        // A retry with the same Idempotency-Key gets the first answer: the key it consumed is
        // not presented again, so a lost answer never looks like a stolen key being reused.
        const rotated = await deps.idempotency.run(`rotation-key:${tokenKey(key)}`, idempotencyKey(ctx), '{}', async () => {
          const answer = await tokens.rotateWithKey(key, facts(ctx));
          if (!answer) throw unauthorized(deps.realm, 'the rotation key is invalid, consumed or its token is no longer active');
          return answer;
        });
        return { body: rotated };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/leaks',
      scope: null,
      auth: 'none',
      tag: 'Tokens',
      summary: `Report leaked tokens, up to ${MAX_LEAK_REPORT} strings (anyone holding one may); they are revoked. The answer is the same whatever was sent`,
      body: z.object({ tokens: z.array(z.string().max(MAX_REPORTED_LENGTH)).min(1).max(MAX_LEAK_REPORT) }).strict(),
      bodyLimit: LEAK_REPORT_BODY_LIMIT,
      status: 202,
      response: z.object({ status: z.literal('accepted') }),
      errors: [413, 429],
      async handler(ctx) {
        const wait = await deps.leakReports.consume(ctx.ip);
        if (wait !== undefined) throw new ProblemError(429, 'Too Many Requests', 'too many leak reports; retry later', {}, { 'retry-after': String(wait) });
        // Not awaited: the answer must not depend on (or take longer for) tokens that exist.
        tokens.reportLeaks(ctx.body.tokens.map((token) => ({ token })), { source: 'public', facts: facts(ctx) }).catch((error: unknown) => deps.logger.error({ err: error }, 'handling a leaked-token report failed'));
        return { status: 202, body: { status: 'accepted' } };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/leaks/github',
      scope: null,
      auth: 'none',
      tag: 'Tokens',
      summary: 'GitHub secret-scanning partner endpoint: matches signed by GitHub (Github-Public-Key-Identifier, Github-Public-Key-Signature) are revoked; the answer lists the strings Tessera does not hold as false positives',
      body: githubReportSchema,
      rawBody: true,
      bodyLimit: LEAK_REPORT_BODY_LIMIT,
      response: z.array(z.object({ token_hash: z.string(), token_type: z.string(), label: z.literal('false_positive') })),
      errors: [400, 409, 413, 503],
      async handler(ctx) {
        const keyId = ctx.koa.get('github-public-key-identifier');
        const signature = ctx.koa.get('github-public-key-signature');
        if (!keyId || !signature) throw new ProblemError(400, 'Bad Request', 'the report is not signed: Github-Public-Key-Identifier and Github-Public-Key-Signature are required');
        const body = ctx.rawBody ?? Buffer.alloc(0);
        let verdict: SignatureVerdict;
        try {
          verdict = await deps.githubScanning.verify(body, keyId, signature);
        } catch (error) {
          if (!(error instanceof PartnerKeysUnavailableError)) throw error;
          deps.logger.warn({ err: error }, 'a secret-scanning report could not be verified');
          throw new ProblemError(503, 'Service Unavailable', 'the signing keys cannot be fetched right now; retry later', {}, { 'retry-after': '60' });
        }
        if (verdict === 'unknown_key') throw new ProblemError(400, 'Bad Request', 'the report is signed with an unknown key');
        if (verdict === 'invalid') throw new ProblemError(400, 'Bad Request', 'the report signature does not verify');
        const matches = parseWith(githubReportSchema, parseJson(body), 'body');
        if (!(await deps.githubScanning.firstDelivery(body))) throw new ProblemError(409, 'Conflict', 'this report was already received and acted on');
        const held = await tokens.reportLeaks(
          matches.map((m) => ({ token: m.token, url: m.url, location: m.source.toLowerCase() })),
          { source: 'github', name: 'GitHub secret scanning', facts: facts(ctx) },
        );
        // Feedback for the partner (the answer goes to GitHub only: the report is signed).
        const feedback = matches.flatMap((m, i) => (held[i] ? [] : [{ token_hash: hashToken(m.token).toString('hex'), token_type: m.type, label: 'false_positive' as const }]));
        return { body: feedback };
      },
    }),
    route({
      method: 'POST',
      path: '/tokens/identify',
      scope: 'tokens:read',
      tag: 'Tokens',
      summary: 'Whose is this string? Kind, owner, reach, last use, addresses and risk score of a PAT, SAT, rotation key or client secret of your organization (administrators; 404 for anything else); `revoke: true` ends it in the same call (needs tokens:write)',
      body: z
        .object({
          token: z.string().min(1).max(4096),
          revoke: z.boolean().optional(),
          reason: text(200).optional().describe('Recorded with the revocation; default "leaked"'),
        })
        .strict(),
      response: identifiedSchema,
      errors: [404],
      async handler(ctx) {
        return { body: await deps.identification.identify(ctx.principal, ctx.body, facts(ctx)) };
      },
    }),
    route({
      method: 'GET',
      path: '/tokens/{id}',
      scope: 'tokens:read',
      tag: 'Tokens',
      summary: 'One token: metadata and usage per resource server, never the secret',
      response: tokenSchema.extend({
        usage: z.array(z.object({ resource: z.string(), use_count: z.number(), last_used_at: z.string() })),
        seen_from: z.array(z.object({ ip: z.string(), user_agent: z.string().nullable(), last_seen: z.string() })).describe('The last 5 client addresses and user agents it was used from (written at most once a minute)'),
      }),
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
      summary: 'New secret for the token; the old one keeps working for the grace period (policy token_rotation_grace_seconds), never past expiry, or with cutover "first_use" until the new one is first used. A retry with the same Idempotency-Key header returns the same new secret',
      body: z
        .object({
          cutover: z.enum(['grace', 'first_use']).optional().describe('"first_use": the old secret also stops as soon as the new one is first used'),
        })
        .strict(),
      response: withSecret.extend({ previous_secret_expires_at: z.string().nullable().describe('Until when the previous secret keeps working at the latest') }),
      errors: [404, 409],
      async handler(ctx) {
        const { actor } = ctx.principal;
        const body = await deps.idempotency.run(`rotate:${actor.type}:${actor.id}:${ctx.params.id!}`, idempotencyKey(ctx), JSON.stringify(ctx.body), () =>
          tokens.rotate(ctx.principal, ctx.params.id!, ctx.body, facts(ctx)),
        );
        return { body };
      },
    }),
  ];
}
