import type { Context, Next } from 'koa';

import { OAuthError } from './oauth-error.js';

/**
 * The methods each protocol endpoint serves. oidc-provider answers any other method with a bare
 * `404 Not Found` in text/plain, which tells a client nothing; RFC 9110 §15.5.6 calls for 405
 * with an Allow header, and a protocol endpoint's error body is OAuth JSON (RFC 6749 §5.2).
 * OPTIONS always passes: the engine answers CORS preflight on these paths.
 */
export const PROTOCOL_ENDPOINT_METHODS: Readonly<Record<string, readonly string[]>> = {
  // OIDC Core §3.1.2.1 and RP-Initiated Logout 1.0 §2: GET and POST (src/oidc/authorization-post.ts).
  '/auth': ['GET', 'HEAD', 'POST'],
  '/session/end': ['GET', 'HEAD', 'POST'],
  '/token': ['POST'],
  '/token/introspection': ['POST'],
  '/token/revocation': ['POST'],
  '/device/auth': ['POST'],
  '/jwks': ['GET', 'HEAD'],
  '/.well-known/openid-configuration': ['GET', 'HEAD'],
  '/.well-known/oauth-authorization-server': ['GET', 'HEAD'],
};

export function allowedMethods(table: Readonly<Record<string, readonly string[]>> = PROTOCOL_ENDPOINT_METHODS) {
  return async (ctx: Context, next: Next) => {
    const allowed = table[ctx.path];
    if (allowed && ctx.method !== 'OPTIONS' && !allowed.includes(ctx.method)) {
      throw new OAuthError(405, 'invalid_request', `${ctx.path} accepts ${allowed.join(' or ')} only`, { allow: allowed.join(', ') });
    }
    await next();
  };
}
