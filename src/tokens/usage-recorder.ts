import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';

/**
 * Last-used time and use count of a credential (docs/design.md, "Every use leaves a trace") without a write per request: each
 * use is an increment in this node's memory; a timer hands everything gathered to `write`, in
 * statements of at most `chunkSize` entries. Used for PATs/SATs (per token and resource server) and for client
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
  /**
   * Entries per statement. A flush after a burst of first uses (every cold token is one) would
   * otherwise be one statement of thousands of rows, which holds a database core for a second
   * while introspections of other cold tokens wait behind it; smaller statements take turns.
   */
  chunkSize?: number;
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

  const chunkSize = options.chunkSize ?? 500;

  /** Puts counts that were not written back, so a database blip loses nothing. */
  function putBack(counters: Iterable<[string, Counter]>): void {
    for (const [key, counter] of counters) {
      const current = pending.get(key);
      if (current) {
        current.count += counter.count;
        current.lastUsedAt = Math.max(current.lastUsedAt, counter.lastUsedAt);
      } else if (pending.size < maxEntries) pending.set(key, counter);
    }
  }

  async function writeAll(batch: [string, Counter][]): Promise<void> {
    for (let start = 0; start < batch.length; start += chunkSize) {
      const chunk = batch.slice(start, start + chunkSize);
      try {
        await options.write(chunk.map(([, c]) => ({ subject: c.subject, resource: c.resource, count: c.count, lastUsedAt: new Date(c.lastUsedAt) })));
      } catch (error) {
        // This chunk and the ones after it go out with the next flush; those written stay written.
        putBack(batch.slice(start));
        logger.warn({ err: error }, 'usage flush failed; will retry');
        return;
      }
    }
  }

  async function flush(): Promise<void> {
    if (flushing) await flushing;
    if (pending.size === 0) return;
    const batch = [...pending];
    pending = new Map();
    flushing = writeAll(batch).finally(() => {
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
