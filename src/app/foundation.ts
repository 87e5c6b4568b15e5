import { hkdfSync } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createAuditWriter } from '../audit/audit-writer.js';
import { createFailureAggregator } from '../audit/failure-aggregator.js';
import { createTokenInventory } from '../audit/token-inventory.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import { bootstrap } from '../domain/bootstrap.js';
import type { BootstrapResult } from '../domain/bootstrap.js';
import { createPolicyService } from '../domain/organization-policy.js';
import { applySeed } from '../domain/seed.js';
import type { Logger } from '../http/logger.js';
import { loadOrCreateEmbeddedSecrets } from '../keys/embedded-secrets.js';
import { createEnvelope } from '../keys/envelope.js';
import { createKeyRing } from '../keys/key-ring.js';
import { createKeyService } from '../keys/key-service.js';
import { createMetrics } from '../metrics/metrics.js';
import { createAuditRepository } from '../storage/audit-repository.js';
import { createClientRepository } from '../storage/client-repository.js';
import { createConsentRepository } from '../storage/consent-repository.js';
import { OWNER_ONLY_DIRECTORY, restrictToOwner } from '../storage/data-directory.js';
import type { Database } from '../storage/database.js';
import { createInitialAccessTokenRepository } from '../storage/initial-access-token-repository.js';
import { migrate } from '../storage/migrate.js';
import { createOidcPayloadRepository } from '../storage/oidc-payload-repository.js';
import { openCache, openDatabase, StartupError } from '../storage/open-storage.js';
import { createOrganizationRepository } from '../storage/organization-repository.js';
import { createReferenceTokenRepository } from '../storage/reference-token-repository.js';
import { createRequestDeadline, REQUEST_CACHE_BUDGET_MS } from '../storage/request-deadline.js';
import { createResourceServerRepository } from '../storage/resource-server-repository.js';
import { createRevokedJtiRepository } from '../storage/revoked-jti-repository.js';
import { createServiceAccountRepository } from '../storage/service-account-repository.js';
import { createSigningKeyRepository } from '../storage/signing-key-repository.js';
import { createTokenActivityRepository } from '../storage/token-activity-repository.js';
import { createTokenInventoryRepository } from '../storage/token-inventory-repository.js';
import { createUserRepository } from '../storage/user-repository.js';
import { createWebhookRepository } from '../storage/webhook-repository.js';
import { createReferenceTokenIssuer } from '../tokens/reference-tokens.js';
import { createWebhookOutbox, withWebhooks } from '../webhooks/webhook-outbox.js';
import { createCloser } from './closer.js';
import type { Closer } from './closer.js';

/**
 * The layers every entry point needs, the server and the operator's commands alike: settings
 * resolved once, storage (migrated), repositories, signing keys, the token issuer, the audit
 * trail, organization policy and the token inventory. No engine, no pub/sub, no timers: a CLI
 * command opens this and nothing more (`tessera migrate` opens even less: `openMigrated`).
 */
export interface FoundationOptions {
  config: Config;
  logger: Logger;
  clock: Clock;
  /** A PostgreSQL schema and a Redis key prefix of their own (tests); default: the config's. */
  schema?: string;
  redisPrefix?: string;
  /**
   * First start against an empty database: `write-file` (the server) bootstraps and writes
   * `<data dir>/bootstrap.json`; `return` (`tessera bootstrap`) bootstraps and leaves printing to
   * the caller; `skip` (every other command) never bootstraps, so `tessera migrate` before
   * `tessera bootstrap --json` cannot swallow the credentials.
   */
  bootstrap?: 'write-file' | 'return' | 'skip';
}

/** Pub/sub channel on which a node announces a changed signing key set. */
export const KEYS_CHANNEL = 'keys';

/** Where this installation lives, resolved once from the config and the caller's overrides. */
export interface Settings {
  schema: string | undefined;
  redisPrefix: string | undefined;
  /** Behind a load balancer (config trustProxy), its X-Forwarded-For names the client. */
  trustProxy: boolean;
  /** Strict-Transport-Security on every answer when the issuer is https. */
  hsts: boolean;
}

