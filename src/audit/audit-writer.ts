import type { Clock } from '../clock.js';
import { scrubText } from '../http/logger.js';
import type { Logger } from '../http/logger.js';
import type { AuditRepository } from '../storage/audit-repository.js';
import type { Database } from '../storage/database.js';
import type { AuditEvent, AuditLog } from './audit-event.js';
import { chainHash, contentOf, encodeRow, genesisHash, rowFields } from './hash-chain.js';

/**
 * The batched audit writer. `record` appends to an in-memory queue and returns; a flush every
 * `intervalMs` (or as soon as `batchSize` events wait) writes the queue in one transaction per
 * batch, extending each organization's hash chain under a row lock so several nodes append in
 * turn. The token endpoint and introspection therefore never wait for the audit trail.
 *
 * Trade-off, stated in docs/audit-and-inventory.md: if the process is killed, at most the events of the last
 * `intervalMs` are lost. If PostgreSQL is down, events wait in the queue (up to `maxQueue`;
 * beyond that the oldest are dropped and counted) and are written when it is back.
 */
export interface AuditWriterMetrics {
  batchWritten(rows: number): void;
  rowsDropped(rows: number): void;
  batchFailed(): void;
}

export interface AuditWriterOptions {
  db: Database;
  repository: AuditRepository;
  clock: Clock;
  logger: Logger;
  intervalMs?: number;
  batchSize?: number;
  maxQueue?: number;
  metrics?: AuditWriterMetrics;
}

interface Queued {
  event: AuditEvent;
  /** Epoch ms; the Date is made when the row is written, so queued events hold no extra object. */
  at: number;
}

const MAX_FIELD = 512;
/**
 * PostgreSQL text holds neither NUL nor an unpaired UTF-16 surrogate (JSON escapes of either are
 * refused). Both become U+FFFD before a row is hashed, so a batch is never refused for them and
 * what is stored is exactly what was hashed.
 */
const MAY_BE_UNSTORABLE = /[\u0000\ud800-\udfff]/;
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const storable = (value: string) => (MAY_BE_UNSTORABLE.test(value) ? value.replace(UNSTORABLE, '\ufffd') : value);
const clip = (value: string | undefined | null, max = MAX_FIELD) => (value == null ? null : storable(value.length > max ? value.slice(0, max) : value));

/**
 * Member names that hold a secret: `token`, `access_token`, `client_secret`, `password`, … but
 * not facts about one (`token_kind`, `token_format`, `management_token_id`), which an audit
 * row needs to say what happened.
 */
const SECRET_KEY = /(^|_)(secret|password|passwd|assertion|code_verifier|rotation_key|cookie)(_|$)|(^|_)token$|^authorization$/i;

/** Second line of defence: token-shaped strings and secret-named members never reach a row. */
export function scrubDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!details) return {};
  const plain = scrubPlain(details);
  if (plain !== UNUSUAL) return plain as Record<string, unknown>;
  return JSON.parse(
    JSON.stringify(details, (key, value: unknown) => {
      if (SECRET_KEY.test(key) && typeof value === 'string') return '[REDACTED]';
      return typeof value === 'string' ? storable(scrubText(value)) : value;
    }),
  ) as Record<string, unknown>;
}

const UNUSUAL = Symbol('unusual');
const isPlainObject = (value: object) => {
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
};

/**
 * What the JSON round trip above gives, for details made of strings, finite numbers, booleans,
 * null and plain objects and arrays (every event Tessera records), without serialising twice.
 * Anything else (a Date, a toJSON, undefined in an array, …) answers UNUSUAL and takes the
 * round trip, which is the definition.
 */
function scrubPlain(value: unknown): unknown {
  if (typeof value === 'string') return storable(scrubText(value));
  if (typeof value === 'boolean' || value === null) return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : UNUSUAL;
  if (typeof value !== 'object') return UNUSUAL;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const clean = item === undefined ? UNUSUAL : scrubPlain(item);
      if (clean === UNUSUAL) return UNUSUAL;
      out.push(clean);
    }
    return out;
  }
  if (!isPlainObject(value)) return UNUSUAL;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const member = (value as Record<string, unknown>)[key];
    if (member === undefined) continue;
    // Assigning `__proto__` would set the prototype, where JSON.parse makes a member.
    if (key === '__proto__') return UNUSUAL;
    const clean = typeof member === 'string' && SECRET_KEY.test(key) ? '[REDACTED]' : scrubPlain(member);
    if (clean === UNUSUAL) return UNUSUAL;
    out[key] = clean;
  }
  return out;
}

