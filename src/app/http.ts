import type { IncomingMessage, ServerResponse } from 'node:http';

import Koa from 'koa';
import type { Context, Middleware } from 'koa';

import type { LoginThrottle } from '../domain/login-throttle.js';
import { allowedMethods } from '../http/allowed-methods.js';
import { accessLog, errorHandler, requestId, securityHeaders } from '../http/middleware.js';
import { createConsoleBackend } from '../console/backend.js';
import { createConsoleRoutes } from '../console/routes.js';
import { createConsoleSessions } from '../console/session-store.js';
import { createCsrf } from '../http/csrf.js';
import { createDeviceCodeLimit } from '../interactions/device-code-limit.js';
import { createInteractionRoutes } from '../interactions/routes.js';
import { authorizationPost } from '../oidc/authorization-post.js';
import type { createManagementApi } from '../management/management-api.js';
import { secretsEqual } from '../oidc/client-authenticator.js';
import { createTokenFastPath } from '../oidc/token-fast-path.js';
import { createIntrospectionFastPath } from '../tokens/introspection-fast-path.js';
import { opaqueCacheKey } from '../tokens/introspection.js';
import { REVOCATION_CHANNEL } from '../tokens/revocation-list.js';
import { createTokenEndpoints } from '../tokens/token-endpoints.js';
import type { Directory } from './directory.js';
import type { Engine } from './engine.js';
import type { Foundation } from './foundation.js';
import type { Tokens } from './tokens.js';

/**
 * The request path. Koa runs Tessera's middleware in this order: request id, access log, errors
 * in each route's wire format, security headers, health and metrics, allowed methods, POST at
 * the authorization and end-session endpoints, the /token
 * rate limits, introspection and revocation, the refresh-token grace, the Management API, the
 * sign-in pages, the client-secret grace, then the engine. Two plain handlers sit in front of
 * Koa for the two busiest requests (introspection, client-credentials grants) and hand Koa
 * everything they do not answer, so the answers are the same whichever way a request went.
 */
export function buildHttp(
  f: Foundation,
  directory: Directory,
  engine: Engine,
  tokens: Tokens,
  extra: { management: ReturnType<typeof createManagementApi>; loginThrottle: LoginThrottle },
) {
  const { config, logger, clock, db, cache, repos, keys, metrics, audit, failureAudit, cookieKeys } = f;
  const { trustProxy, hsts } = f.settings;
  const { introspection } = tokens;
  const bearerMatches = (header: string, expected: string) => header.startsWith('Bearer ') && secretsEqual(header.slice(7), expected);

  // The web console (src/console/): a client of this very server, whose requests it sends
  // in-process to `handler` below, the same entry the network uses.
  const consoleSessions = createConsoleSessions({ cache, envelope: f.envelope, clock, idleSeconds: config.console.sessionIdleSeconds, absoluteSeconds: config.console.sessionSeconds });
  const consoleBackend = createConsoleBackend({ issuer: config.issuer, clock, sessions: consoleSessions, handler: () => handler });

  const app = new Koa();
  app.proxy = trustProxy;
  app.silent = true;
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
  // POST at /auth and /session/end becomes the same request by GET, which carries the session cookie.
  app.use(authorizationPost());
  app.use(tokens.tokenLimits.middleware);
  app.use(createTokenEndpoints({
    issuer: config.issuer,
    authenticator: engine.authenticator,
    introspection,
    revocations: tokens.revocations,
    referenceTokens: repos.referenceTokens,
    cache,
    keys,
    clock,
    audit,
    // Introspection answers are also counted per organization and day (src/metrics/introspection-counts.ts).
    metrics: { introspection: tokens.introspectionMetrics, tokenRevoked: metrics.tokenRevoked },
    clientOrganization: async (clientId) => (await directory.clients.get(clientId))?.record.organization_id,
    failures: tokens.clientFailures,
    failureAudit,
    revokeReferenceToken: (id, caller, facts) => tokens.tokenService.revokeForClient(id, caller.clientId, facts),
    onOpaqueRevoked: async (token) => {
      const key = opaqueCacheKey(token);
      introspection.forgetOpaque(key);
      await cache.publish(REVOCATION_CHANNEL, JSON.stringify({ kind: 'opaque', key }));
    },
  }));
  app.use(engine.refreshGrace.middleware);
  app.use(extra.management.middleware);
  const interactions: Middleware = createInteractionRoutes({
    getProvider: engine.provider,
    clients: directory.clients,
    users: repos.users,
    resourceServers: repos.resourceServers,
    consents: repos.consents,
    throttle: extra.loginThrottle,
    csrf: createCsrf(cookieKeys),
    logger,
    audit,
    metrics,
  });
  app.use(interactions);
  app.use(createDeviceCodeLimit({ limiter: tokens.rateLimiter('deviceCode') }));
  app.use(createConsoleRoutes({
    backend: consoleBackend,
    sessions: consoleSessions,
    csrf: createCsrf(cookieKeys, { cookie: (secure) => (secure ? '__Host-tessera.console-csrf' : 'tessera.console-csrf'), path: () => '/', purpose: 'tessera console csrf' }),
    logger,
    clock,
    findOrganization: async (idOrName) => {
      const org = idOrName.startsWith('org_') ? await repos.organizations.findById(idOrName) : await repos.organizations.findByName(idOrName);
      return org && { id: org.id, name: org.name };
    },
    onlyOrganization: async () => {
      const [org, another] = await repos.organizations.list({ limit: 2 });
      return org && !another ? { id: org.id, name: org.name } : undefined;
    },
    usernameOf: async (organizationId, userId) => {
      const user = await repos.users.findById(userId);
      return user?.organization_id === organizationId ? user.username : undefined;
    },
  }));
  app.use(engine.secretGrace);
  // Everything else is the engine's: discovery, /auth, /token, /jwks, /me, /reg, /session/end.
  app.use((ctx: Context) => {
    ctx.respond = false;
    return engine.handler()(ctx.req, ctx.res);
  });

  const koaHandler = app.callback();
  // Client-credentials grants skip the Koa middlewares that only matter for other requests and
  // go to the engine after the steps they need (request id, security headers, access log, the
  // rate limits, the client-secret grace check). Everything else, every error and every 429
  // included, is Koa's.
  const tokenFastPath = createTokenFastPath({
    limits: tokens.tokenLimits,
    clients: directory.clients,
    trustProxy,
    secretGrace: engine.secretGrace,
    engine: engine.handler,
    logger,
    hsts,
    fallback: (req, res) => {
      void koaHandler(req, res);
    },
  });
  // Introspection's fast path runs before Koa and hands it everything it does not answer.
  const fastPath = createIntrospectionFastPath({
    authenticator: engine.authenticator,
    introspection,
    issuer: config.issuer,
    logger,
    hsts,
    fallback: tokenFastPath,
    metrics: tokens.introspectionMetrics,
    failures: tokens.clientFailures,
    trustProxy,
  });
  // Without the fast paths (config fastPaths: false) every request is Koa's: the benchmark's
  // baseline for what they save, and a way to rule them out when an answer looks wrong.
  const first: (req: IncomingMessage, res: ServerResponse) => void = config.fastPaths ? fastPath : (req, res) => void koaHandler(req, res);
  // Every request, whichever path answers it, runs under one deadline for its cache work.
  const handler: (req: IncomingMessage, res: ServerResponse) => void = (req, res) => {
    const request = f.deadline.begin();
    res.once('close', request.end);
    request.run(() => first(req, res));
  };
  return { handler, app, fastPathStats: fastPath.stats, tokenFastPathStats: tokenFastPath.stats };
}
