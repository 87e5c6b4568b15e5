import type { Context } from 'koa';

import { MANAGEMENT_AUDIENCE, ROLE_SCOPES } from '../domain/types.js';
import type { Role } from '../domain/types.js';
import { ProblemError } from '../http/middleware.js';
import type { ServiceAccountRepository } from '../storage/service-account-repository.js';
import type { Introspection } from '../tokens/introspection.js';
import { senderConstraint, tokenShape } from '../tokens/introspection.js';
import type { PrincipalLiveness } from '../tokens/principal-liveness.js';
import type { ReferenceTokenLookup } from '../tokens/reference-token-lookup.js';
import type { RevocationList } from '../tokens/revocation-list.js';
import type { Sightings } from '../tokens/sightings.js';
import type { UsageRecorder } from '../tokens/usage-recorder.js';
import { addressRefused } from '../domain/token-constraints.js';
import type { Principal } from '../domain/principal.js';

/**
 * Bearer authentication of the Management API (RFC 6750). docs/design.md, "Separation of authority", separation of
 * authority: only tokens whose audience is `urn:tessera:management` are accepted; a token for
 * any other API is `invalid_token`, whatever scopes it carries. The organization is the token's,
 * and a user's scopes are narrowed to the role they hold now, so a demotion takes effect at once.
 */
export interface ManagementAuthDependencies {
  realm: string;
  introspection: Introspection;
  referenceTokens: ReferenceTokenLookup;
  revocations: RevocationList;
  serviceAccounts: ServiceAccountRepository;
  /**
   * Whether a JWT's principal is still live (src/tokens/principal-liveness.ts): its client exists
   * with an active owning service account, and its user (if any) is active in the organization,
   * with the role read from there. Any stop ends the token, not only its `exp`.
   */
  principals: Pick<PrincipalLiveness, 'check'>;
  /** Counts each Management API use of a PAT/SAT (last used, per resource server). */
  usage?: UsageRecorder;
  /** Where PATs/SATs are used from (usage telemetry). */
  sightings?: Sightings;
}

export const unauthorized = (realm: string, description: string, error = 'invalid_token') =>
  new ProblemError(401, 'Unauthorized', description, {}, { 'www-authenticate': `Bearer realm="${realm}", error="${error}", error_description="${description}"` });

export const insufficientScope = (realm: string, scope: string) =>
  new ProblemError(403, 'Forbidden', `this call requires the scope "${scope}"`, { required_scope: scope }, {
    'www-authenticate': `Bearer realm="${realm}", error="insufficient_scope", scope="${scope}"`,
  });

export function bearerToken(ctx: Context): string | undefined {
  const header = ctx.get('authorization');
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
  return match?.[1];
}

export function createManagementAuth(deps: ManagementAuthDependencies) {
  const { realm } = deps;

  const narrow = (scopes: Iterable<string>, role: Role | undefined) => {
    const allowed = role ? new Set(ROLE_SCOPES[role]) : undefined;
    return new Set([...scopes].filter((s) => !allowed || allowed.has(s)));
  };

  async function fromJwt(token: string): Promise<Principal> {
    const payload = await deps.introspection.verifyJwt(token);
    if (!payload) throw unauthorized(realm, 'the access token is invalid or expired');
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.includes(MANAGEMENT_AUDIENCE)) throw unauthorized(realm, 'the access token is not for the Management API');
    if (typeof payload.org_id !== 'string' || !payload.sub || !payload.jti) throw unauthorized(realm, 'the access token is invalid or expired');
    // RFC 9449 §7.1: a DPoP-bound token presented as a bearer token is refused; this API takes bearer tokens only.
    if (senderConstraint(payload.cnf).cnf !== undefined) throw unauthorized(realm, 'the access token is bound to a key: it cannot be used as a bearer token');
    if (await deps.revocations.isRevoked(payload.jti)) throw unauthorized(realm, 'the access token has been revoked');
    const scopes = String(payload.scope ?? '').split(' ').filter(Boolean);
    // A user's token (authorization code through tessera-cli or another client) carries the user
    // as `sub`; a client-credentials token carries the client (RFC 9068 §2.2). Either way the
    // client it was issued to must still be live, and the user too.
    const userId = payload.sub !== payload.client_id ? payload.sub : undefined;
    const live = await deps.principals.check(payload.client_id, userId, payload.org_id);
    if (!live) throw unauthorized(realm, 'the token owner is no longer active');
    if (userId !== undefined) {
      const user = live.user!;
      return { organizationId: user.organizationId, scopes: narrow(scopes, user.role), actor: { type: 'user', id: user.id, name: user.username }, via: 'jwt', role: user.role, platformAdmin: false };
    }
    return { organizationId: payload.org_id, scopes: new Set(scopes), actor: { type: 'client', id: payload.sub }, via: 'jwt', platformAdmin: false };
  }

  async function fromReference(token: string, ctx: Context): Promise<Principal> {
    const resolved = await deps.referenceTokens.resolve(token);
    if (!resolved.ok) throw unauthorized(realm, 'the access token is invalid, expired or revoked');
    const t = resolved.token;
    if (!t.resources.includes(MANAGEMENT_AUDIENCE)) throw unauthorized(realm, 'the access token is not for the Management API');
    // A key-bound PAT or SAT (src/tokens/key-binding.ts) is never a bearer token; this API takes bearer tokens only (RFC 9449 §7.1).
    if (t.jkt !== null) throw unauthorized(realm, 'the access token is bound to a key: it cannot be used as a bearer token');
    // The caller's address is known here: the token's address constraint applies (src/domain/token-constraints.ts).
    if (addressRefused(t, ctx.ip)) throw unauthorized(realm, 'the access token may not be used from this address');
    deps.usage?.record(t.id, MANAGEMENT_AUDIENCE);
    deps.sightings?.record(t.id, ctx.ip, ctx.get('user-agent') || undefined);
    if (t.type === 'pat') {
      // The resolved scopes are already narrowed to the owner's current role.
      const role = (t.ownerRole ?? 'member') as Role;
      return { organizationId: t.org, scopes: narrow(t.scopes, role), actor: { type: 'user', id: t.ownerId, name: t.ownerName }, via: 'pat', tokenId: t.id, role, platformAdmin: false };
    }
    const account = await deps.serviceAccounts.findById(t.ownerId);
    return {
      organizationId: t.org,
      scopes: new Set(t.scopes),
      actor: { type: 'service_account', id: t.ownerId, name: t.ownerName },
      via: 'sat',
      tokenId: t.id,
      platformAdmin: account?.platform_admin === true,
    };
  }

  return {
    async authenticate(ctx: Context): Promise<Principal> {
      const token = bearerToken(ctx);
      if (!token) {
        // RFC 6750 §3.1: a request without credentials gets a bare challenge, no error code.
        throw new ProblemError(401, 'Unauthorized', 'a Bearer access token for the Management API is required', {}, { 'www-authenticate': `Bearer realm="${realm}"` });
      }
      if (token.length > 8192) throw unauthorized(realm, 'the access token is invalid or expired');
      return tokenShape(token) === 'reference' ? fromReference(token, ctx) : fromJwt(token);
    },
    requireScope(principal: Principal, scope: string): void {
      if (!principal.scopes.has(scope)) throw insufficientScope(realm, scope);
    },
  };
}
export type ManagementAuth = ReturnType<typeof createManagementAuth>;
