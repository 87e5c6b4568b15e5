import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';

/**
 * Last-used time and use count of a credential (docs/design.md, "Every use leaves a trace") without a write per request: each
 * use is an increment in this node's memory; a timer hands everything gathered to `write`, one
 * statement for the batch. Used for PATs/SATs (per token and resource server) and for client
 * secrets (per client). The map holds one entry per (subject, resource) used since the last
 * flush, and a flush is forced when it reaches `maxEntries`, so it stays bounded whatever the
 * traffic.
 */
export interface UsageCount {
  /** The credential: a reference token id, or a client id. */
  subject: string;
  /** Where it was used (a resource server), or '' when that is not tracked. */
  resource: string;
  count: number;
  lastUsedAt: Date;
}

export interface UsageRecorderOptions {
  /** Writes one batch (PostgreSQL); a rejection puts the counts back for the next flush. */
  write(batch: UsageCount[]): Promise<void>;
  clock: Clock;
  logger: Logger;
  flushIntervalMs?: number;
  maxEntries?: number;
}

interface Counter {
  subject: string;
  resource: string;
  count: number;
  lastUsedAt: number;
}

export function createUsageRecorder(options: UsageRecorderOptions) {
  const { clock, logger } = options;
  const maxEntries = options.maxEntries ?? 50_000;
  let pending = new Map<string, Counter>();
  let flushing: Promise<void> | undefined;

  async function flush(): Promise<void> {
    if (flushing) await flushing;
    if (pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    flushing = options
      .write([...batch.values()].map((c) => ({ subject: c.subject, resource: c.resource, count: c.count, lastUsedAt: new Date(c.lastUsedAt) })))
      .catch((error) => {
        // Put the counts back so a database blip loses nothing; they go out with the next flush.
        for (const [key, counter] of batch) {
          const current = pending.get(key);
          if (current) {
            current.count += counter.count;
            current.lastUsedAt = Math.max(current.lastUsedAt, counter.lastUsedAt);
          } else if (pending.size < maxEntries) pending.set(key, counter);
        }
        logger.warn({ err: error }, 'usage flush failed; will retry');
      })
      .finally(() => {
        flushing = undefined;
      });
    await flushing;
  }

  const timer = setInterval(() => void flush(), options.flushIntervalMs ?? 5000);
  timer.unref();

  return {
    /** One use of `subject` at `resource`: a map increment, nothing else. */
    record(subject: string, resource = ''): void {
      const key = resource === '' ? subject : `${subject}\u0000${resource}`;
      const counter = pending.get(key);
      if (counter !== undefined) {
        counter.count += 1;
        counter.lastUsedAt = clock.now();
        return;
      }
      pending.set(key, { subject, resource, count: 1, lastUsedAt: clock.now() });
      if (pending.size >= maxEntries) void flush();
    },
    flush,
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}
export type UsageRecorder = ReturnType<typeof createUsageRecorder>;
