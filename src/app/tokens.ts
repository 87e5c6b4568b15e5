import { createRateLimiter } from '../http/rate-limit.js';
import type { RateLimiter } from '../http/rate-limit.js';
import { withIntrospectionCounts } from '../metrics/introspection-counts.js';
import { withTokenMetrics } from '../metrics/token-metrics-tap.js';
import { createClientFailureLimit } from '../oidc/client-failure-limit.js';
import { createEngineTokens } from '../oidc/engine-tokens.js';
import { certificateFromHeader } from '../oidc/mtls.js';
import { createTokenExchange } from '../oidc/token-exchange.js';
import { createTokenRateLimit } from '../oidc/token-rate-limit.js';
import { createIntrospection } from '../tokens/introspection.js';
import { createReferenceTokenCache, REFERENCE_TOKEN_CHANNEL } from '../tokens/reference-token-cache.js';
import { createRevocationList, REVOCATION_CHANNEL } from '../tokens/revocation-list.js';
import { createSightings } from '../tokens/sightings.js';
import { createTokenService } from '../tokens/token-service.js';
import { createUsageRecorder } from '../tokens/usage-recorder.js';
import type { Directory } from './directory.js';
import type { Engine } from './engine.js';
import type { Foundation } from './foundation.js';

/**
 * Tokens as resource servers and the Management API see them: the JWT revocation list, the
 * PAT/SAT cache (in-process, Redis, PostgreSQL; its pub/sub heartbeat is what every in-process
 * cache trusts), usage counting, the PAT/SAT lifecycle, introspection, and the rate limits of
 * the token endpoints.
 */
export async function openTokens(f: Foundation, directory: Directory, engine: Engine) {
  const { config, logger, clock, cache, repos, keys, metrics, audit, closer } = f;
  const { clients, principals } = directory;

  const revocations = createRevocationList({ cache, repository: repos.revokedJtis, clock, subscriptionHealthy: directory.subscriptionHealthy });
  await revocations.reload();
  closer.every(config.keys.reloadIntervalSeconds * 1000, () => {
    revocations.reload().catch((error) => logger.warn({ err: error }, 'revocation list reload failed'));
  });

  // Reference tokens: tiered cache (in-process, Redis, PostgreSQL), invalidated on every node
  // through pub/sub; usage counted in memory and written in batches.
  const referenceTokenLookup = createReferenceTokenCache({
    tokens: repos.referenceTokens,
    cache,
    clock,
    logger,
    policyOf: (organizationId) => f.policies.current(organizationId),
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
  closer.add(async () => referenceTokenLookup.stop());
  metrics.watchIntrospectionCache(() => {
    const { local, shared, database } = referenceTokenLookup.stats;
    return { hits: local + shared, misses: database };
  });
  directory.trustSubscription(() => referenceTokenLookup.subscriptionHealthy());

  // Where PATs/SATs are used from: the last 5 addresses and user agents, each token written at most once a minute.
  const sightings = createSightings({ write: (tokenId, ip, userAgent, at) => repos.referenceTokens.recordSighting(tokenId, ip, userAgent, at), clock, logger });
  const usage = createUsageRecorder({ write: (batch) => repos.referenceTokens.recordUsage(batch), clock, logger, flushIntervalMs: config.usageFlushSeconds * 1000 });
  closer.add(() => usage.close());
  // Every introspection answered, per organization and day (the activity chart), batched the same way.
  const introspectionCounts = createUsageRecorder({ write: (batch) => f.tokenActivity.recordIntrospections(batch), clock, logger, flushIntervalMs: config.usageFlushSeconds * 1000 });
  closer.add(() => introspectionCounts.close());
  const introspectionMetrics = withIntrospectionCounts(metrics.introspection, introspectionCounts);
  const tokenService = createTokenService({
    tokens: repos.referenceTokens,
    organizations: repos.organizations,
    users: repos.users,
    serviceAccounts: repos.serviceAccounts,
    resourceServers: repos.resourceServers,
    issuer: f.referenceTokenIssuer,
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
  // Failed requests at /token, introspection and revocation, per source address and claimed
  // client; the per-client `token` limit counts only requests known to be the client's.
  const clientFailures = createClientFailureLimit({ limiter: rateLimiter('tokenFailures'), clock });
  const tokenLimits = createTokenRateLimit({
    clientLimit: rateLimiter('token'),
    failures: clientFailures,
    clients,
    secretMatches: (view, presented) => engine.authenticator.secretMatches(view, presented),
  });

  // Opaque access tokens are the engine's models (src/oidc/engine-tokens.ts); an opaque token
  // stored before ids were hashed is moved to its hashed key by the adapter's own find.
  const introspection = createIntrospection({
    issuer: config.issuer,
    referenceTokens: referenceTokenLookup,
    revocations,
    clock,
    publicJwks: () => keys.publicJwks(),
    opaqueTokens: createEngineTokens({ provider: engine.provider }),
    principals,
    usage,
    sightings,
  });
  // RFC 8693 token exchange at /token: subject and actor tokens resolved by introspection's rules.
  const certificateHeader = config.mtls.clientCertificateHeader;
  engine.addGrant(
    createTokenExchange({
      sources: introspection,
      resourceIndicators: engine.resourceIndicators,
      clock,
      recordUse: (tokenId, audience) => usage.record(tokenId, audience),
      ...(certificateHeader !== null ? { certificate: (ctx) => certificateFromHeader(ctx.get(certificateHeader) || undefined) } : {}),
    }).register,
  );
  await cache.subscribe(REVOCATION_CHANNEL, (message) => {
    try {
      const parsed = JSON.parse(message) as { kind: string; jti: string; exp: number; key?: string };
      if (parsed.kind === 'jti') revocations.applyMessage(parsed);
      if (parsed.kind === 'opaque' && typeof parsed.key === 'string') introspection.forgetOpaque(parsed.key);
    } catch {
      logger.warn('ignored a malformed revocation message');
    }
  });

  return { revocations, referenceTokenLookup, usage, introspectionCounts, introspectionMetrics, sightings, tokenService, rateLimiter, clientFailures, tokenLimits, introspection };
}
export type Tokens = Awaited<ReturnType<typeof openTokens>>;
