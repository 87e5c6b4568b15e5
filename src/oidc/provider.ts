import Provider from 'oidc-provider';
import type { Adapter, Configuration, FindAccount, KoaContextWithOIDC } from 'oidc-provider';
import type { Middleware } from 'koa';

import type { Config } from '../config/config.js';
import { TESSERA_CLIENT_PROPERTIES } from '../domain/client-metadata.js';
import { INTROSPECTION_ENCRYPTION_ALGS, INTROSPECTION_ENCRYPTION_ENCS, INTROSPECTION_SIGNING_ALGS } from '../domain/client-policy.js';
import { contentSecurityPolicy, messagePage } from '../interactions/views.js';
import type { KeySet } from '../keys/key-service.js';
import type { PrincipalLiveness } from '../tokens/principal-liveness.js';
import type { ClientFacts, ResourceIndicators } from './resource-indicators.js';
import { CLIENT_AUTH_SIGNING_ALGS } from './client-authenticator.js';
import { mtlsFeature } from './mtls.js';
import { EXCHANGE_CLAIMS } from './token-exchange.js';
import { engineSafe } from './unavailable.js';

/**
 * The one place that builds oidc-provider (docs/design.md, "One rule, one place": `new Provider` in one file). Every option
 * Tessera sets is here with the reason; everything else is the engine's default.
 */
export interface ProviderDependencies {
  config: Config;
  keySet: KeySet;
  adapter: new (name: string) => Adapter;
  cookieKeys: string[];
  /** 32 bytes, the same on every node: what server-provided DPoP nonces are derived from (RFC 9449 §8). */
  dpopNonceSecret: Buffer;
  resourceIndicators: ResourceIndicators;
  findAccount: FindAccount;
  /**
   * How the engine fetches a client's URLs (jwks_uri, sector_identifier_uri): never from an
   * internal address (src/outbound/outbound-guard.ts).
   */
  fetch: NonNullable<Configuration['fetch']>;
  /** Whether a token's client and user may still act (src/tokens/principal-liveness.ts). */
  principals: Pick<PrincipalLiveness, 'check'>;
  /** Extra provider options contributed by later capabilities (interactions, registration, …). */
  extend?: (configuration: Configuration) => void;
  /** Middleware run inside the engine, around its routes (`provider.use`), in order. */
  use?: Middleware[];
  /** Grants of Tessera's own, registered on the engine (`registerGrantType`), e.g. src/oidc/token-exchange.ts. */
  grants?: readonly ((provider: Provider) => void)[];
}

