import type { ClientView } from '../domain/client-directory.js';
import { invalidRequest } from '../http/oauth-error.js';

/**
 * The CORS answer of the engine's introspection and revocation endpoints (`CORS.client` in
 * node_modules/oidc-provider/lib/helpers/initialize_app.js, applied by
 * node_modules/oidc-provider/lib/shared/cors.js), given by Tessera too for the tokens it answers
 * itself, so an answer at these endpoints carries the same headers whichever handler wrote it
 * (test/e2e/differential.test.ts):
 * - every answer, success or error: `Vary: Origin`, `Access-Control-Allow-Origin` (the request's
 *   Origin, `*` without one) and `Access-Control-Expose-Headers: WWW-Authenticate` (no
 *   DPoP-Nonce: the engine exposes it at these endpoints only with client attestation, which is off);
 * - with an Origin, once the client is found and before its credential is checked, the engine asks
 *   `clientBasedCORS`. Tessera does not configure it, so the engine's default decides: only a
 *   public client, from the origin of one of its redirect URIs. Any other client is refused with
 *   400 invalid_request and no Allow-Origin. Resource servers call from servers, without Origin.
 */
export const CORS_WITHOUT_ORIGIN: Readonly<Record<string, string>> = Object.freeze({
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'WWW-Authenticate',
  vary: 'Origin',
});

/** The part of a Koa context these steps use (the token lifecycle stays reachable without Koa, .dependency-cruiser.cjs). */
interface Exchange {
  get(header: string): string;
  set(header: string, value: string): void;
  remove(header: string): void;
  vary(header: string): void;
}

/** Sets the headers above on a Koa answer. */
export function setCors(ctx: Exchange): void {
  ctx.vary('Origin');
  ctx.set('access-control-allow-origin', ctx.get('origin') || '*');
  ctx.set('access-control-expose-headers', CORS_WITHOUT_ORIGIN['access-control-expose-headers']!);
}

/** Takes them off again, for a request handed to the engine, which sets its own (and skips its check when it finds them). */
export function unsetCors(ctx: Exchange): void {
  ctx.remove('access-control-allow-origin');
  ctx.remove('access-control-expose-headers');
}

/** Whether the engine's default `clientBasedCORS` lets `view` be called from `origin` at these endpoints. */
function allowedOrigin(origin: string, view: ClientView): boolean {
  if (origin === 'null' || view.metadata.token_endpoint_auth_method !== 'none') return false;
  const redirectUris = Array.isArray(view.metadata.redirect_uris) ? (view.metadata.redirect_uris as unknown[]) : [];
  return redirectUris.some((uri) => typeof uri === 'string' && URL.parse(uri)?.origin === origin);
}

/** The check the authenticator runs once it has found the client (src/oidc/client-authenticator.ts `found`); none without an Origin. */
export function originCheck(ctx: Exchange): ((view: ClientView) => void) | undefined {
  const origin = ctx.get('origin');
  if (!origin) return undefined;
  return (view) => {
    if (allowedOrigin(origin, view)) return;
    ctx.remove('access-control-allow-origin');
    throw invalidRequest(`origin ${origin} not allowed for client: ${view.record.client_id}`);
  };
}
