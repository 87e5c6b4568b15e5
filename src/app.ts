import type { IncomingMessage, ServerResponse } from 'node:http';

import Koa from 'koa';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { Configuration, FindAccount, KoaContextWithOIDC } from 'oidc-provider';

import { KEYS_CHANNEL, openFoundation } from './app/foundation.js';
import type { FoundationOptions } from './app/foundation.js';
import type { Clock } from './clock.js';
import type { Config } from './config/config.js';
import { bootstrap } from './domain/bootstrap.js';
import { createClientDirectory } from './domain/client-directory.js';
import { createResourceServerCache } from './domain/resource-server-cache.js';
import { createLoginThrottle } from './domain/login-throttle.js';
import { allowedMethods } from './http/allowed-methods.js';
import { accessLog, errorHandler, requestId, securityHeaders } from './http/middleware.js';
import { createRateLimiter } from './http/rate-limit.js';
import type { RateLimiter } from './http/rate-limit.js';
import type { Logger } from './http/logger.js';
import { createCsrf } from './interactions/csrf.js';
import { createInteractionRoutes } from './interactions/routes.js';
import { auditRetentionJob } from './audit/retention.js';
import { createScheduler } from './jobs/scheduler.js';
import { withTokenMetrics } from './metrics/token-metrics-tap.js';
import { auditEventRoutes } from './management/routes/audit-events.js';
import { tokenInventoryRoutes } from './management/routes/token-inventory.js';
import { attachProviderAuditing } from './oidc/provider-events.js';
import { createManagementApi } from './management/management-api.js';
import { organizationRoutes } from './management/routes/organization.js';
import { clientRoutes } from './management/routes/clients.js';
import type { ResourceRouteDependencies } from './management/routes/dependencies.js';
import { initialAccessTokenRoutes } from './management/routes/initial-access-tokens.js';
import { resourceServerRoutes } from './management/routes/resource-servers.js';
import { serviceAccountRoutes } from './management/routes/service-accounts.js';
import { userRoutes } from './management/routes/users.js';
import { createRegistration, REGISTRATION_PATH } from './oidc/registration.js';
import { createSecretGrace } from './oidc/secret-grace.js';
import { signInLockoutRoutes } from './management/routes/sign-in-lockouts.js';
import { createAdapterFactory } from './oidc/adapter.js';
import { createClientAuthenticator, secretsEqual } from './oidc/client-authenticator.js';
import { createAssertionReplay } from './oidc/assertion-replay.js';
import { createEngineTokens } from './oidc/engine-tokens.js';
import { createLogoutRevocation, LOGOUT_CONFIRM_PATH } from './oidc/logout-revocation.js';
import { createProvider } from './oidc/provider.js';
import { createRefreshGrace } from './oidc/refresh-grace.js';
import { signInConfiguration } from './oidc/sign-in-config.js';
import { createResourceIndicators } from './oidc/resource-indicators.js';
import { createTokenFastPath, isClientCredentialsGrant } from './oidc/token-fast-path.js';
import { createClientFailureLimit } from './oidc/client-failure-limit.js';
import { createTokenRateLimit, TOKEN_PATH } from './oidc/token-rate-limit.js';
import { createOutboundGuard } from './outbound/outbound-guard.js';
import type { CacheStore } from './storage/cache.js';
import type { Database } from './storage/database.js';
import { migrate } from './storage/migrate.js';
import { createIntrospection } from './tokens/introspection.js';
import { tokenRoutes } from './management/routes/tokens.js';
import { createIntrospectionFastPath } from './tokens/introspection-fast-path.js';
import { opaqueCacheKey } from './tokens/introspection.js';
import { createReferenceTokenCache, REFERENCE_TOKEN_CHANNEL } from './tokens/reference-token-cache.js';
import { clientIsLive, createPrincipalLiveness, PRINCIPALS_CHANNEL, userFacts, userIsLive } from './tokens/principal-liveness.js';
import { createTokenService, IDLE_REVOCATION_LOCK_KEY, EXPIRY_RECORDING_LOCK_KEY } from './tokens/token-service.js';
import { createUsageRecorder } from './tokens/usage-recorder.js';
import { createRevocationList, REVOCATION_CHANNEL } from './tokens/revocation-list.js';
import { createTokenEndpoints } from './tokens/token-endpoints.js';

