import { errors, interactionPolicy } from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';

import type { Config } from '../config/config.js';
import type { PolicyService } from '../domain/organization-policy.js';
import { OPENID_SCOPES } from '../domain/types.js';
import type { ConsentRepository } from '../storage/consent-repository.js';
import { prefilledUserCode } from '../interactions/device-code-prefill.js';
import { contentSecurityPolicy, deviceCodePage, deviceConfirmPage, loggedOutPage, logoutPage, messagePage } from '../interactions/views.js';
import { engineSafe } from './unavailable.js';

/**
 * oidc-provider options of interactive sign-in (authorization code + PKCE, consent, refresh
 * tokens, sessions, RP-initiated logout), contributed to the one Provider of src/oidc/provider.ts.
 * Organization policy (docs/operations.md) decides the parts left to tenants.
 */
export interface SignInConfigDependencies {
  config: Config;
  policies: PolicyService;
  consents: ConsentRepository;
  /** Whether an account is an active user of the organization. */
  isMember(accountId: string, organizationId: string | undefined): Promise<boolean>;
}

interface TesseraClient {
  clientId: string;
  clientAuthMethod: string;
  tessera_organization_id?: string;
  tessera_scopes?: string[];
  grantTypeAllowed(type: string): boolean;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * OpenID scopes a client may be granted: `openid` always, the others only when the client's
 * allowed scopes list them (docs/management-api.md: a client's `scopes` may include `profile email
 * offline_access`). A scope outside the list is dropped, as Keycloak and Auth0 drop unassigned ones.
 */
export function allowedOidcScopes(client: { tessera_scopes?: string[] }): Set<string> {
  const allowed = new Set<string>(['openid']);
  for (const scope of client.tessera_scopes ?? []) if ((OPENID_SCOPES as readonly string[]).includes(scope)) allowed.add(scope);
  return allowed;
}

/**
 * OpenID Connect Core §5.4: the claims each scope releases, at /me and in ID tokens. `org_id`
 * tells a multi-tenant relying party which organization the user belongs to.
 */
export const SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  openid: ['sub', 'org_id'],
  profile: ['name', 'preferred_username'],
  email: ['email'],
};

/**
 * Claims a client may be given, asked for by scope or one by one through the `claims`
 * parameter (OIDC Core §5.5): those its allowed OpenID scopes release. A claim asked for
 * beyond them is left out of the answer, as §5.5 allows for a claim the OP will not provide;
 * the `claims` parameter never reaches further than the client's scopes would.
 */
export function allowedOidcClaims(client: { tessera_scopes?: string[] }): Set<string> {
  const allowed = new Set<string>();
  for (const scope of allowedOidcScopes(client)) for (const claim of SCOPE_CLAIMS[scope] ?? []) allowed.add(claim);
  return allowed;
}

export function signInConfiguration(deps: SignInConfigDependencies): (c: Configuration) => void {
  const { config, policies, consents } = deps;

  return (c) => {
    // The engine's prompts, plus one rule: a browser signed in as a user of another organization
    // (or as a user deactivated since) signs in again before this client gets anything. One
    // issuer serves every tenant, so one session cookie could otherwise carry a user across
    // (docs/design.md, "Least privilege per tenant"); Keycloak keeps a session per realm for the same reason.
    const policy = interactionPolicy.base();
    policy.get('login')!.checks.add(
      new interactionPolicy.Check('other_organization', 'End-User must sign in to this client\'s organization', 'login_required', (ctx) =>
        engineSafe(async () => {
          const accountId = ctx.oidc.session?.accountId;
          if (!accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
          const organizationId = (ctx.oidc.client as unknown as TesseraClient | undefined)?.tessera_organization_id;
          return (await deps.isMember(accountId, organizationId)) ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
        })),
    );
    c.interactions = { ...c.interactions, policy };

    c.claims = {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      ...Object.fromEntries(Object.entries(SCOPE_CLAIMS).map(([scope, claims]) => [scope, [...claims]])),
    };

    // RFC 9700 §2.1.1: PKCE (S256 only; the engine rejects `plain`) for every public client,
    // and for confidential clients too unless their organization turned that off.
    c.pkce = {
      required: (_ctx, client) => {
        const facts = client as unknown as TesseraClient;
        return facts.clientAuthMethod === 'none' || policies.cached(facts.tessera_organization_id).pkce_required_for_confidential_clients;
      },
    };

    c.ttl = {
      ...c.ttl,
      // A refresh family lives at most refresh_absolute_lifetime_seconds from the first sign-in
      // (`iiat` survives rotation) and dies after refresh_idle_lifetime_seconds without use:
      // each rotation starts a new idle period, never past the absolute end.
      RefreshToken: (_ctx, token, client) => {
        const facts = client as unknown as TesseraClient;
        const policy = facts.tessera_organization_id ? policies.cached(facts.tessera_organization_id) : undefined;
        if (!policy) return config.ttl.refreshToken;
        const iiat = (token as unknown as { iiat?: number }).iiat ?? nowSeconds();
        const absoluteLeft = iiat + policy.refresh_absolute_lifetime_seconds - nowSeconds();
        return Math.max(1, Math.min(policy.refresh_idle_lifetime_seconds, absoluteLeft));
      },
      // A grant holds a refresh family; it must outlive the longest family it can start: a
      // family may begin as late as the end of the session that created the grant.
      // (The engine passes the grant's client as a third argument when the grant was built with one.)
      Grant: ((ctx: KoaContextWithOIDC | undefined, _grant: unknown, client?: TesseraClient) => {
        const facts = client ?? (ctx?.oidc?.client as unknown as TesseraClient | undefined);
        return config.ttl.session + policies.cached(facts?.tessera_organization_id).refresh_absolute_lifetime_seconds;
      }) as unknown as (ctx: KoaContextWithOIDC, grant: unknown) => number,
      // Sliding session: every authorization request that finds the session saves it again with
      // a fresh idle period, never past `ttl.session` after sign-in.
      Session: (_ctx, session) => {
        const loginTs = (session as unknown as { loginTs?: number }).loginTs ?? nowSeconds();
        return Math.max(1, Math.min(config.ttl.sessionIdle, loginTs + config.ttl.session - nowSeconds()));
      },
    };

    // Refresh tokens for interactive clients only: a client allowed the refresh_token grant that
    // asked for offline_access, or any such client when its organization's policy says "always".
    // Never for client credentials (RFC 6749 §4.4.3), which never reach this function.
    c.issueRefreshToken = (_ctx, client, code) =>
      engineSafe(async () => {
        const facts = client as unknown as TesseraClient;
        if (!facts.grantTypeAllowed('refresh_token')) return false;
        if (code.scopes.has('offline_access')) return true;
        return (await policies.forOrganization(facts.tessera_organization_id)).refresh_token_issuance === 'always';
      });

    // RFC 9700 §4.14.2: rotate on every use, so a stolen token that is used is noticed. Loading the
    // policy here also makes it available to ttl.RefreshToken just after.
    c.rotateRefreshToken = (ctx) =>
      engineSafe(async () => {
        await policies.forOrganization((ctx.oidc.client as unknown as TesseraClient | undefined)?.tessera_organization_id);
        return true;
      });

    // A grant found in this session is reused. Otherwise, what the user once allowed this client
    // (remembered in `consents`) becomes a fresh grant: consent is not asked again, yet every
    // sign-in owns its refresh family, so reuse detection on one device never ends another's.
    c.loadExistingGrant = (ctx: KoaContextWithOIDC) => engineSafe(() => loadExistingGrant(ctx));
    async function loadExistingGrant(ctx: KoaContextWithOIDC) {
      const client = ctx.oidc.client as unknown as TesseraClient;
      const { Grant } = ctx.oidc.provider;
      const grantId = (ctx.oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(client.clientId);
      if (grantId) {
        const grant = await Grant.find(grantId);
        if (grant) return grant;
      }
      const accountId = ctx.oidc.session?.accountId;
      if (!accountId) return undefined;
      const consent = await consents.find(accountId, client.clientId);
      if (!consent) return undefined;
      const allowed = allowedOidcScopes(client);
      const grant = new Grant({ accountId, clientId: client.clientId, client: ctx.oidc.client } as ConstructorParameters<typeof Grant>[0]);
      const scopes = consent.oidc_scopes.filter((s) => allowed.has(s));
      if (scopes.length) grant.addOIDCScope(scopes.join(' '));
      const refused = [...ctx.oidc.requestParamOIDCScopes].filter((s) => !allowed.has(s));
      if (refused.length) grant.rejectOIDCScope(refused.join(' '));
      const allowedClaims = allowedOidcClaims(client);
      const claims = consent.oidc_claims.filter((claim) => allowedClaims.has(claim));
      if (claims.length) grant.addOIDCClaims(claims);
      const refusedClaims = [...ctx.oidc.requestParamClaims].filter((claim) => !allowedClaims.has(claim));
      if (refusedClaims.length) grant.rejectOIDCClaims(refusedClaims);
      for (const [resource, resourceScopes] of Object.entries(consent.resource_scopes)) {
        if (resourceScopes.length) grant.addResourceScope(resource, resourceScopes.join(' '));
      }
      await grant.save();
      return grant;
    }

    c.features = {
      ...c.features,
      // RFC 9126: clients may push the authorization request first (optional, not required).
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      // OIDC Core §5.5: claims asked for one by one, `essential` ones included, are released
      // when the user consented and the client's scopes reach them (allowedOidcClaims above).
      claimsParameter: { enabled: true },
      // OpenID Connect RP-Initiated Logout 1.0 at /session/end, with Tessera's own pages.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.set('content-security-policy', contentSecurityPolicy());
          ctx.type = 'html';
          ctx.body = logoutPage(form, ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.set('content-security-policy', contentSecurityPolicy());
          ctx.type = 'html';
          ctx.body = loggedOutPage(ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId);
        },
      },
      // RFC 8628 device authorization at /device/auth, the user's pages at /device with Tessera's
      // own markup (no script, the pages' CSP); the sign-in and consent in between are the same
      // interaction pages as every other flow. Codes: 8 of 20 consonants (RFC 8628 §6.1: about
      // 34.5 bits, against a guesser the endpoint's rate limits and the code's lifetime bound).
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: async (ctx, form, _out, err) => {
          const problem = !err ? undefined : err.name === 'AbortedError' ? 'The sign-in was cancelled. Enter the code again to start over.' : 'That code is not right, or has expired. Check the device and try again.';
          ctx.set('content-security-policy', contentSecurityPolicy());
          ctx.type = 'html';
          ctx.body = deviceCodePage(form, problem, err ? undefined : prefilledUserCode(ctx));
        },
        userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
          ctx.set('content-security-policy', contentSecurityPolicy());
          ctx.type = 'html';
          ctx.body = deviceConfirmPage(form, client.clientName ?? client.clientId, userCode);
        },
        successSource: async (ctx) => {
          ctx.set('content-security-policy', contentSecurityPolicy());
          ctx.type = 'html';
          const name = ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId;
          ctx.body = messagePage('Device connected', `${name ? `${name} is` : 'The device is'} signed in. You can close this window and return to the device.`);
        },
      },
    };

    // RFC 9700 §2.1.2: the hybrid flow (`code id_token`) is for confidential clients only; a
    // public client that lists it is misconfigured and refused.
    // `application_type: native` makes the engine match loopback redirect URIs on any port
    // (RFC 8252 §7.3). Only the built-in tessera-cli client has it; every other client, dynamically
    // registered ones included, keeps exact redirect URI matching (RFC 9700 §4.1.3).
    const previousValidator = c.extraClientMetadata?.validator;
    c.extraClientMetadata = {
      ...c.extraClientMetadata,
      validator(ctx, key, value, metadata) {
        if (key === 'tessera_kind' && metadata.application_type === 'native' && value !== 'cli') {
          throw new errors.InvalidClientMetadata('application_type "native" is reserved for the built-in tessera-cli client; register a web client with exact redirect URIs');
        }
        if (key === 'tessera_organization_id') {
          const responseTypes = (metadata.response_types as string[] | undefined) ?? [];
          if (metadata.token_endpoint_auth_method === 'none' && responseTypes.some((rt) => rt.split(' ').includes('id_token'))) {
            throw new errors.InvalidClientMetadata('response_type "code id_token" is only for confidential clients');
          }
        }
        return previousValidator?.(ctx, key, value, metadata);
      },
    };
  };
}