export function createProvider(deps: ProviderDependencies): Provider {
  const { config, keySet, resourceIndicators } = deps;

  const configuration: Configuration = {
    adapter: deps.adapter,
    jwks: keySet.privateJwks as Configuration['jwks'],
    findAccount: (ctx, sub, token) => engineSafe(async () => deps.findAccount(ctx, sub, token)),
    cookies: { keys: deps.cookieKeys },
    // Tessera's own facts about a client (organization, allowed resources) travel as extra
    // metadata; they are set by the Management API, never by a registering client.
    extraClientMetadata: {
      properties: TESSERA_CLIENT_PROPERTIES,
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    // OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an authentication request. The engine's
    // default fills in a client's only registered URI; without the parameter the request is
    // refused with an error page, never a redirect (the URI was not asked for, so nothing is
    // known to be the client's).
    allowOmittingSingleRegisteredRedirectUri: false,
    // Whoever registers a client chooses the URLs the engine fetches for it: they are fetched
    // only from public addresses, resolved and connected to through one checked lookup.
    fetch: deps.fetch,
    // The engine reads these bodies whole, and a client's server could answer with gigabytes. A
    // JWKS is a few kilobytes; these leave room for certificate chains and long redirect lists.
    fetchResponseBodyLimits: { jwks_uri: 256 * 1024, sector_identifier_uri: 64 * 1024 },
    // RFC 9700 §2.1.1: PKCE for every authorization code flow (organization policy may exempt
    // confidential clients: see src/oidc/sign-in-config.ts, which refines this).
    pkce: { required: () => true },
    // RFC 9700 §2.1.2: no implicit flow (`token`, `id_token` alone). The hybrid `code id_token`
    // stays for confidential clients registered for it (src/oidc/sign-in-config.ts refuses it
    // for public clients). OpenID Connect Registration §2 pairs `code id_token` with the
    // `implicit` grant type, which is why discovery lists that grant: only for this flow; the
    // token endpoint has no implicit grant (test/e2e/conformance.test.ts).
    responseTypes: ['code', 'code id_token'],
    ttl: {
      // A resource server's own access_token_ttl wins (docs/tokens.md); the config
      // value is the default for tokens without one.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.clientCredentials,
      AuthorizationCode: config.ttl.authorizationCode,
      // RFC 8628 §3.2 `expires_in`: ten minutes for the user to find a browser and sign in.
      DeviceCode: 600,
      IdToken: config.ttl.idToken,
      Interaction: config.ttl.interaction,
      Session: config.ttl.session,
      Grant: config.ttl.grant,
      RefreshToken: config.ttl.refreshToken,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Introspection and revocation of every token kind are answered by Tessera's own handlers
      // (src/tokens); the engine's remain enabled so discovery advertises the endpoints.
      //
      // What reaches the engine's own handlers is what Tessera does not answer itself: refresh
      // tokens (and garbage). A refresh token is for the client that holds it and for no
      // resource server, so only that client learns anything about it (RFC 7662 §2.2 allows
      // `active: false` for a caller not entitled to know; docs/design.md, "Least privilege per tenant": nothing crosses an
      // organization). The engine's default lets any confidential client introspect it. Like
      // every other token, a refresh token is inactive once its user is deactivated or deleted
      // (the engine itself checks only the grant).
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId && (await deps.principals.check(token.clientId, 'accountId' in token ? token.accountId : null)) !== undefined,
      },
      jwtIntrospection: { enabled: true },
      // Only so the engine accepts an introspection client's `introspection_encrypted_response_*`
      // (RFC 9701 §5), which Tessera's introspection honours (src/tokens/introspection-response.ts).
      // Every other encrypted answer stays off: their algorithm lists are empty below.
      encryption: { enabled: true },
      // Another client's refresh token is left alone and the answer is the same 200 (RFC 7009
      // §2.2), so revocation cannot be used to test whether a token exists.
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      userinfo: { enabled: true },
      // A client registered with `userinfo_signed_response_alg` gets its userinfo as a signed JWT
      // (OIDC Core §5.3.2), with the algorithms discovery lists; without this the engine took the
      // registration and answered plain JSON.
      jwtUserinfo: { enabled: true },
      // RFC 9449 at /token for every grant (client credentials, authorization code, refresh, token
      // exchange): a proof binds the access token to its key (`cnf.jkt`, token_type DPoP), and a
      // public client's refresh token too. Every introspection answer says so (src/tokens/introspection.ts).
      // Proofs are single-use across nodes (the engine's replay store, in the cache store); nonces
      // come from a secret every node derives alike, offered always and required by config `dpop`.
      dPoP: { enabled: true, allowReplay: false, nonceSecret: deps.dpopNonceSecret, requireNonce: () => config.dpop.requireNonce },
      // RFC 8705 certificate-bound access tokens, when a TLS-terminating proxy passes the client
      // certificate in config `mtls.clientCertificateHeader` (src/oidc/mtls.ts); off otherwise,
      // and then no header is read.
      ...(config.mtls.clientCertificateHeader !== null ? { mTLS: mtlsFeature(config.mtls.clientCertificateHeader) } : {}),
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, client, oneOf) => oneOf ?? resourceIndicators.defaultResource(client as ClientFacts),
        // The user a token is for: the account the token endpoint loaded, or the signed-in one at /auth.
        // At /token the grant has validated the request's DPoP proof before it asks (a request
        // with an invalid one never gets here), so a DPoP header here means a key-bound token.
        getResourceServerInfo: (ctx, indicator, client) =>
          engineSafe(() =>
            resourceIndicators.getResourceServerInfo(indicator, client as ClientFacts, ctx.oidc.account?.accountId ?? ctx.oidc.session?.accountId, ctx.oidc.route === 'token' ? { dpop: Boolean(ctx.get('dpop')) } : undefined),
          ),
        useGrantedResource: async () => true,
      },
    },
    // Organization id in every access token, so a resource server and Tessera's own checks can
    // tell tenants apart without a lookup (docs/design.md, "Least privilege per tenant").
    // A token made by token exchange also carries `act` and its lineage (src/oidc/token-exchange.ts).
    extraTokenClaims: async (_ctx: KoaContextWithOIDC, token) => {
      const client = (token as { client?: ClientFacts }).client;
      const exchanged = (token as unknown as Record<symbol, Record<string, unknown> | undefined>)[EXCHANGE_CLAIMS];
      const org = client?.tessera_organization_id ? { org_id: client.tessera_organization_id } : undefined;
      return exchanged ? { ...org, ...exchanged } : org;
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Refresh tokens only for interactive grants that asked for offline_access; never for
    // client credentials (RFC 6749 §4.4.3). src/oidc/sign-in-config.ts refines this by
    // organization policy (refresh_token_issuance).
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scope?.includes('offline_access') === true),
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      // What a resource server may register for RFC 9701 answers (src/domain/client-policy.ts):
      // Tessera holds RS256 and ES256 keys, and encrypts only to a registered public key.
      introspectionSigningAlgValues: [...INTROSPECTION_SIGNING_ALGS],
      introspectionEncryptionAlgValues: [...INTROSPECTION_ENCRYPTION_ALGS],
      introspectionEncryptionEncValues: [...INTROSPECTION_ENCRYPTION_ENCS],
      // No encrypted ID tokens, userinfo or authorization answers: nothing registers or tests them.
      idTokenEncryptionAlgValues: [],
      idTokenEncryptionEncValues: [],
      userinfoEncryptionAlgValues: [],
      userinfoEncryptionEncValues: [],
      authorizationEncryptionAlgValues: [],
      authorizationEncryptionEncValues: [],
      requestObjectEncryptionAlgValues: [],
      requestObjectEncryptionEncValues: [],
      userinfoSigningAlgValues: ['RS256', 'ES256'],
      // The same list Tessera's own endpoints accept (src/oidc/client-authenticator.ts).
      clientAuthSigningAlgValues: CLIENT_AUTH_SIGNING_ALGS,
    },
    // Errors shown in a browser carry no internals (a 5xx body says nothing).
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.set('content-security-policy', contentSecurityPolicy());
      ctx.body = messagePage('Sign-in cannot continue', `${String(out.error)}: ${String(out.error_description ?? '')}. Go back to the application and try again.`);
    },
  };
  deps.extend?.(configuration);

  const provider = new Provider(config.issuer, configuration);
  // Behind a load balancer that sets X-Forwarded-* (config trustProxy), the engine trusts them.
  provider.proxy = config.trustProxy;
  for (const middleware of deps.use ?? []) provider.use(middleware as Parameters<Provider['use']>[0]);
  for (const register of deps.grants ?? []) register(provider);
  return provider;
}
