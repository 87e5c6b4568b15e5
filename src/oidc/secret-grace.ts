import type { Context, Next } from 'koa';

import type { AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { readFormBody } from '../http/form-body.js';
import { parseBasic, secretsEqual } from './client-authenticator.js';

/**
 * Client secret rotation grace on oidc-provider's endpoints that authenticate clients (/token above all). The engine knows one secret
 * per client; Tessera keeps the previous one valid until `previous_secret_expires_at`. This step
 * runs before the engine and, only when the presented secret is exactly that previous secret
 * (compared in constant time) and its grace period has not ended, hands the engine the current
 * secret in its place. Everything else — unknown clients, wrong secrets, expired grace,
 * assertions, public clients — reaches the engine untouched and is judged by it alone, so this
 * step can never make a request succeed that neither secret would allow.
 *
 * Each use of a previous secret is audited, so operators can see who has not rolled over yet.
 */
/**
 * Engine endpoints that authenticate clients: /token, and introspection, revocation and PAR for
 * the values Tessera's own handlers hand on to the engine (refresh tokens, unknown values).
 */
export const CLIENT_AUTH_PATHS: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

const FORM = 'application/x-www-form-urlencoded';

const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');

export function createSecretGrace(deps: { clients: ClientDirectory; clock: Clock; audit?: AuditLog }) {
  const { clients, clock } = deps;

  /** The current secret to use instead, when `presented` is the previous one and still in grace. */
  function replacementFor(view: ClientView | undefined, presented: string): string | undefined {
    if (!view || view.previousSecret === undefined) return undefined;
    if ((view.previousSecretExpiresAt ?? 0) <= clock.now()) return undefined;
    const current = view.metadata.client_secret as string | undefined;
    if (current === undefined || secretsEqual(presented, current)) return undefined;
    return secretsEqual(presented, view.previousSecret) ? current : undefined;
  }

  function recordUse(ctx: Context, view: ClientView, method: string) {
    deps.audit?.record({
      organizationId: view.record.organization_id,
      actor: { type: 'client', id: view.record.client_id, name: view.record.name ?? undefined },
      action: 'client.previous_secret_used',
      target: { type: 'client', id: view.record.client_id },
      outcome: 'success',
      requestId: ctx.state.requestId as string | undefined,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
      details: { method, previous_secret_expires_at: new Date(view.previousSecretExpiresAt!).toISOString() },
    });
  }

  async function secretGrace(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) return next();
    const authorization = ctx.get('authorization');
    if (/^basic /i.test(authorization)) {
      const basic = parseBasic(authorization);
      if (basic) {
        const view = await clients.get(basic.id);
        const current = replacementFor(view, basic.secret);
        if (current !== undefined) {
          // RFC 6749 §2.3.1: both halves form-encoded, then base64.
          ctx.req.headers.authorization = `Basic ${Buffer.from(`${formEncode(basic.id)}:${formEncode(current)}`).toString('base64')}`;
          recordUse(ctx, view!, 'client_secret_basic');
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
      const current = replacementFor(view, secrets[0]!);
      if (current !== undefined) {
        params.set('client_secret', current);
        (ctx.req as typeof ctx.req & { body?: string }).body = params.toString();
        recordUse(ctx, view!, 'client_secret_post');
      }
    }
    return next();
  }

  return Object.assign(secretGrace, {
    /** Whether this step would hand the engine another secret for `presented` (the token fast path then leaves the request to it). */
    replaces: (view: ClientView | undefined, presented: string) => replacementFor(view, presented) !== undefined,
  });
}
