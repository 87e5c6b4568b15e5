import type { Context, Next } from 'koa';

import { readFormBody } from '../http/form-body.js';
import { OAuthError } from '../http/oauth-error.js';

/**
 * POST at the authorization endpoint (OIDC Core §3.1.2.1: the OP MUST support GET and POST
 * there) and at the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0 §2: likewise).
 *
 * A relying party's form that POSTs to Tessera is a cross-site request, and a browser sends
 * no `SameSite=Lax` cookie with a cross-site POST: the engine would not see the session, and the
 * user would sign in again on every POSTed request (or, at /session/end, could not sign out).
 * The engine answers POST itself only when the session cookie is `SameSite=None`, which sends
 * it with every cross-site request of any kind. Tessera keeps `Lax` and answers a POST with a
 * 303 to the same endpoint, the form's parameters as the query: the browser follows it as a
 * top-level GET navigation, which does carry `Lax` cookies, and the engine answers it as it
 * answers every GET — one code path for every authorization request
 * (docs/sign-in.md, "What to know about interactive sign-in").
 */
export const POST_AS_GET_PATHS: ReadonlySet<string> = new Set(['/auth', '/session/end']);

/**
 * The longest query the 303 may carry: well inside the 16 KiB of headers a Tessera node reads
 * (src/main.ts) and what browsers and proxies pass on. A larger request is pushed with PAR
 * (RFC 9126) instead, whose `request_uri` is short.
 */
export const MAX_REDIRECTED_QUERY_LENGTH = 8 * 1024;

export function authorizationPost() {
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'POST' || !POST_AS_GET_PATHS.has(ctx.path)) return next();
    // OIDC Core §3.1.2.1: the parameters of a POSTed request are the form's (the query is not read).
    const query = (await readFormBody(ctx.req as Parameters<typeof readFormBody>[0])).toString();
    if (query.length > MAX_REDIRECTED_QUERY_LENGTH) {
      throw new OAuthError(413, 'invalid_request', `a POSTed request is answered by GET, whose query is at most ${MAX_REDIRECTED_QUERY_LENGTH} bytes; push a larger request with PAR (RFC 9126)`);
    }
    ctx.status = 303;
    ctx.set('cache-control', 'no-store');
    ctx.redirect(query ? `${ctx.path}?${query}` : ctx.path);
  };
}
