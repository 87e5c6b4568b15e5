/**
 * An audit event (docs/design.md, "Every use leaves a trace"). Callers hand events to the AuditLog
 * and move on: recording never waits for the database (see audit-writer.ts for batching and
 * the hash chain). `details` must never hold a secret; the writer scrubs token-shaped strings
 * anyway as a second line of defence.
 */
export type ActorType = 'user' | 'service_account' | 'client' | 'system' | 'anonymous';

export interface AuditActor {
  type: ActorType;
  id: string | null;
  name?: string;
}

export interface AuditEvent {
  /** null only for events that belong to no organization (e.g. an unknown client failing to authenticate). */
  organizationId: string | null;
  actor: AuditActor;
  /** Dotted verb, e.g. `token.issued`, `token.revoked`, `client.created`, `login.failed`. */
  action: string;
  target?: { type: string; id: string };
  outcome: 'success' | 'failure';
  requestId?: string;
  ip?: string;
  userAgent?: string;
  details?: Record<string, unknown>;
}

export interface AuditLog {
  /** Queues the event; never throws and never waits for storage. */
  record(event: AuditEvent): void;
  /** Writes everything queued so far (tests, shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Field-level before/after diff of a Management API change, for `details.changes`. */
export function diff(before: Record<string, unknown>, after: Record<string, unknown>, omit: string[] = []): Record<string, { before: unknown; after: unknown }> {
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (omit.includes(key)) continue;
    const a = JSON.stringify(before[key] ?? null);
    const b = JSON.stringify(after[key] ?? null);
    if (a !== b) changes[key] = { before: before[key] ?? null, after: after[key] ?? null };
  }
  return changes;
}
