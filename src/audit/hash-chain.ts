import { createHash } from 'node:crypto';

import type { AuditRow } from '../storage/audit-repository.js';

/**
 * The tamper-evidence of the audit trail: each row's hash is
 *   SHA-256(prev_hash ‖ "\n" ‖ canonical JSON of the row's content)
 * and each row stores the hash of the row before it. The first row of an organization chains
 * from a fixed genesis value; after retention removes a prefix, the first remaining row's
 * prev_hash is the anchor, and everything from there on still verifies.
 */
export const genesisHash = (organizationId: string) => createHash('sha256').update(`tessera-audit-genesis:${organizationId}`).digest('hex');

/** JSON with object keys sorted at every level, so PostgreSQL's jsonb key order cannot matter. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value instanceof Date ? value.toISOString() : value ?? null);
}

export function rowHash(row: Omit<AuditRow, 'hash'>): string {
  const content = canonicalJson([
    row.organization_id, Number(row.seq), row.occurred_at.toISOString(), row.actor_type, row.actor_id, row.actor_name, row.action,
    row.target_type, row.target_id, row.outcome, row.request_id, row.ip, row.user_agent, row.details,
  ]);
  return createHash('sha256').update(`${row.prev_hash}\n${content}`).digest('hex');
}

export interface ChainBreak {
  organizationId: string;
  seq: number;
  reason: string;
}

/** Checks rows given in chain order, continuing from `previous` (the last row of the prior page). */
export function verifyRows(rows: AuditRow[], previous: { seq: number; hash: string } | undefined): ChainBreak | undefined {
  let prev = previous;
  for (const row of rows) {
    const seq = Number(row.seq);
    if (prev && seq !== prev.seq + 1) return { organizationId: row.organization_id, seq, reason: `sequence gap: expected ${prev.seq + 1}` };
    if (prev && row.prev_hash !== prev.hash) return { organizationId: row.organization_id, seq, reason: 'prev_hash does not match the previous row' };
    if (!prev && seq === 1 && row.prev_hash !== genesisHash(row.organization_id)) return { organizationId: row.organization_id, seq, reason: 'first row does not chain from genesis' };
    if (rowHash(row) !== row.hash) return { organizationId: row.organization_id, seq, reason: 'row content does not match its hash (edited)' };
    prev = { seq, hash: row.hash };
  }
  return undefined;
}