export function resolveSettings(options: Pick<FoundationOptions, 'config' | 'schema' | 'redisPrefix'>): Settings {
  const { config } = options;
  return {
    schema: options.schema ?? config.databaseSchema,
    redisPrefix: options.redisPrefix ?? config.redisPrefix,
    trustProxy: config.trustProxy,
    hsts: config.issuer.startsWith('https://'),
  };
}

/**
 * On the embedded default, the database, the generated KEK and the bootstrap credentials live in
 * the data directory: it is made private to its owner before anything is written there
 * (src/storage/data-directory.ts).
 */
function privateDataDirectory(config: Config): void {
  if (config.databaseUrl) return;
  try {
    restrictToOwner(config.dataDir);
  } catch (error) {
    throw new StartupError(`cannot make the data directory ${config.dataDir} private to its owner (TESSERA_DATA_DIR): ${(error as Error).message}`);
  }
}

/** The database, migrated, and nothing else (`tessera migrate`). */
export async function openMigrated(options: Pick<FoundationOptions, 'config' | 'logger' | 'schema'>): Promise<{ db: Database; applied: string[] }> {
  privateDataDirectory(options.config);
  const schema = options.schema ?? options.config.databaseSchema;
  const db = await openDatabase(options.config, { schema });
  try {
    const applied = await migrate(db, { schema });
    if (applied.length > 0) options.logger.info({ migrations: applied }, 'database migrated');
    return { db, applied };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

export function createRepositories(db: Database) {
  return {
    organizations: createOrganizationRepository(db),
    users: createUserRepository(db),
    serviceAccounts: createServiceAccountRepository(db),
    resourceServers: createResourceServerRepository(db),
    clients: createClientRepository(db),
    payloads: createOidcPayloadRepository(db),
    revokedJtis: createRevokedJtiRepository(db),
    referenceTokens: createReferenceTokenRepository(db),
    signingKeys: createSigningKeyRepository(db),
    initialAccessTokens: createInitialAccessTokenRepository(db),
    consents: createConsentRepository(db),
    webhooks: createWebhookRepository(db),
  };
}
export type Repositories = ReturnType<typeof createRepositories>;

export async function openFoundation(options: FoundationOptions) {
  const { config, logger, clock } = options;
  const settings = resolveSettings(options);
  const closer: Closer = createCloser();
  const { db } = await openMigrated(options);
  closer.add(() => db.close());
  try {
    let kek = config.kek;
    let cookieKeys = config.cookieKeys;
    if (!kek || !cookieKeys) {
      const secrets = loadOrCreateEmbeddedSecrets(config.dataDir);
      if (secrets.created) logger.warn({ path: secrets.path }, 'TESSERA_KEK / TESSERA_COOKIE_KEYS not set: generated them for this embedded install; set both before running several nodes');
      kek ??= secrets.kek;
      cookieKeys ??= secrets.cookieKeys;
    }
    // One deadline per request for its cache work; the HTTP layer starts it for each request.
    const deadline = createRequestDeadline({ budgetMs: REQUEST_CACHE_BUDGET_MS, monotonicNow: () => performance.now() });
    const cache = await openCache(config, { clock, redisPrefix: settings.redisPrefix, deadline });
    closer.add(() => cache.close());

    const repos = createRepositories(db);
    const policies = createPolicyService({ organizations: repos.organizations, defaults: config.policyDefaults, clock });
    const envelope = createEnvelope(kek);
    const keyService = createKeyService({
      repository: repos.signingKeys,
      envelope,
      clock,
      publishBeforeSignSeconds: config.keys.publishBeforeSignSeconds,
      maxTokenLifetimeSeconds: Math.max(config.ttl.accessToken, config.ttl.clientCredentials, config.ttl.idToken, 86400),
    });
    const referenceTokenIssuer = createReferenceTokenIssuer({ tokens: repos.referenceTokens, clock });

    // A first start generates the signing keys (an RSA key pair) and hashes the admin's password
    // (scrypt): both run on libuv's thread pool, so they run side by side, which is a few hundred
    // milliseconds off a first start. Neither needs the other.
    const bootstrapMode = options.bootstrap ?? 'write-file';
    const [, bootstrapped] = await Promise.all([
      keyService.ensureKeys(),
      bootstrapMode === 'skip' ? undefined : bootstrap({
        db,
        ...repos,
        issuer: referenceTokenIssuer,
        issuerUrl: config.issuer,
        satLifetimeDays: config.policyDefaults.max_sat_lifetime_days,
      }),
    ]);
    const keys = createKeyRing(keyService, await keyService.load());
    if (bootstrapped && bootstrapMode === 'write-file') writeBootstrapFile(config.dataDir, bootstrapped, logger);

    if (config.seed) {
      const org = await repos.organizations.findByName('default');
      if (org) {
        const { created } = await applySeed(config.seed, org.id, { db, ...repos, envelope, defaultAccessTokenTtl: config.ttl.accessToken });
        if (created.length > 0) logger.info({ created }, 'example resource servers and clients seeded from config');
      }
    }

    // One registry per app instance (never prom-client's global one): see metrics.ts.
    const metrics = createMetrics(config.metrics);
    const auditRepository = createAuditRepository(db);
    const auditWriter = createAuditWriter({ db, repository: auditRepository, clock, logger, metrics: metrics.audit });
    metrics.watchAuditQueue(() => auditWriter.pending());
    closer.add(() => auditWriter.close());
    // Every audit event a webhook endpoint can receive also lands in the webhook outbox (a
    // durable table; src/webhooks/webhook-outbox.ts), whoever recorded it. Closed before the
    // writer, after everything that records (the closer runs in reverse).
    const webhookOutbox = createWebhookOutbox({ repository: repos.webhooks, clock, logger });
    closer.add(() => webhookOutbox.close());
    const audit = withWebhooks(auditWriter, webhookOutbox);
    // Failures anyone can cause (client authentication, /token requests) are folded into one
    // event per client, source and minute. Closed before the writer (the closer runs in
    // reverse), so the counts of the open windows are written at shutdown.
    const failureAudit = createFailureAggregator({ audit, clock });
    closer.add(() => failureAudit.close());
    const tokenInventory = createTokenInventory({ repository: createTokenInventoryRepository(db), clock });
    const tokenActivity = createTokenActivityRepository(db);

    return {
      config,
      logger,
      clock,
      settings,
      closer,
      db,
      cache,
      deadline,
      repos,
      policies,
      envelope,
      cookieKeys: cookieKeys!,
      // RFC 9449 §8: server-provided DPoP nonces are derived from this, so every node (all share
      // the KEK) issues and accepts the same ones, across restarts; never the KEK itself.
      dpopNonceSecret: Buffer.from(hkdfSync('sha256', kek!, Buffer.alloc(0), 'tessera dpop nonce', 32)),
      keyService,
      keys,
      referenceTokenIssuer,
      bootstrapped,
      metrics,
      auditRepository,
      audit,
      failureAudit,
      tokenInventory,
      tokenActivity,
      /** Announces a key change to every node (after `tessera keys rotate`, or from the API). */
      async announceKeyChange() {
        await keys.reload();
        await cache.publish(KEYS_CHANNEL, keys.current.version);
      },
      close: () => closer.close(),
    };
  } catch (error) {
    await closer.close();
    throw error;
  }
}
export type Foundation = Awaited<ReturnType<typeof openFoundation>>;

/** Writes `<data dir>/bootstrap.json` once, readable by its owner only. */
function writeBootstrapFile(dataDir: string, result: BootstrapResult, logger: Logger): void {
  const path = join(dataDir, 'bootstrap.json');
  try {
    // With PostgreSQL this file may be all the directory holds; it is still nobody else's.
    mkdirSync(dataDir, { recursive: true, mode: OWNER_ONLY_DIRECTORY });
    chmodSync(dataDir, OWNER_ONLY_DIRECTORY);
    writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    logger.warn({ path }, 'first start: bootstrap credentials written (admin password and management token); store them safely and delete the file');
  } catch (error) {
    logger.error({ path, err: error }, 'could not write the bootstrap file; run `tessera bootstrap --json` against a fresh database instead');
  }
}
