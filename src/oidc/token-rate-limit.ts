import type { Context, Next } from 'koa';
import { decodeJwt } from 'jose';

import { readFormBody } from '../http/form-body.js';
import type { RateLimiter } from '../http/rate-limit.js';
import { oauthTooManyRequests } from '../http/rate-limit.js';

export const TOKEN_PATH = '/token';

/**
 * The client a /token request claims to be, without authenticating it (the engine does that
 * next): the Basic user name (RFC 6749 §2.3.1), the `client_id` form member, or the `iss` of a
 * client assertion (RFC 7523 §3). Failed attempts count as well, which also slows down secret
 * guessing. The body is read with the shared bound and left on `req.body` for the engine.
 */
async function claimedClientId(ctx: Context): Promise<string | undefined> {
  const authorization = ctx.get('authorization');
  if (/^basic /i.test(authorization)) {
    const basic = basicClientId(authorization);
    if (basic !== null) return basic;
  }
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const params = await readFormBody(ctx.req);
  const clientId = params.get('client_id');
  if (clientId) return clientId;
  const assertion = params.get('client_assertion');
  if (assertion) {
    try {
      return decodeJwt(assertion).iss;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The user name of a Basic authorization header (RFC 6749 §2.3.1: form-encoded): a string, or
 * undefined when it is not decodable, or null when the header has no `:` (then the form decides).
 */
export function basicClientId(authorization: string): string | undefined | null {
  const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/** The limiter key of a client id. */
export const tokenLimitKey = (clientId: string) => `client:${clientId}`;

/**
 * Set on a request by the token fast path (src/oidc/token-fast-path.ts) when it counted the
 * request already and hands it to Koa: the verdict it got, so the request is not counted twice.
 */
export const COUNTED = Symbol('tessera.tokenRateLimit.counted');
export type CountedRequest = { [COUNTED]?: { retryAfter: number | undefined } };

/** Per-client limit on the token endpoint: over it, 429 in OAuth JSON with Retry-After. */
export function tokenRateLimit(limiter: RateLimiter) {
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'POST' || ctx.path !== TOKEN_PATH) return next();
    const counted = (ctx.req as CountedRequest)[COUNTED];
    if (counted) {
      if (counted.retryAfter !== undefined) throw oauthTooManyRequests(counted.retryAfter);
      return next();
    }
    const clientId = await claimedClientId(ctx);
    if (clientId !== undefined) {
      const retryAfter = await limiter.consume(tokenLimitKey(clientId));
      if (retryAfter !== undefined) throw oauthTooManyRequests(retryAfter);
    }
    return next();
  };
}
