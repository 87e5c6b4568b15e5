import type { Clock } from '../clock.js';
import type { AuditEvent, AuditLog } from './audit-event.js';

/**
 * Repeated failures as one audit event. Failed client authentication (and failed /token
 * requests) can be sent by anyone, and each would otherwise be a hash-chained row in the target
 * client's organization: an outsider could bury the events that matter under noise and grow
 * storage without bound. So failures are grouped by organization, client, source address and
 * action, per window of `windowMs` from the first one:
 *
 * - the first failure of a window is written at once, in full (an administrator sees an attack
 *   begin within the writer's batch interval);
 * - the others are counted, and written as one event when the window ends (on a timer, or at
 *   shutdown), with `details.count` (how many that event stands for), `first_seen`, `last_seen`
 *   and `window_seconds` added to the first failure's details.
 *
 * So one source failing against one client costs at most two rows per window, however fast it
 * goes. A failure that belongs to no organization (an unknown client id, which the sender
 * chooses freely) is grouped by source and action only. At most `maxOpen` groups are open; past
 * that, new failures are grouped by organization and action alone (`details.many_sources`), so
 * memory stays bounded too. Window times come from the injected clock.
 */
export interface FailureAggregatorOptions {
  /** Where events are written (the batched writer, src/audit/audit-writer.ts). */
  audit: Pick<AuditLog, 'record' | 'flush'>;
  clock: Clock;
  /** Length of a window; 60 s by default. */
  windowMs?: number;
  /** How often ended windows are looked for; 1 s by default. */
  sweepIntervalMs?: number;
  maxOpen?: number;
}

interface Group {
  first: AuditEvent;
  until: number;
  /** Failures after the first, and when the first and last of them happened. */
  count: number;
  firstSeen: number;
  lastSeen: number;
  manySources: boolean;
}

export interface FailureAggregator extends AuditLog {
  /** Writes the groups whose window has ended (the timer calls it; tests may too). */
  sweep(): void;
  /** Open groups (for tests and metrics). */
  open(): number;
}

const DEFAULT_WINDOW_MS = 60_000;
const DEFAULT_MAX_OPEN = 10_000;

export function createFailureAggregator(options: FailureAggregatorOptions): FailureAggregator {
  const { audit, clock } = options;
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
  const maxOpen = options.maxOpen ?? DEFAULT_MAX_OPEN;
  const groups = new Map<string, Group>();
  let closed = false;

  function write(group: Group): void {
    if (group.count === 0) return;
    const { first } = group;
    audit.record({
      organizationId: first.organizationId,
      actor: group.manySources ? { type: first.actor.type, id: null } : first.actor,
      action: first.action,
      target: group.manySources ? undefined : first.target,
      outcome: first.outcome,
      ip: group.manySources ? undefined : first.ip,
      userAgent: group.manySources ? undefined : first.userAgent,
      details: {
        ...first.details,
        count: group.count,
        first_seen: new Date(group.firstSeen).toISOString(),
        last_seen: new Date(group.lastSeen).toISOString(),
        window_seconds: Math.round(windowMs / 1000),
        ...(group.manySources ? { many_sources: true } : {}),
      },
    });
  }

  function sweep(): void {
    const now = clock.now();
    for (const [key, group] of groups) {
      if (group.until > now) continue;
      groups.delete(key);
      write(group);
    }
  }

  const timer = setInterval(sweep, options.sweepIntervalMs ?? 1000);
  timer.unref();

  function keyOf(event: AuditEvent): string {
    const organization = event.organizationId ?? '';
    const client = event.organizationId === null ? '' : (event.target?.id ?? event.actor.id ?? '');
    return JSON.stringify([organization, client, event.ip ?? '', event.action]);
  }

  function writeAll(): void {
    for (const group of groups.values()) write(group);
    groups.clear();
  }

  return {
    record(event) {
      if (closed) return;
      const now = clock.now();
      let key = keyOf(event);
      let group = groups.get(key);
      let manySources = false;
      if (group === undefined && groups.size >= maxOpen) {
        key = JSON.stringify([event.organizationId ?? '', '*', '*', event.action]);
        group = groups.get(key);
        manySources = true;
      }
      if (group !== undefined && group.until <= now) {
        groups.delete(key);
        write(group);
        group = undefined;
      }
      if (group !== undefined) {
        if (group.count === 0) group.firstSeen = now;
        group.count += 1;
        group.lastSeen = now;
        return;
      }
      groups.set(key, { first: event, until: now + windowMs, count: 0, firstSeen: now, lastSeen: now, manySources });
      audit.record(event);
    },
    sweep,
    open: () => groups.size,
    /** Ends every window now and writes what it counted, then flushes the writer. */
    async flush() {
      writeAll();
      await audit.flush();
    },
    /** Writes what every open window counted; the writer itself is closed by its owner. */
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      writeAll();
    },
  };
}
