import { auditRetentionJob } from '../audit/retention.js';
import { TOKEN_RISK_REFRESH_LOCK_KEY } from '../audit/token-inventory.js';
import { createScheduler } from '../jobs/scheduler.js';
import { EXPIRY_RECORDING_LOCK_KEY, EXPIRY_WARNING_LOCK_KEY, IDLE_REVOCATION_LOCK_KEY } from '../tokens/token-service.js';
import { createWebhookDelivery, WEBHOOK_DELIVERY_LOCK_KEY } from '../webhooks/webhook-delivery.js';
import type { Engine } from './engine.js';
import type { Foundation } from './foundation.js';
import type { Tokens } from './tokens.js';

/**
 * Periodic jobs, each on one node at a time (a PostgreSQL advisory lock per job): idle PAT/SAT
 * revocation, expiry warnings and the audit record of expired PAT/SATs, audit retention, the
 * token inventory's stored risk scores, and webhook delivery.
 */
/**
 * The risk-refresh job's work per organization and run: time steps bring a few scores due at a
 * time; a bulk import of a million tokens is scored over many runs (or by the first page read)
 * instead of in one burst on the node that holds the job.
 */
const RISK_REFRESH_ROWS_PER_RUN = 20_000;

export function startJobs(f: Foundation, tokens: Tokens, engine: Pick<Engine, 'outbound'>) {
  const { db, logger, clock, repos, config } = f;
  // Webhook targets are fetched like every URL Tessera fetches: never on an internal address.
  const webhooks = createWebhookDelivery({ repository: repos.webhooks, envelope: f.envelope, fetch: (url, init) => engine.outbound.fetch(url, init), clock, logger, ...config.webhooks });
  const scheduler = createScheduler({ db, logger });
  f.closer.add(() => scheduler.stop());
  scheduler.start([
    {
      name: 'idle-token-revocation',
      lockKey: IDLE_REVOCATION_LOCK_KEY,
      intervalMs: 10 * 60 * 1000,
      run: async () => {
        await tokens.tokenService.revokeIdle();
      },
    },
    {
      name: 'token-expiry-recording',
      lockKey: EXPIRY_RECORDING_LOCK_KEY,
      intervalMs: 60 * 1000,
      run: async () => {
        await tokens.tokenService.recordExpiries();
      },
    },
    {
      name: 'token-expiry-warnings',
      lockKey: EXPIRY_WARNING_LOCK_KEY,
      intervalMs: 60 * 1000,
      run: async () => {
        await tokens.tokenService.warnExpiring();
      },
    },
    {
      // Time-dependent risk facts (idle days, days left, secret age) step on their own; scoring
      // the scores that came due here keeps that work off the inventory's page reads.
      name: 'token-risk-refresh',
      lockKey: TOKEN_RISK_REFRESH_LOCK_KEY,
      intervalMs: 10 * 60 * 1000,
      run: async () => {
        let after: { k: string; id: string } | undefined;
        for (;;) {
          const organizations = await repos.organizations.list({ after, limit: 100 });
          for (const org of organizations) await f.tokenInventory.refresh(org.id, { ...config.policyDefaults, ...org.policy }, RISK_REFRESH_ROWS_PER_RUN);
          if (organizations.length < 100) break;
          const last = organizations.at(-1)!;
          after = { k: new Date(last.created_at).toISOString(), id: last.id };
        }
      },
    },
    {
      name: 'webhook-delivery',
      lockKey: WEBHOOK_DELIVERY_LOCK_KEY,
      intervalMs: config.webhooks.deliveryIntervalSeconds * 1000,
      run: async () => {
        await webhooks.run();
      },
    },
    auditRetentionJob({ audit: f.auditRepository, organizations: repos.organizations, policyDefaults: config.policyDefaults, clock, logger }),
  ]);
  return Object.assign(scheduler, { webhooks });
}
