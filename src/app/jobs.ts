import { auditRetentionJob } from '../audit/retention.js';
import { createScheduler } from '../jobs/scheduler.js';
import { EXPIRY_RECORDING_LOCK_KEY, IDLE_REVOCATION_LOCK_KEY } from '../tokens/token-service.js';
import type { Foundation } from './foundation.js';
import type { Tokens } from './tokens.js';

/**
 * Periodic jobs, each on one node at a time (a PostgreSQL advisory lock per job): idle PAT/SAT
 * revocation, the audit record of expired PAT/SATs, and audit retention.
 */
export function startJobs(f: Foundation, tokens: Tokens) {
  const { db, logger, clock, repos, config } = f;
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
    auditRetentionJob({ audit: f.auditRepository, organizations: repos.organizations, policyDefaults: config.policyDefaults, clock, logger }),
  ]);
  return scheduler;
}
