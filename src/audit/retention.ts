import type { Clock } from '../clock.js';
import type { OrganizationPolicy } from '../config/config.js';
import type { Logger } from '../http/logger.js';
import type { Job } from '../jobs/scheduler.js';
import type { AuditRepository } from '../storage/audit-repository.js';
import type { OrganizationRepository } from '../storage/organization-repository.js';

/** Rows removed per statement: small enough to never hold long locks on a busy table. */
export const RETENTION_BATCH = 5000;
/** Statements per run, so one run is bounded even after a long outage. */
const MAX_BATCHES_PER_RUN = 20;

/**
 * Audit retention (organization policy `audit_retention_days`, default 400): removes the oldest
 * rows in bounded batches, always a prefix of the chain so what remains still verifies.
 */
export function auditRetentionJob(deps: {
  audit: AuditRepository;
  organizations: OrganizationRepository;
  policyDefaults: OrganizationPolicy;
  clock: Clock;
  logger: Logger;
  /** Rows per statement and statements per run (defaults above; tests shrink them). */
  batchSize?: number;
  maxBatchesPerRun?: number;
}): Job {
  const batchSize = deps.batchSize ?? RETENTION_BATCH;
  const maxBatches = deps.maxBatchesPerRun ?? MAX_BATCHES_PER_RUN;
  return {
    name: 'audit-retention',
    lockKey: 0x7e55_0001,
    intervalMs: 60 * 60 * 1000,
    async run() {
      for (const organizationId of await deps.audit.organizationsWithEvents()) {
        const org = organizationId ? await deps.organizations.findById(organizationId) : undefined;
        const days = (org?.policy.audit_retention_days as number | undefined) ?? deps.policyDefaults.audit_retention_days;
        const before = new Date(deps.clock.now() - days * 86400_000);
        let removed = 0;
        for (let i = 0; i < maxBatches; i += 1) {
          const n = await deps.audit.deleteOlderThan(organizationId, before, batchSize);
          removed += n;
          if (n < batchSize) break;
        }
        if (removed > 0) deps.logger.info({ organizationId, removed, retentionDays: days }, 'audit retention removed old events');
      }
    },
  };
}
