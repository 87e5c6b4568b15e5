import type { Context, Next } from 'koa';

import type { AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { ClientAuthenticator } from '../oidc/client-authenticator.js';
import { clientClaim, REPLACED_SECRET } from '../oidc/client-authenticator.js';
import type { ClientFailureLimit } from '../oidc/client-failure-limit.js';
import { readFormBody, single } from '../http/form-body.js';
import { invalidRequest, OAuthError } from '../http/oauth-error.js';
import { oauthTooManyRequests } from '../http/rate-limit.js';
import type { KeyRing } from '../keys/key-ring.js';
import type { IntrospectionMetrics, TesseraMetrics } from '../metrics/metrics.js';
import type { CacheStore } from '../storage/cache.js';
import type { ReferenceTokenRepository } from '../storage/reference-token-repository.js';
import { hashToken, parseToken } from './format.js';
import type { Introspection, IntrospectionCaller } from './introspection.js';
import { tokenShape } from './introspection.js';
import { originCheck, setCors, unsetCors } from './cross-origin.js';
import { createIntrospectionResponder, JWT_RESPONSE } from './introspection-response.js';
import { createIntrospectionSteps } from './introspection-steps.js';
import type { RevocationList } from './revocation-list.js';

export const INTROSPECTION_PATH = '/token/introspection';
export const REVOCATION_PATH = '/token/revocation';

export interface TokenEndpointDependencies {
  issuer: string;
  authenticator: ClientAuthenticator;
  introspection: Introspection;
  revocations: RevocationList;
  referenceTokens: ReferenceTokenRepository;
  cache: CacheStore;
  keys: KeyRing;
  clock: Clock;
  audit: AuditLog;
  /** Introspection latency/result counters and revocations by reason (optional, see metrics.ts). */
  metrics?: { introspection: IntrospectionMetrics; tokenRevoked: TesseraMetrics['tokenRevoked'] };
  /** The organization of a client id, to attribute failed client authentication (optional). */
  clientOrganization?: (clientId: string) => Promise<string | undefined>;
  /**
   * Failed client authentication per source address and claimed client (config
   * `rateLimits.tokenFailures`, shared with /token): over it, 429 (optional).
   */
  failures?: ClientFailureLimit;
  /**
   * Where failed client authentication is recorded: the aggregator that folds repeats into one
   * event (src/audit/failure-aggregator.ts); `audit` when not given.
   */
  failureAudit?: Pick<AuditLog, 'record'>;
  /**
   * Revokes a PAT/SAT family for a client allowed to (RFC 7009, `mayRevoke` in src/domain/authority.ts): the token service does it,
   * so every node's cache drops it and the audit trail records it.
   */
  revokeReferenceToken?: (tokenId: string, caller: IntrospectionCaller, facts: { requestId?: string; ip?: string; userAgent?: string }) => Promise<void>;
  /** Called when an opaque access token is revoked, so every node drops it from its local cache. */
  onOpaqueRevoked?: (token: string) => Promise<void>;
}

/** The token kind label of the introspection metrics, from prefixes only: no parsing on the hot path. */
export function metricKind(token: string): 'pat' | 'sat' | 'jwt' | 'opaque' {
  if (token.startsWith('tsr_pat_')) return 'pat';
  if (token.startsWith('tsr_sat_')) return 'sat';
  const dot = token.indexOf('.');
  return token.startsWith('eyJ') && dot > 0 && token.indexOf('.', dot + 1) > dot ? 'jwt' : 'opaque';
}

/**
 * Tessera's introspection (RFC 7662) and revocation (RFC 7009) endpoints, in front of
 * oidc-provider's. They answer for every access token Tessera issues — reference tokens, JWTs
 * (which the engine refuses to introspect), and opaque tokens — with the audience and
 * organization restriction of docs/design.md, "Least privilege per tenant" (revocation: also the client the token was issued to). A value Tessera does not hold (a refresh token, or
 * garbage) is handed on to oidc-provider, which answers in its own, identical format.
 */
export function createTokenEndpoints(deps: TokenEndpointDependencies) {
  const { issuer, authenticator, introspection, clock } = deps;
  // Introspection's steps, shared with the fast path (src/tokens/introspection-steps.ts).
  const steps = createIntrospectionSteps({
    authenticator,
    introspection,
    responder: createIntrospectionResponder({ issuer, keys: deps.keys, clock }),
    endpointUrl: `${issuer}${INTROSPECTION_PATH}`,
  });

  async function isOurs(token: string): Promise<boolean> {
    const shape = tokenShape(token);
    return shape !== 'opaque' || (await introspection.findOpaque(token)) !== undefined;
  }

  /** The client a request names, before it is authenticated: to limit and attribute failures. */
  const claimedClient = (ctx: Context, params: URLSearchParams) => clientClaim(ctx.get('authorization') || undefined, params).clientId?.slice(0, 200);

  /**
   * A source that has used up its failure budget for this client gets 429 whatever it presents,
   * a correct credential included, so the answers tell a guesser nothing (src/oidc/client-failure-limit.ts).
   */
  function refuseShutOut(ctx: Context, claimed: string | undefined): void {
    const retryAfter = deps.failures?.retryAfter(ctx.ip, claimed);
    if (retryAfter !== undefined) throw oauthTooManyRequests(retryAfter);
  }

  /**
   * A value Tessera does not hold goes to the engine, whose failed client authentication counts
   * too; the engine sets its own CORS headers (and skips its origin check when it finds them).
   */
  function handOn(ctx: Context, next: Next, claimed: string | undefined) {
    unsetCors(ctx);
    countEngineFailure(ctx, claimed);
    return next();
  }

  function countEngineFailure(ctx: Context, claimed: string | undefined): void {
    if (!deps.failures) return;
    const { failures } = deps;
    const source = ctx.ip;
    ctx.res.once('finish', () => {
      if (ctx.res.statusCode === 401) void failures.record(source, claimed);
    });
  }

  /** Runs an authentication, auditing and counting a failed one (Koa answers every failure, the fast path none). */
  async function audited<T>(ctx: Context, claimed: string | undefined, attempt: () => T | Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (error) {
      if (error instanceof OAuthError && error.error === 'invalid_client') {
        const facts = requestFacts(ctx);
        const endpoint = ctx.path;
        const failureAudit = deps.failureAudit ?? deps.audit;
        // The client's organization is looked up after the answer is sent, so its admins see
        // attacks on their clients; an unknown client's failure belongs to no organization.
        // Repeats from one source are folded into one event (src/audit/failure-aggregator.ts).
        void (async () => {
          const organizationId = claimed && deps.clientOrganization ? await deps.clientOrganization(claimed).catch(() => undefined) : undefined;
          failureAudit.record({
            organizationId: organizationId ?? null,
            actor: { type: 'client', id: claimed ?? null },
            action: error.detail === REPLACED_SECRET ? 'client.replaced_secret_presented' : 'client.authentication_failed',
            target: claimed && organizationId ? { type: 'client', id: claimed } : undefined,
            outcome: 'failure',
            ...facts,
            details: { endpoint, reason: error.detail },
          });
        })();
        // Counted before the 401 goes out, so a source's next attempt already sees its budget.
        const retryAfter = await deps.failures?.consume(ctx.ip, claimed);
        if (retryAfter !== undefined) throw oauthTooManyRequests(retryAfter);
      }
      throw error;
    }
  }

  const requestFacts = (ctx: Context) => ({ requestId: ctx.state.requestId as string, ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });

  function recordRevocation(ctx: Context, caller: IntrospectionCaller, kind: string, id: string) {
    deps.metrics?.tokenRevoked('rfc7009', kind, caller.organizationId);
    deps.audit.record({
      organizationId: caller.organizationId,
      actor: { type: 'client', id: caller.clientId },
      action: 'token.revoked',
      target: { type: kind, id },
      outcome: 'success',
      ...requestFacts(ctx),
      details: { reason: 'rfc7009', token_kind: kind },
    });
  }

  function noStore(ctx: Context) {
    // RFC 7662 §2.2 / RFC 6749 §5.1: token information must not be cached.
    ctx.set('cache-control', 'no-store');
    ctx.set('pragma', 'no-cache');
  }

  async function introspect(ctx: Context, next: Next) {
    const params = await readFormBody(ctx.req);
    const claimed = claimedClient(ctx, params);
    refuseShutOut(ctx, claimed);
    const parsed = steps.parse(params);
    if (parsed !== undefined && !(await isOurs(parsed))) {
      // A refresh token, or a value nobody holds: the engine answers it, and it is an
      // introspection all the same (the metrics and the per-day count, src/metrics/introspection-counts.ts).
      const started = performance.now();
      await handOn(ctx, next, claimed);
      if (ctx.status === 200 && claimed && deps.metrics) {
        const organizationId = deps.clientOrganization ? await deps.clientOrganization(claimed).catch(() => undefined) : undefined;
        const body = typeof ctx.body === 'object' && ctx.body !== null ? (ctx.body as { active?: unknown; token_type?: unknown }) : {};
        const active = body.active === true;
        deps.metrics.introspection.observe(active && body.token_type === 'refresh_token' ? 'refresh' : 'unknown', active ? 'active' : 'inactive', (performance.now() - started) / 1000, organizationId);
      }
      return;
    }
    const who = await audited(ctx, claimed, () => steps.authenticate(ctx.get('authorization') || undefined, params, requestFacts(ctx), { found: originCheck(ctx) }));
    const wantsJwt = ctx.accepts('json', JWT_RESPONSE) === JWT_RESPONSE;
    const token = steps.negotiate(parsed, who, wantsJwt);
    const context = steps.context(params);
    const started = performance.now();
    const answer = (await steps.load(token, who, context)) ?? { active: false };
    deps.metrics?.introspection.observe(metricKind(token), answer.active ? 'active' : 'inactive', (performance.now() - started) / 1000, who.caller.organizationId);
    noStore(ctx);
    // RFC 9701: a signed (and, when registered, encrypted) JWT answer when the caller asks for one.
    if (wantsJwt) {
      ctx.type = `${JWT_RESPONSE}; charset=utf-8`;
      ctx.body = await steps.render.jwt(answer, who);
      return;
    }
    ctx.type = 'json';
    ctx.body = steps.render.json(answer);
  }

  async function revoke(ctx: Context, next: Next) {
    const params = await readFormBody(ctx.req);
    const claimed = claimedClient(ctx, params);
    refuseShutOut(ctx, claimed);
    const token = single(params, 'token');
    if (token !== undefined && token.length > 0 && !(await isOurs(token))) return handOn(ctx, next, claimed);
    const { view } = await audited(ctx, claimed, () =>
      authenticator.authenticate(ctx.get('authorization') || undefined, params, `${issuer}${REVOCATION_PATH}`, requestFacts(ctx), { found: originCheck(ctx) }),
    );
    const caller: IntrospectionCaller = { clientId: view.record.client_id, organizationId: view.record.organization_id, audiences: view.introspectionAudiences };
    if (!token) throw invalidRequest("missing required parameter 'token'");
    noStore(ctx);
    // RFC 7009 §2.2: the answer is 200 whether or not there was anything to revoke.
    ctx.status = 200;
    ctx.body = '';
    // RFC 7009 §2.1: the token's own client or its API's introspection client (`mayRevoke` in src/domain/authority.ts).
    const target = await introspection.revocable(token, caller);
    if (!target) return;
    if (target.kind === 'reference') {
      if (deps.revokeReferenceToken) {
        await deps.revokeReferenceToken(target.tokenId, caller, requestFacts(ctx));
      } else if (parseToken(token)) {
        const row = await deps.referenceTokens.findByHash(hashToken(token));
        if (row && (await deps.referenceTokens.revoke(row.id, 'rfc7009', new Date(clock.now())))) recordRevocation(ctx, caller, row.type, row.id);
      }
    } else if (target.kind === 'jwt') {
      await deps.revocations.revoke(target.jti, target.organizationId, target.exp);
      recordRevocation(ctx, caller, 'access_token', target.jti);
    } else {
      await introspection.destroyOpaque(token);
      await deps.onOpaqueRevoked?.(token);
      // Tokens exchanged from it name it by this id (src/tokens/exchange-lineage.ts): they end with it, on every node.
      await deps.revocations.revoke(target.lineageId, target.organizationId, target.exp);
      recordRevocation(ctx, caller, 'access_token', 'opaque');
    }
  }

  return async function tokenEndpoints(ctx: Context, next: Next) {
    const endpoint = ctx.method === 'POST' ? (ctx.path === INTROSPECTION_PATH ? introspect : ctx.path === REVOCATION_PATH ? revoke : undefined) : undefined;
    if (!endpoint) return next();
    // Every answer written here, errors included, carries the engine's CORS headers (src/tokens/cross-origin.ts).
    setCors(ctx);
    return endpoint(ctx, next);
  };
}
