import type { LoginThrottle } from '../domain/login-throttle.js';
import { createIdempotency } from '../management/idempotency.js';
import { createManagementApi } from '../management/management-api.js';
import { auditEventRoutes } from '../management/routes/audit-events.js';
import { clientRoutes } from '../management/routes/clients.js';
import type { ResourceRouteDependencies } from '../management/routes/dependencies.js';
import { initialAccessTokenRoutes } from '../management/routes/initial-access-tokens.js';
import { organizationRoutes } from '../management/routes/organization.js';
import { resourceServerRoutes } from '../management/routes/resource-servers.js';
import { serviceAccountRoutes } from '../management/routes/service-accounts.js';
import { signInLockoutRoutes } from '../management/routes/sign-in-lockouts.js';
import { tokenActivityRoutes } from '../management/routes/token-activity.js';
import { tokenInventoryRoutes } from '../management/routes/token-inventory.js';
import { tokenRoutes } from '../management/routes/tokens.js';
import { userRoutes } from '../management/routes/users.js';
import { webhookRoutes } from '../management/routes/webhooks.js';
import { createCredentialIdentification } from '../tokens/credential-identification.js';
import { createGithubScanning } from '../tokens/github-secret-scanning.js';
import type { Directory } from './directory.js';
import type { Engine } from './engine.js';
import type { Foundation } from './foundation.js';
import type { Tokens } from './tokens.js';

export const TESSERA_VERSION = '0.1.0';
/** How long a rotation's answer is kept for a retry with the same Idempotency-Key (a day, as the rotation grace). */
const IDEMPOTENCY_TTL_SECONDS = 86_400;

/** The Management API (`/api/v1`): every capability's routes behind one router and one OpenAPI document. */
export function buildManagementApi(f: Foundation, directory: Directory, engine: Engine, tokens: Tokens, loginThrottle: LoginThrottle) {
  const { config, clock, db, repos, audit, policies } = f;
  const { tokenService, introspection, referenceTokenLookup, revocations, usage } = tokens;
  const resourceDeps: ResourceRouteDependencies = {
    // A user's or service account's status or role changed, or it was deleted: its PATs/SATs
    // and (for a user) its OAuth tokens see the change on every node.
    ownerChanged: async (ownerId) => {
      await tokenService.ownerChanged(ownerId);
      await directory.principals.changed([ownerId]);
    },
    revokeOwnerTokens: (ownerId, reason) => tokenService.revokeOwnerTokens(ownerId, reason),
    scopesHeldBy: (organizationId, ownerId) => tokenService.scopesHeldBy(organizationId, ownerId),
    db,
    clock,
    envelope: f.envelope,
    ...repos,
    clientDirectory: directory.clients,
    policyDefaults: config.policyDefaults,
    clientsChanged: (ids) => directory.clientsChanged(ids),
    outbound: engine.outbound,
    validateClientMetadata: (metadata) => engine.validateClientMetadata(metadata),
    audit,
    mtlsEnabled: config.mtls.clientCertificateHeader !== null,
  };
  // GitHub's signing keys are fetched like any URL Tessera fetches: never from an internal address.
  const githubScanning = createGithubScanning({ ...config.leakScanning.github, fetch: (url, init) => engine.outbound.fetch(url, init), clock, logger: f.logger, cache: f.cache });
  const identification = createCredentialIdentification({
    tokens: repos.referenceTokens,
    tokenService,
    clients: repos.clients,
    envelope: f.envelope,
    inventory: f.tokenInventory,
    auditTrail: f.auditRepository,
    audit,
    clock,
    clientsChanged: (ids) => directory.clientsChanged(ids),
  });
  return createManagementApi({
    realm: config.issuer,
    issuer: config.issuer,
    version: TESSERA_VERSION,
    introspection,
    referenceTokens: referenceTokenLookup,
    revocations,
    serviceAccounts: repos.serviceAccounts,
    principals: directory.principals,
    usage,
    sightings: tokens.sightings,
    audit,
    routes: [
      ...tokenRoutes({ tokens: tokenService, identification, idempotency: createIdempotency({ cache: f.cache, envelope: f.envelope, ttlSeconds: IDEMPOTENCY_TTL_SECONDS }), leakReports: tokens.rateLimiter('leakReport'), githubScanning, logger: f.logger, realm: config.issuer }),
      ...organizationRoutes({ db, ...repos, organizationRepository: repos.organizations, issuer: f.referenceTokenIssuer, policyDefaults: config.policyDefaults, audit, onPolicyChanged: (id) => policies.invalidate(id), onLifetimePolicyChanged: (id, before, after, actor, requestFacts) => tokenService.lifetimePolicyChanged(id, before, after, actor, requestFacts) }),
      ...userRoutes(resourceDeps),
      ...serviceAccountRoutes(resourceDeps),
      ...resourceServerRoutes(resourceDeps),
      ...clientRoutes(resourceDeps),
      ...initialAccessTokenRoutes(resourceDeps),
      ...auditEventRoutes({ audit: f.auditRepository, now: () => clock.now() }),
      ...tokenInventoryRoutes({ inventory: f.tokenInventory, organizations: repos.organizations, policyDefaults: config.policyDefaults }),
      ...tokenActivityRoutes({ activity: f.tokenActivity, now: () => clock.now() }),
      ...signInLockoutRoutes({ throttle: loginThrottle, audit }),
      ...webhookRoutes({ webhooks: repos.webhooks, envelope: f.envelope, clock, outbound: engine.outbound, audit }),
    ],
  });
}
