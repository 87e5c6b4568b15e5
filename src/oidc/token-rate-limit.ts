import type { ServerResponse } from 'node:http';

import type { Context, Next } from 'koa';

import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { readFormBody } from '../http/form-body.js';
import type { RateLimiter } from '../http/rate-limit.js';
import { oauthTooManyRequests } from '../http/rate-limit.js';
import { clientClaim } from './client-authenticator.js';
import type { ClientClaim } from './client-authenticator.js';
import type { ClientFailureLimit } from './client-failure-limit.js';

export const TOKEN_PATH = '/token';

/** The limiter key of a client id. */
export const tokenLimitKey = (clientId: string) => `client:${clientId}`;

/**
 * Methods whose credential Tessera can check before the engine does: a secret, presented in the
 * Basic header or the form (the engine accepts either for a client registered for either).
 */
const SECRET_METHODS: ReadonlySet<string> = new Set(['client_secret_basic', 'client_secret_post']);

/**
 * Set on a request by the token fast path (src/oidc/token-fast-path.ts) when it counted the
 * request already and hands it to Koa: the verdict it got, so the request is not counted twice.
 */
export const COUNTED = Symbol('tessera.tokenRateLimit.counted');
export type CountedRequest = { [COUNTED]?: { retryAfter: number | undefined } };

/**
 * Set on a response that answers 400 as the protocol means it, not as a failure: a device code
 * grant's `authorization_pending` or `slow_down` (RFC 8628 §3.5), marked by
 * src/oidc/device-polling.ts. A device polls for minutes; those answers must not spend its
 * address's failure budget, while a wrong device code (`invalid_grant`) still does.
 */
const NOT_A_FAILURE = Symbol('tessera.tokenRateLimit.notAFailure');
export const markNotAFailure = (res: ServerResponse) => {
  (res as ServerResponse & { [NOT_A_FAILURE]?: true })[NOT_A_FAILURE] = true;
};
const isNotAFailure = (res: ServerResponse) => (res as ServerResponse & { [NOT_A_FAILURE]?: true })[NOT_A_FAILURE] === true;

export interface TokenRateLimitDependencies {
  /** Config `rateLimits.token`: the requests of one client, counted once they are known to be the client's. */
  clientLimit: RateLimiter;
  /** Config `rateLimits.tokenFailures`: failed requests per source address and claimed client. */
  failures: ClientFailureLimit;
  clients: ClientDirectory;
  /** The authenticator's secret check, which counts no use (src/oidc/client-authenticator.ts). */
  secretMatches(view: ClientView, presented: string): boolean;
}

/**
 * The /token rate limits. A request counts against a client's budget only once it is known to
 * be that client's, so nobody can lock a client out by naming it (a public client's id, such as
 * `tessera-cli.<organization id>`, is no secret). Failed requests count against the source
 * address that sent them and the client they named (src/oidc/client-failure-limit.ts); only
 * that budget, the requesting address's own, refuses a request on account of failures.
 *
 * - A secret presented for a client that authenticates with one is checked here (one SHA-256,
 *   from the cached client): right, it takes a point of the client's budget before the engine
 *   runs, with the coalesced Redis call of the hot path (src/http/rate-limit.ts); wrong, or a
 *   client the engine does not know, it is a failure, counted before it is answered.
 * - Public clients (RFC 8252 §8.4: authenticated by their code or refresh token with PKCE),
 *   private_key_jwt and anything else only the engine can judge are counted after its answer:
 *   a success against the client's budget (which is checked, not taken, before), a 400 or 401
 *   against the source's failures, except a device's `authorization_pending` and `slow_down`,
 *   which count against neither (`markNotAFailure`).
 */
export function createTokenRateLimit(deps: TokenRateLimitDependencies) {
  const { clientLimit, failures } = deps;

  function countAfterAnswer(res: ServerResponse, source: string, clientId: string | undefined): void {
    res.once('finish', () => {
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        if (clientId !== undefined) void clientLimit.count(tokenLimitKey(clientId));
      } else if ((status === 400 && !isNotAFailure(res)) || status === 401) {
        void failures.record(source, clientId);
      }
    });
  }

  /**
   * Counts a /token request from `source`: undefined to let it through, else the seconds to
   * wait (429). `view` is the claimed client as the client directory has it.
   */
  async function admit(claim: ClientClaim, view: ClientView | undefined, source: string, res: ServerResponse): Promise<number | undefined> {
    const { clientId } = claim;
    const shutOut = failures.retryAfter(source, clientId);
    if (shutOut !== undefined) return shutOut;
    if (clientId === undefined) {
      countAfterAnswer(res, source, undefined);
      return undefined;
    }
    // The engine finds no such client (src/app.ts clientSource): a failure for certain.
    if (!view || !view.active) return failures.consume(source, clientId);
    const method = String(view.metadata.token_endpoint_auth_method ?? 'client_secret_basic');
    if (SECRET_METHODS.has(method) && claim.secret !== undefined) {
      return deps.secretMatches(view, claim.secret) ? clientLimit.consume(tokenLimitKey(clientId)) : failures.consume(source, clientId);
    }
    const spent = await clientLimit.peek(tokenLimitKey(clientId));
    if (spent !== undefined) return spent;
    countAfterAnswer(res, source, clientId);
    return undefined;
  }

  /** Koa's step for /token requests the fast path did not count: over a limit, 429 in OAuth JSON with Retry-After. */
  async function middleware(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || ctx.path !== TOKEN_PATH) return next();
    const counted = (ctx.req as CountedRequest)[COUNTED];
    if (counted) {
      if (counted.retryAfter !== undefined) throw oauthTooManyRequests(counted.retryAfter);
      return next();
    }
    // The body is read with the shared bound and left on `req.body` for the engine.
    const params = ctx.is('application/x-www-form-urlencoded') ? await readFormBody(ctx.req) : undefined;
    const claim = clientClaim(ctx.get('authorization') || undefined, params);
    const view = claim.clientId === undefined ? undefined : await deps.clients.get(claim.clientId);
    const retryAfter = await admit(claim, view, ctx.ip, ctx.res);
    if (retryAfter !== undefined) throw oauthTooManyRequests(retryAfter);
    return next();
  }

  return { admit, middleware };
}
export type TokenRateLimit = ReturnType<typeof createTokenRateLimit>;
