import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { PolicyService } from '../domain/organization-policy.js';
import { engineSafe } from './unavailable.js';

interface SessionAuthorizations {
  accountId?: string;
  authorizations?: Record<string, { grantId?: string; persistsLogout?: boolean }>;
  destroyed?: boolean;
}

/**
 * Signing out (POST /session/end/confirm) ends the session; oidc-provider then revokes the grants
 * whose tokens were bound to the session, but keeps offline_access grants ("persistsLogout",
 * Keycloak's offline sessions). With organization policy `logout_revokes_refresh_tokens` (the
 * default) Tessera revokes those too: every refresh token the session gave out dies with it.
 *
 * The session is read before the engine runs (it rewrites the session while signing out), and the
 * grants of every client the sign-out removed from it are revoked after the engine answered.
 */
/** The engine's sign-out confirmation, where a session's grants end. */
export const LOGOUT_CONFIRM_PATH = '/session/end/confirm';

export function createLogoutRevocation(deps: {
  getProvider: () => Provider;
  policies: PolicyService;
  organizationOf(accountId: string): Promise<string | undefined>;
  revokeGrant(grantId: string): Promise<void>;
}) {
  return async function logoutRevocation(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    if (ctx.method !== 'POST' || ctx.path !== LOGOUT_CONFIRM_PATH) return next();
    const provider = deps.getProvider();
    const sessionId = ctx.cookies.get(provider.cookieName('session'));
    const before = sessionId ? ((await engineSafe(() => provider.Session.find(sessionId))) as unknown as SessionAuthorizations | undefined) : undefined;
    await next();
    if (ctx.status !== 303 || !before?.accountId || !before.authorizations) return;
    const after = ctx.oidc?.session as unknown as SessionAuthorizations | undefined;
    const ended = Object.entries(before.authorizations).filter(([clientId]) => !after || after.destroyed || !after.authorizations?.[clientId]);
    const kept = ended.filter(([, authorization]) => authorization.grantId && authorization.persistsLogout);
    if (kept.length === 0) return;
    await engineSafe(async () => {
      const organizationId = await deps.organizationOf(before.accountId!);
      if (!(await deps.policies.forOrganization(organizationId)).logout_revokes_refresh_tokens) return;
      await Promise.all(kept.map(([, authorization]) => deps.revokeGrant(authorization.grantId!)));
    });
  };
}
