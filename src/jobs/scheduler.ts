import type { Logger } from '../http/logger.js';
import type { Database } from '../storage/database.js';

/**
 * Background jobs that must run on exactly one node at a time (idle-token revocation, audit
 * retention, expired-row cleanup). Every node ticks; a PostgreSQL advisory lock per job lets one
 * of them run it and the others skip that tick.
 */
export interface Job {
  name: string;
  /** Advisory lock key; unique per job. */
  lockKey: number;
  intervalMs: number;
  run(): Promise<void>;
}

export function createScheduler(deps: { db: Database; logger: Logger }) {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();

  async function runOnce(job: Job): Promise<boolean> {
    const result = await deps.db.withAdvisoryLock(job.lockKey, async () => {
      await job.run();
      return true;
    });
    return result === true;
  }

  return {
    /** Runs `job` now if this node gets its lock; true when it ran. */
    runOnce,
    start(jobs: Job[]): void {
      for (const job of jobs) {
        const timer = setInterval(() => {
          const run = runOnce(job).catch((error) => deps.logger.warn({ err: error, job: job.name }, 'background job failed; will retry on the next tick'));
          running.add(run);
          void run.finally(() => running.delete(run));
        }, job.intervalMs);
        timer.unref();
        timers.push(timer);
      }
    },
    async stop(): Promise<void> {
      for (const timer of timers) clearInterval(timer);
      await Promise.allSettled([...running]);
    },
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