export function createAuditWriter(options: AuditWriterOptions): AuditLog & { pending(): number } {
  const { db, repository, clock, logger } = options;
  const intervalMs = options.intervalMs ?? 1000;
  const batchSize = options.batchSize ?? 500;
  const maxQueue = options.maxQueue ?? 100_000;
  let queue: Queued[] = [];
  let flushing: Promise<void> | undefined;
  let closed = false;

  async function writeBatch(batch: Queued[]): Promise<void> {
    const byOrganization = new Map<string, Queued[]>();
    for (const item of batch) {
      const org = item.event.organizationId ?? '';
      let list = byOrganization.get(org);
      if (!list) byOrganization.set(org, (list = []));
      list.push(item);
    }
    await db.transaction(async (tx) => {
      // Sorted lock order, so two nodes flushing the same organizations never deadlock.
      for (const org of [...byOrganization.keys()].sort()) {
        const head = await repository.lockHead(tx, org, genesisHash(org));
        const after = { seq: Number(head.seq), hash: head.hash };
        let seq = after.seq;
        let prev = after.hash;
        const encoded = byOrganization.get(org)!.map(({ event, at }) => {
          seq += 1;
          // The hashed content is serialised once, and is also what the row is stored from.
          const fields = rowFields({
            occurred_at: new Date(at),
            actor_type: event.actor.type,
            actor_id: clip(event.actor.id),
            actor_name: clip(event.actor.name),
            action: clip(event.action, 100)!,
            target_type: clip(event.target?.type, 100),
            target_id: clip(event.target?.id),
            outcome: event.outcome,
            request_id: clip(event.requestId, 128),
            ip: clip(event.ip, 64),
            user_agent: clip(event.userAgent),
            details: scrubDetails(event.details),
          });
          const hash = chainHash(prev, contentOf(org, seq, fields));
          prev = hash;
          return encodeRow(fields, hash);
        });
        await repository.append(tx, { organizationId: org, after, rows: encoded, head: { seq, hash: prev } });
      }
    });
  }

  /**
   * Writes full batches, or with `all` everything queued. A flush started because a batch filled
   * up stops at the last full batch: under steady load events keep arriving while a batch is
   * written, and draining them at once wrote a stream of small batches (tens of rows, each a
   * transaction of several round trips) instead of one full batch per `batchSize` events. The
   * rest waits for the timer, so no event waits much longer than `intervalMs`.
   */
  async function flushNow(all: boolean): Promise<void> {
    while (queue.length >= (all ? 1 : batchSize)) {
      const batch = queue.slice(0, batchSize);
      try {
        await writeBatch(batch);
      } catch (error) {
        options.metrics?.batchFailed();
        logger.warn({ err: error, pending: queue.length }, 'audit batch not written; will retry');
        return;
      }
      queue = queue.slice(batch.length);
      options.metrics?.batchWritten(batch.length);
    }
  }

  const flush = (all: boolean) => {
    flushing ??= flushNow(all).finally(() => {
      flushing = undefined;
    });
    return flushing;
  };

  const timer = setInterval(() => {
    void flush(true);
  }, intervalMs);
  timer.unref();

  return {
    record(event) {
      if (closed) return;
      queue.push({ event, at: clock.now() });
      if (queue.length > maxQueue) {
        const dropped = queue.length - maxQueue;
        queue = queue.slice(dropped);
        options.metrics?.rowsDropped(dropped);
      }
      if (queue.length >= batchSize) void flush(false);
    },
    async flush() {
      await flushing;
      await flush(true);
    },
    pending: () => queue.length,
    async close() {
      clearInterval(timer);
      await flushing;
      await flush(true);
      closed = true;
      if (queue.length > 0) logger.error({ lost: queue.length }, 'audit events could not be written before shutdown');
    },
  };
}
