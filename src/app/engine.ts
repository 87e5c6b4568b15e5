import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { Configuration, FindAccount, KoaContextWithOIDC } from 'oidc-provider';

import { createResourceServerCache } from '../domain/resource-server-cache.js';
import { createAdapterFactory } from '../oidc/adapter.js';
import { createAssertionReplay } from '../oidc/assertion-replay.js';
import { createClientAuthenticator } from '../oidc/client-authenticator.js';
import { createDevicePolling, DEVICE_AUTHORIZATION_PATH } from '../oidc/device-polling.js';
import { createLogoutRevocation, LOGOUT_CONFIRM_PATH } from '../oidc/logout-revocation.js';
import { attachProviderAuditing } from '../oidc/provider-events.js';
import { createProvider } from '../oidc/provider.js';
import { createRefreshGrace } from '../oidc/refresh-grace.js';
import { createRegistration, REGISTRATION_PATH } from '../oidc/registration.js';
import { createResourceIndicators } from '../oidc/resource-indicators.js';
import { createSecretGrace } from '../oidc/secret-grace.js';
import { signInConfiguration } from '../oidc/sign-in-config.js';
import { deviceCodePrefill } from '../interactions/device-code-prefill.js';
import { DEVICE_VERIFICATION_PATH } from '../interactions/device-code-limit.js';
import { isClientCredentialsGrant } from '../oidc/token-fast-path.js';
import { TOKEN_PATH } from '../oidc/token-rate-limit.js';
import { createOutboundGuard } from '../outbound/outbound-guard.js';
import { clientIsLive, userFacts, userIsLive } from '../tokens/principal-liveness.js';
import { createUsageRecorder } from '../tokens/usage-recorder.js';
import type { Directory } from './directory.js';
import { KEYS_CHANNEL } from './foundation.js';
import type { Foundation } from './foundation.js';

const SECRET_METHODS: ReadonlySet<string> = new Set(['client_secret_basic', 'client_secret_post']);

/**
 * The OpenID engine and what Tessera puts into it: storage (the adapter), clients from the
 * directory, accounts, resource indicators, dynamic registration, the sign-in policy, and the
 * steps Tessera runs around the engine (one client authentication, refresh-token reuse grace,
 * client-secret grace, logout revocation). The Provider is rebuilt when the signing keys change;
 * `provider()` and `handler()` always answer the current one.
 */