/** Pub/sub channel on which a node announces changed clients (a JSON array of ids, or "all"). */
export const CLIENTS_CHANNEL = 'clients';
export const TESSERA_VERSION = '0.1.0';

/** What the server is built from: the foundation's options (src/app/foundation.ts). */
export type TesseraOptions = FoundationOptions;

/**
 * Composes Tessera: storage, keys, bootstrap, oidc-provider and Tessera's own routes, in the
 * order they depend on one another. Returns the request handler and a `close` that releases
 * everything; `main.ts` owns the HTTP server and signals.
 */
export async function createTessera(options: TesseraOptions) {
  const foundation = await openFoundation(options);
  const { config, logger, clock, db, cache, repos, policies, envelope, keyService, keys, metrics, audit, auditRepository, failureAudit, tokenInventory, cookieKeys, closer } = foundation;
  const { trustProxy, hsts } = foundation.settings;
  const issuer = foundation.referenceTokenIssuer;
  const bootstrapped = foundation.bootstrapped;
  try {
    const scheduler = createScheduler({ db, logger });
    closer.add(() => scheduler.stop());

    // Whether this node's pub/sub subscription is known to work (its heartbeat comes back within
    // 1 s): the in-process caches below answer only while it is. Set once the reference-token
    // cache, which runs the heartbeat, exists.
    let subscriptionHealthy = () => false;
    const clients = createClientDirectory({ clients: repos.clients, resourceServers: repos.resourceServers, serviceAccounts: repos.serviceAccounts, envelope, clock, trusted: () => subscriptionHealthy() });
    // The one rule for "may this token's principal still act" (user, client, owning service account).
    const principals = createPrincipalLiveness({ users: repos.users, clients, cache, clock, logger, trusted: () => subscriptionHealthy() });
    await cache.subscribe(PRINCIPALS_CHANNEL, (message) => principals.applyMessage(message));
    // A changed client is dropped from this node's cache at once and from every other node's
    // through pub/sub, so a deleted client or rotated secret is not honoured for the cache TTL.
    const clientsChanged = async (ids: string[] | 'all') => {
      if (ids === 'all') clients.invalidate();
      else ids.forEach((id) => clients.invalidate(id));
      await cache.publish(CLIENTS_CHANNEL, JSON.stringify(ids)).catch((error) => logger.warn({ err: error }, 'client change announcement failed'));
    };
    await cache.subscribe(CLIENTS_CHANNEL, (message) => {
      try {
        const ids = JSON.parse(message) as string[] | 'all';
        if (ids === 'all') clients.invalidate();
        else if (Array.isArray(ids)) ids.forEach((id) => clients.invalidate(String(id)));
      } catch {
        logger.warn('ignored a malformed client change message');
      }
    });
    // Client URLs Tessera fetches (jwks_uri, sector_identifier_uri): checked when set and when fetched.
    const outbound = createOutboundGuard({ allow: config.outboundAllowList });
    const registration = createRegistration({
      outbound,
      clients: repos.clients,
      initialAccessTokens: repos.initialAccessTokens,
      resourceServers: repos.resourceServers,
      envelope,
      clock,
      clientsChanged,
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
    const usageFlushMs = config.usageFlushSeconds * 1000;
    const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
    // Client secrets' last use: Tessera's own endpoints count through the authenticator, the
    // engine's /token through its grant.success event (below).
    const secretUsage = createUsageRecorder({ write: (batch) => repos.clients.recordSecretUse(batch), clock, logger, flushIntervalMs: usageFlushMs });
    closer.add(() => secretUsage.close());
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
      // docs/design.md, principle 2: a user acts only through clients of their own organization. The sign-in
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

    const providerExtensions: ((c: Configuration) => void)[] = [signInConfiguration({
      config,
      policies,
      consents: repos.consents,
      isMember: async (accountId, organizationId) => (await memberOf(accountId, organizationId)) !== undefined,
    }), registration.configure];
    const providerMiddleware: Middleware[] = [];
    const providerSetups: ((p: Provider) => void)[] = [];
    const buildProvider = () => {
      const built = createProvider({
        use: providerMiddleware,
        config,
        fetch: outbound.fetch,
        keySet: keys.current,
        adapter,
        cookieKeys: cookieKeys!,
        resourceIndicators,
        findAccount,
        principals,
        extend: (c) => providerExtensions.forEach((extend) => extend(c)),
      });
      attachProviderAuditing(built, audit, logger, metrics, failureAudit);
      providerSetups.forEach((setup) => setup(built));
      return built;
    };
    // Interactive sign-in: refresh-token reuse grace, logout revocation policy, login throttling.
    const bearerMatches = (header: string, expected: string) => header.startsWith('Bearer ') && secretsEqual(header.slice(7), expected);
    const findGrant = async (grantId: string) => (await new adapter('Grant').find(grantId)) as { accountId?: string } | undefined;
    const refreshGrace = createRefreshGrace({ issuer: config.issuer, cache, clock, policies, authenticator, logger, findGrant, principals });
    const logoutRevocation = createLogoutRevocation({
      getProvider: () => provider,
      policies,
      organizationOf: async (accountId) => (await repos.users.findById(accountId))?.organization_id,
      revokeGrant: (grantId) => new adapter('Grant').revokeByGrantId(grantId),
    });
    // Tessera's steps inside the engine each concern a few requests: one step routes to them and
    // lets every other request (each client-credentials grant above all) through without an async
    // layer per step. Registration: RFC 7591 wire shape and audit; /token: the refresh-token grace
    // recorder; sign-out confirmation: logout revocation.
    providerMiddleware.push((ctx, next) => {
      if (ctx.path.startsWith(REGISTRATION_PATH)) return registration.middleware(ctx, next);
      if (ctx.method !== 'POST') return next();
      if (ctx.path === TOKEN_PATH) return isClientCredentialsGrant(ctx.req) ? next() : refreshGrace.recorder(ctx as KoaContextWithOIDC, next);
      if (ctx.path === LOGOUT_CONFIRM_PATH) return logoutRevocation(ctx as KoaContextWithOIDC, next);
      return next();
    });
    providerSetups.push((p) => {
      // A token issued to a client that authenticated with its secret is a use of that secret.
      p.on('grant.success', (ctx: KoaContextWithOIDC) => {
        const client = ctx.oidc.client;
        if (client && SECRET_METHODS.has(String(client.clientAuthMethod))) secretUsage.record(client.clientId);
      });
    });
    const loginThrottle = createLoginThrottle({ cache, clock });
    let provider: Provider = buildProvider();
    let providerHandler = provider.callback();
    // A new signing key set means a new engine instance; requests in flight finish on the old one.
    keys.onChange(() => {
      provider = buildProvider();
      providerHandler = provider.callback();
      logger.info({ version: keys.current.version }, 'signing keys reloaded');
    });

    const revocations = createRevocationList({ cache, repository: repos.revokedJtis, clock, subscriptionHealthy: () => subscriptionHealthy() });
    await revocations.reload();
    await cache.subscribe(REVOCATION_CHANNEL, (message) => {
      try {
        const parsed = JSON.parse(message) as { kind: string; jti: string; exp: number; key?: string };
        if (parsed.kind === 'jti') revocations.applyMessage(parsed);
        if (parsed.kind === 'opaque' && typeof parsed.key === 'string') introspection.forgetOpaque(parsed.key);
      } catch {
        logger.warn('ignored a malformed revocation message');
      }
    });
    await cache.subscribe(KEYS_CHANNEL, () => {
      keys.reload().catch((error) => logger.warn({ err: error }, 'signing key reload failed'));
    });
    closer.every(config.keys.reloadIntervalSeconds * 1000, () => {
      keys.reload().catch((error) => logger.warn({ err: error }, 'signing key reload failed'));
      revocations.reload().catch((error) => logger.warn({ err: error }, 'revocation list reload failed'));
    });

    // Reference tokens: tiered cache (in-process, Redis, PostgreSQL), invalidated on every node
    // through pub/sub; usage counted in memory and written in batches.
    const referenceTokenLookup = createReferenceTokenCache({
      tokens: repos.referenceTokens,
      cache,
      clock,
      logger,
      async sensitiveScopes(organizationId, resources, scopes) {
        const sensitive = new Set<string>();
        for (const identifier of resources) {
          const rs = await repos.resourceServers.findByIdentifier(identifier);
          if (rs?.sensitive && rs.organization_id === organizationId) for (const s of rs.scopes) if (scopes.includes(s.name)) sensitive.add(s.name);
        }
        return sensitive;
      },
    });
    await cache.subscribe(REFERENCE_TOKEN_CHANNEL, (message) => referenceTokenLookup.applyMessage(message));
    referenceTokenLookup.start();
    metrics.watchIntrospectionCache(() => {
      const { local, shared, database } = referenceTokenLookup.stats;
      return { hits: local + shared, misses: database };
    });
    subscriptionHealthy = () => referenceTokenLookup.subscriptionHealthy();
    closer.add(async () => referenceTokenLookup.stop());
    const usage = createUsageRecorder({ write: (batch) => repos.referenceTokens.recordUsage(batch), clock, logger, flushIntervalMs: usageFlushMs });
    closer.add(() => usage.close());
    const tokenService = createTokenService({
      tokens: repos.referenceTokens,
      organizations: repos.organizations,
      users: repos.users,
      serviceAccounts: repos.serviceAccounts,
      resourceServers: repos.resourceServers,
      issuer,
      cache: referenceTokenLookup,
      // Its audit events also feed the token metrics (issued, rotated, revoked by reason).
      audit: withTokenMetrics(audit, metrics),
      clock,
      logger,
      policyDefaults: config.policyDefaults,
      flushUsage: () => usage.flush(),
    });
    // Named limits from config `rateLimits`, counted in the cache store (shared by all nodes).
    const rateLimiters = new Map<string, RateLimiter>();
    const rateLimiter = (name: string): RateLimiter => {
      let limiter = rateLimiters.get(name);
      if (!limiter) {
        const settings = config.rateLimits[name];
        if (!settings) throw new Error(`no rate limit named "${name}" in config rateLimits`);
        // The /token limit runs on every token request: a client's concurrent requests share
        // one Redis call (see RateLimitSync).
        limiter = createRateLimiter({ cache, keyPrefix: `ratelimit:${name}:`, ...settings, sync: name === 'token' ? { mode: 'coalesced' } : { mode: 'exact' } });
        rateLimiters.set(name, limiter);
      }
      return limiter;
    };

    const leakReports = rateLimiter('leakReport');
    // Failed requests at /token, introspection and revocation, per source address and claimed
    // client; the per-client `token` limit counts only requests known to be the client's.
    const clientFailures = createClientFailureLimit({ limiter: rateLimiter('tokenFailures'), clock });
    const tokenLimits = createTokenRateLimit({
      clientLimit: rateLimiter('token'),
      failures: clientFailures,
      clients,
      secretMatches: (view, presented) => authenticator.secretMatches(view, presented),
    });

    const tokenIntrospection = createIntrospection({
      issuer: config.issuer,
      referenceTokens: referenceTokenLookup,
      revocations,
      clock,
      publicJwks: () => keys.publicJwks(),
      opaqueTokens: createEngineTokens({ provider: () => provider }),
      principals,
      usage,
    });
    // An opaque token stored before ids were hashed is moved to its hashed key by the adapter's
    // own find (src/oidc/adapter.ts), which the engine's models call: introspection and
    // revocation then act on it like on any other.
    const introspection = tokenIntrospection;

    const resourceDeps: ResourceRouteDependencies = {
      // A user's or service account's status or role changed, or it was deleted: its PATs/SATs
      // and (for a user) its OAuth tokens see the change on every node.
      ownerChanged: async (ownerId) => {
        await tokenService.ownerChanged(ownerId);
        await principals.changed([ownerId]);
      },
      revokeOwnerTokens: (ownerId, reason) => tokenService.revokeOwnerTokens(ownerId, reason),
      scopesHeldBy: (organizationId, ownerId) => tokenService.scopesHeldBy(organizationId, ownerId),
      db,
      clock,
      envelope,
      ...repos,
      clientDirectory: clients,
      policyDefaults: config.policyDefaults,
      clientsChanged,
      outbound,
      validateClientMetadata: async (metadata) => {
        await provider.Client.validate(metadata as unknown as Parameters<typeof provider.Client.validate>[0]);
      },
      audit,
    };
    const resourceRoutes = [
      ...userRoutes(resourceDeps),
      ...serviceAccountRoutes(resourceDeps),
      ...resourceServerRoutes(resourceDeps),
      ...clientRoutes(resourceDeps),
      ...initialAccessTokenRoutes(resourceDeps),
    ];
    const management = createManagementApi({
      realm: config.issuer,
      issuer: config.issuer,
      version: TESSERA_VERSION,
      introspection,
      referenceTokens: referenceTokenLookup,
      revocations,
      serviceAccounts: repos.serviceAccounts,
      principals,
      usage,
      audit,
      routes: [
        ...tokenRoutes({ tokens: tokenService, leakReports, realm: config.issuer }),
        ...organizationRoutes({ db, ...repos, organizationRepository: repos.organizations, issuer, policyDefaults: config.policyDefaults, audit, onPolicyChanged: (id) => policies.invalidate(id) }),
        ...resourceRoutes,
        ...auditEventRoutes({ audit: auditRepository, now: () => clock.now() }),
        ...tokenInventoryRoutes({ inventory: tokenInventory, organizations: repos.organizations, policyDefaults: config.policyDefaults }),
        ...signInLockoutRoutes({ throttle: loginThrottle, audit }),
      ],
    });

    const app = new Koa();
    app.proxy = trustProxy;
    app.silent = true;
    const routes: Middleware[] = [];
    app.use(requestId());
    app.use(accessLog(logger));
    app.use(errorHandler(logger));
    app.use(securityHeaders({ hsts }));
    app.use(async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === '/healthz') {
        ctx.body = { status: 'ok' };
        return;
      }
      if (ctx.method === 'GET' && ctx.path === '/metrics') {
        // Prometheus text format. No label carries an organization id unless the operator
        // turned that on (config `metrics`); with TESSERA_METRICS_TOKEN set, only a scraper
        // presenting it as a Bearer credential (RFC 6750 §2.1) may read it.
        if (config.metricsToken !== undefined && !bearerMatches(ctx.get('authorization'), config.metricsToken)) {
          ctx.status = 401;
          ctx.set('www-authenticate', 'Bearer realm="metrics"');
          ctx.body = { error: 'invalid_token', error_description: 'the metrics token is missing or wrong' };
          return;
        }
        ctx.set('cache-control', 'no-store');
        ctx.type = metrics.contentType;
        ctx.body = await metrics.render();
        return;
      }
      if (ctx.method === 'GET' && ctx.path === '/readyz') {
        const checks = await Promise.all([
          db.query('SELECT 1').then(() => 'ok', () => 'unavailable'),
          cache.ping().then(() => 'ok', () => 'unavailable'),
        ]);
        const ready = checks.every((c) => c === 'ok');
        ctx.status = ready ? 200 : 503;
        ctx.body = { status: ready ? 'ready' : 'unavailable', database: checks[0], cache: checks[1] };
        return;
      }
      await next();
    });
    app.use(allowedMethods());
    app.use(tokenLimits.middleware);
    app.use(createTokenEndpoints({
      issuer: config.issuer,
      authenticator,
      introspection,
      revocations,
      referenceTokens: repos.referenceTokens,
      cache,
      keys,
      clock,
      audit,
      metrics,
      clientOrganization: async (clientId) => (await clients.get(clientId))?.record.organization_id,
      failures: clientFailures,
      failureAudit,
      revokeReferenceToken: (id, caller, facts) => tokenService.revokeForClient(id, caller.clientId, facts),
      onOpaqueRevoked: async (token) => {
        const key = opaqueCacheKey(token);
        introspection.forgetOpaque(key);
        await cache.publish(REVOCATION_CHANNEL, JSON.stringify({ kind: 'opaque', key }));
      },
    }));
    app.use(refreshGrace.middleware);
    app.use(management.middleware);
    app.use(async (ctx, next) => {
      for (const route of routes) {
        let handled = true;
        await route(ctx, async () => {
          handled = false;
        });
        if (handled) return;
      }
      await next();
    });
    routes.push(createInteractionRoutes({
      getProvider: () => provider,
      clients,
      users: repos.users,
      resourceServers: repos.resourceServers,
      consents: repos.consents,
      throttle: loginThrottle,
      csrf: createCsrf(cookieKeys),
      logger,
      audit,
      metrics,
    }));
    // Client secret rotation grace on the engine's client authentication (src/oidc/secret-grace.ts).
    const secretGrace = createSecretGrace({ clients, authenticator });
    app.use(secretGrace);
    // Everything else is the engine's: discovery, /auth, /token, /jwks, /me, /reg, /session/end.
    app.use((ctx: Context) => {
      ctx.respond = false;
      return providerHandler(ctx.req, ctx.res);
    });

    scheduler.start([
      {
        name: 'idle-token-revocation',
        lockKey: IDLE_REVOCATION_LOCK_KEY,
        intervalMs: 10 * 60 * 1000,
        run: async () => {
          await tokenService.revokeIdle();
        },
      },
      {
        name: 'token-expiry-recording',
        lockKey: EXPIRY_RECORDING_LOCK_KEY,
        intervalMs: 60 * 1000,
        run: async () => {
          await tokenService.recordExpiries();
        },
      },
      auditRetentionJob({ audit: auditRepository, organizations: repos.organizations, policyDefaults: config.policyDefaults, clock, logger }),
    ]);

    const koaHandler = app.callback();
    // Client-credentials grants skip the Koa middlewares that only matter for other requests and
    // go to the engine after the steps they need (request id, security headers, access log, the
    // rate limits, the client-secret grace check). Everything else, every error and
    // every 429 included, is Koa's, so the answers are the same whichever way a request went.
    const tokenFastPath = createTokenFastPath({
      limits: tokenLimits,
      clients,
      trustProxy,
      secretGrace,
      engine: () => providerHandler,
      logger,
      hsts,
      fallback: (req, res) => {
        void koaHandler(req, res);
      },
    });
    // Introspection's fast path runs before Koa and hands it everything it does not answer.
    const fastPath = createIntrospectionFastPath({
      authenticator,
      introspection,
      issuer: config.issuer,
      logger,
      hsts,
      fallback: tokenFastPath,
      metrics: metrics.introspection,
      failures: clientFailures,
      trustProxy,
    });
    const handler: (req: IncomingMessage, res: ServerResponse) => void = fastPath;

    return {
      handler,
      app,
      db,
      cache,
      clock,
      config,
      repos,
      envelope,
      keys,
      keyService,
      clients,
      resourceServerCache,
      policies,
      /** Failed-sign-in throttling; `listLockouts(organizationId)` is what administrators see. */
      loginThrottle,
      introspection,
      revocations,
      referenceTokenLookup,
      referenceTokenIssuer: issuer,
      /** PAT/SAT lifecycle; user and service-account routes call `ownerChanged` after a status or role change. */
      tokenService,
      usage,
      /** Client secrets' last use, batched like `usage`. */
      secretUsage,
      fastPathStats: fastPath.stats,
      /** Client-credentials grants sent straight to the engine, and handed to Koa (tests). */
      tokenFastPathStats: tokenFastPath.stats,
      management,
      audit,
      /** Repeated failures folded into one audit event per client, source and window. */
      failureAudit,
      auditRepository,
      metrics,
      tokenInventory,
      scheduler,
      get provider() {
        return provider;
      },
      bootstrapped,
      /** The limiter of config `rateLimits.<name>` (login, leak report, …), one per name. */
      rateLimiter,
      announceKeyChange: foundation.announceKeyChange,
      close: () => closer.close(),
    };
  } catch (error) {
    await closer.close();
    throw error;
  }
}

export type Tessera = Awaited<ReturnType<typeof createTessera>>;

export type { Database, CacheStore };
