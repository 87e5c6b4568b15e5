import type { Context, Next } from 'koa';

import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { readFormBody } from '../http/form-body.js';
import { parseBasic } from './client-authenticator.js';
import type { ClientAuthenticator } from './client-authenticator.js';

/**
 * Client secret rotation grace on oidc-provider's endpoints that authenticate clients (/token above all). The engine knows one secret
 * per client; Tessera keeps the previous one valid until `previous_secret_expires_at`. This step
 * runs before the engine and, only when the presented secret is exactly that previous secret
 * (compared in constant time) and its grace period has not ended, hands the engine the current
 * secret in its place. Everything else — unknown clients, wrong secrets, expired grace,
 * assertions, public clients — reaches the engine untouched and is judged by it alone, so this
 * step can never make a request succeed that neither secret would allow.
 *
 * Each use of a previous secret is audited, so operators can see who has not rolled over yet:
 * the secret check and its audit event are the authenticator's (src/oidc/client-authenticator.ts),
 * the same on this path as on Tessera's own endpoints.
 */
/**
 * Engine endpoints that authenticate clients: /token, and introspection, revocation and PAR for
 * the values Tessera's own handlers hand on to the engine (refresh tokens, unknown values).
 */
export const CLIENT_AUTH_PATHS: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

const FORM = 'application/x-www-form-urlencoded';

const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');

export function createSecretGrace(deps: { clients: ClientDirectory; authenticator: Pick<ClientAuthenticator, 'graceReplacement' | 'recordPreviousSecretUse'> }) {
  const { clients, authenticator } = deps;
  const facts = (ctx: Context) => ({ requestId: ctx.state.requestId as string | undefined, ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });

  async function secretGrace(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) return next();
    const authorization = ctx.get('authorization');
    if (/^basic /i.test(authorization)) {
      const basic = parseBasic(authorization);
      if (basic) {
        const view = await clients.get(basic.id);
        const current = authenticator.graceReplacement(view, basic.secret);
        if (current !== undefined) {
          // RFC 6749 §2.3.1: both halves form-encoded, then base64.
          ctx.req.headers.authorization = `Basic ${Buffer.from(`${formEncode(basic.id)}:${formEncode(current)}`).toString('base64')}`;
          authenticator.recordPreviousSecretUse(view!, 'client_secret_basic', facts(ctx));
        }
      }
      return next();
    }
    if (!ctx.is(FORM)) return next();
    // The body is read here and left on req.body for the engine (see readFormBody).
    const params = await readFormBody(ctx.req);
    const ids = params.getAll('client_id');
    const secrets = params.getAll('client_secret');
    if (ids.length === 1 && secrets.length === 1) {
      const view = await clients.get(ids[0]!);
      const current = authenticator.graceReplacement(view, secrets[0]!);
      if (current !== undefined) {
        params.set('client_secret', current);
        (ctx.req as typeof ctx.req & { body?: string }).body = params.toString();
        authenticator.recordPreviousSecretUse(view!, 'client_secret_post', facts(ctx));
      }
    }
    return next();
  }

  return Object.assign(secretGrace, {
    /** Whether this step would hand the engine another secret for `presented` (the token fast path then leaves the request to it). */
    replaces: (view: ClientView | undefined, presented: string) => authenticator.graceReplacement(view, presented) !== undefined,
  });
}