export async function openEngine(f: Foundation, directory: Directory) {
  const { config, logger, clock, cache, repos, policies, envelope, keys, metrics, audit, failureAudit, cookieKeys, closer } = f;
  const { clients, principals } = directory;

  // Client URLs Tessera fetches (jwks_uri, sector_identifier_uri): checked when set and when fetched.
  const outbound = createOutboundGuard({ allow: config.outboundAllowList });
  const registration = createRegistration({
    outbound,
    clients: repos.clients,
    initialAccessTokens: repos.initialAccessTokens,
    resourceServers: repos.resourceServers,
    envelope,
    clock,
    clientsChanged: (ids) => directory.clientsChanged(ids),
    audit,
  });
  // Bearer credentials the engine stores are kept under sha256(id) since migration
  // 1700000009000 (src/oidc/model-keys.ts). That migration converted the durable rows; the
  // cache store's records (opaque access tokens, codes, PAR requests) are left to expire with
  // their TTL instead. A token issued just before the upgrade would otherwise fail at once, so
  // for the longest lifetime such a record can have, the adapter also looks under the old key
  // and moves what it finds there to the new one. Past that, no old record can be alive.
  const legacyWindowSeconds = Math.max(
    config.ttl.accessToken,
    config.ttl.clientCredentials,
    config.ttl.authorizationCode,
    (await repos.resourceServers.longestAccessTokenTtl()) ?? 0,
  );
  const adapter = createAdapterFactory({
    cache,
    payloads: repos.payloads,
    clock,
    legacyKeysUntil: clock.now() + legacyWindowSeconds * 1000,
    envelope,
    clientSource: {
      find: async (id) => {
        const view = await clients.get(id);
        // The engine asks policy questions synchronously (ttl, pkce); load the policy whenever it loads a client.
        if (view) await policies.forOrganization(view.record.organization_id);
        // A client whose owning service account is disabled is unknown to the engine: no tokens.
        return clientIsLive(view) ? view.metadata : undefined;
      },
      ...registration.clientSource,
    },
    initialAccessTokens: registration.initialAccessTokenSource,
  });

  // Client secrets' last use: Tessera's own endpoints count through the authenticator, the
  // engine's /token through its grant.success event (below).
  const secretUsage = createUsageRecorder({ write: (batch) => repos.clients.recordSecretUse(batch), clock, logger, flushIntervalMs: config.usageFlushSeconds * 1000 });
  closer.add(() => secretUsage.close());
  // The one client authentication (src/oidc/client-authenticator.ts), with the engine's replay store.
  const authenticator = createClientAuthenticator({ clients, clock, issuer: config.issuer, replay: createAssertionReplay({ cache, clock }), audit, onSecretUsed: (clientId) => secretUsage.record(clientId) });
  const resourceServerCache = createResourceServerCache({ lookup: repos.resourceServers, clock });

  /**
   * An active user of the organization, or undefined: sign-in and token issuance read the user
   * from PostgreSQL (a stop or a demotion counts at once on every node) and apply the same rule
   * as every later check of the token (src/tokens/principal-liveness.ts).
   */
  const memberOf = async (accountId: string, organizationId: string | undefined) => {
    const user = organizationId === undefined ? undefined : await repos.users.findById(accountId);
    return user && userIsLive(userFacts(user), organizationId) ? user : undefined;
  };
  const resourceIndicators = createResourceIndicators({
    lookup: resourceServerCache,
    managementTokenTtl: config.ttl.accessToken,
    roleOf: async (accountId, organizationId) => (await memberOf(accountId, organizationId))?.role,
  });
  const findAccount: FindAccount = async (ctx, sub) => {
    const user = await repos.users.findById(sub);
    // docs/design.md, "Least privilege per tenant": a user acts only through clients of their own organization. The sign-in
    // policy asks a user of another organization to sign in again (src/oidc/sign-in-config.ts);
    // this keeps a code or refresh token from crossing over whatever happened before. Read
    // from PostgreSQL (the claims need the whole row), so a stopped user's refresh fails at once.
    const clientOrganization = (ctx?.oidc?.client as { tessera_organization_id?: string } | undefined)?.tessera_organization_id;
    if (!user || !userIsLive(userFacts(user), clientOrganization)) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub,
        preferred_username: user.username,
        name: user.name ?? undefined,
        email: user.email ?? undefined,
        org_id: user.organization_id,
      }),
    };
  };

  const extensions: ((c: Configuration) => void)[] = [signInConfiguration({
    config,
    policies,
    consents: repos.consents,
    isMember: async (accountId, organizationId) => (await memberOf(accountId, organizationId)) !== undefined,
  }), registration.configure];
  const providerMiddleware: Middleware[] = [];
  const grants: ((provider: Provider) => void)[] = [];
  const build = () => {
    const built = createProvider({
      use: providerMiddleware,
      grants,
      config,
      fetch: outbound.fetch,
      keySet: keys.current,
      adapter,
      cookieKeys,
      dpopNonceSecret: f.dpopNonceSecret,
      resourceIndicators,
      findAccount,
      principals,
      extend: (c) => extensions.forEach((extend) => extend(c)),
    });
    attachProviderAuditing(built, audit, logger, metrics, failureAudit);
    // A token issued to a client that authenticated with its secret is a use of that secret.
    built.on('grant.success', (ctx: KoaContextWithOIDC) => {
      const client = ctx.oidc.client;
      if (client && SECRET_METHODS.has(String(client.clientAuthMethod))) secretUsage.record(client.clientId);
    });
    return built;
  };

  // Interactive sign-in: refresh-token reuse grace and logout revocation policy.
  const findGrant = async (grantId: string) => (await new adapter('Grant').find(grantId)) as { accountId?: string } | undefined;
  const refreshGrace = createRefreshGrace({ issuer: config.issuer, cache, clock, policies, authenticator, logger, findGrant, principals });
  const logoutRevocation = createLogoutRevocation({
    getProvider: () => provider,
    policies,
    organizationOf: async (accountId) => (await repos.users.findById(accountId))?.organization_id,
    revokeGrant: (grantId) => new adapter('Grant').revokeByGrantId(grantId),
  });
  // RFC 8628 §3.5 polling rules for the device code grant (src/oidc/device-polling.ts).
  const devicePolling = createDevicePolling({
    cache,
    clock,
    logger,
    findCode: (deviceCode) => provider.DeviceCode.find(deviceCode, { ignoreExpiration: true }),
  });
  // Tessera's steps inside the engine each concern a few requests: one step routes to them and
  // lets every other request (each client-credentials grant above all) through without an async
  // layer per step. Registration: RFC 7591 wire shape and audit; /token: the device polling
  // rules, then the refresh-token grace recorder; /device/auth: the polling interval; the code
  // page: a code from verification_uri_complete; sign-out confirmation: logout revocation.
  providerMiddleware.push((ctx, next) => {
    if (ctx.path.startsWith(REGISTRATION_PATH)) return registration.middleware(ctx, next);
    if (ctx.method === 'GET' && ctx.path === DEVICE_VERIFICATION_PATH) return deviceCodePrefill(ctx, next);
    if (ctx.method !== 'POST') return next();
    if (ctx.path === TOKEN_PATH) return isClientCredentialsGrant(ctx.req) ? next() : devicePolling.tokenMiddleware(ctx, () => refreshGrace.recorder(ctx as KoaContextWithOIDC, next));
    if (ctx.path === DEVICE_AUTHORIZATION_PATH) return devicePolling.announceInterval(ctx, next);
    if (ctx.path === LOGOUT_CONFIRM_PATH) return logoutRevocation(ctx as KoaContextWithOIDC, next);
    return next();
  });

  let provider: Provider = build();
  let handler = provider.callback();
  // A new signing key set means a new engine instance; requests in flight finish on the old one.
  keys.onChange(() => {
    provider = build();
    handler = provider.callback();
    logger.info({ version: keys.current.version }, 'signing keys reloaded');
  });
  const reloadKeys = () => keys.reload().catch((error) => logger.warn({ err: error }, 'signing key reload failed'));
  await cache.subscribe(KEYS_CHANNEL, () => void reloadKeys());
  closer.every(config.keys.reloadIntervalSeconds * 1000, () => void reloadKeys());

  return {
    provider: () => provider,
    handler: () => handler,
    /**
     * Registers a grant of Tessera's own on this engine and on every one the signing keys build
     * later (token exchange needs introspection, which is built after the engine: src/app/tokens.ts).
     */
    addGrant(register: (provider: Provider) => void): void {
      grants.push(register);
      register(provider);
    },
    resourceIndicators,
    adapter,
    outbound,
    authenticator,
    secretUsage,
    resourceServerCache,
    refreshGrace,
    // Client secret rotation grace on the engine's client authentication (src/oidc/secret-grace.ts).
    secretGrace: createSecretGrace({ clients, authenticator }),
    /** oidc-provider's own client metadata validation; throws its InvalidClientMetadata error. */
    async validateClientMetadata(metadata: Record<string, unknown>) {
      await provider.Client.validate(metadata as unknown as Parameters<typeof provider.Client.validate>[0]);
    },
  };
}
export type Engine = Awaited<ReturnType<typeof openEngine>>;
