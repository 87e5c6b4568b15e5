import { createHash, hash } from 'node:crypto';

import type { AuditRow } from '../storage/audit-repository.js';

/**
 * The tamper-evidence of the audit trail: each row's hash is
 *   SHA-256(prev_hash ‖ "\n" ‖ canonical JSON of the row's content)
 * and each row stores the hash of the row before it. The first row of an organization chains
 * from a fixed genesis value; after retention removes a prefix, the first remaining row's
 * prev_hash is the anchor, and everything from there on still verifies.
 */
export const genesisHash = (organizationId: string) => createHash('sha256').update(`tessera-audit-genesis:${organizationId}`).digest('hex');

/**
 * JSON with object keys sorted at every level, so PostgreSQL's jsonb key order cannot matter.
 * Written for speed (the audit writer runs it for every row): an array of primitives, or an
 * object of primitives whose keys are already in order, is what JSON.stringify writes.
 */
export function canonicalJson(value: unknown): string {
  // Strings, numbers, booleans and null first: they are most of what a row holds.
  if (typeof value !== 'object' || value === null) return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    if (primitiveArray(value)) return JSON.stringify(value);
    let out = '[';
    // A hole stays empty, as Array.prototype.map leaves it.
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + (i in value ? canonicalJson(value[i]) : '');
    return `${out}]`;
  }
  if (!(value instanceof Date)) {
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object);
    if (primitiveSortedObject(object, keys)) return JSON.stringify(object);
    // The default sort compares UTF-16 code units, like `<` on strings.
    keys.sort();
    let out = '{';
    for (const key of keys) {
      const member = object[key];
      if (member === undefined) continue;
      out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(member)}`;
    }
    return `${out}}`;
  }
  return JSON.stringify(value.toISOString());
}

/** Strings, numbers, booleans and null: what JSON.stringify writes as canonicalJson does. */
const isPrimitive = (value: unknown) => value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

function primitiveArray(array: unknown[]): boolean {
  for (let i = 0; i < array.length; i += 1) if (!(i in array) || !isPrimitive(array[i])) return false;
  return true;
}

/** Keys already in sorted order (JSON.stringify keeps the order of Object.keys) and only primitive or undefined members. */
function primitiveSortedObject(object: Record<string, unknown>, keys: string[]): boolean {
  for (let i = 0; i < keys.length; i += 1) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false;
    const member = object[keys[i]!];
    if (member !== undefined && !isPrimitive(member)) return false;
  }
  return true;
}

/** A row's columns from `occurred_at` to `details`, as canonical JSON: all of what it hashes but its place in the chain. */
export function rowFields(row: Omit<AuditRow, 'hash' | 'prev_hash' | 'organization_id' | 'seq'>): string {
  return canonicalJson([
    row.occurred_at.toISOString(), row.actor_type, row.actor_id, row.actor_name, row.action,
    row.target_type, row.target_id, row.outcome, row.request_id, row.ip, row.user_agent, row.details,
  ]);
}

/**
 * What a row's hash covers: every column but the two hashes, in the table's column order, as
 * canonical JSON — `organization_id` and `seq` followed by the row's fields.
 */
export const contentOf = (organizationId: string, seq: number, fields: string) => `[${JSON.stringify(organizationId)},${JSON.stringify(seq)},${fields.slice(1)}`;

export const rowContent = (row: Omit<AuditRow, 'hash' | 'prev_hash'>) => contentOf(row.organization_id, Number(row.seq), rowFields(row));

export const chainHash = (prevHash: string, content: string) => hash('sha256', `${prevHash}\n${content}`, 'hex');

export const rowHash = (row: Omit<AuditRow, 'hash'>) => chainHash(row.prev_hash, rowContent(row));

/**
 * A row as the audit repository appends it: its fields followed by its hash (hex, nothing to
 * escape). The repository derives `organization_id`, `seq` and `prev_hash` from the batch, so
 * they are not sent once per row.
 */
export const encodeRow = (fields: string, rowHashHex: string) => `${fields.slice(0, -1)},"${rowHashHex}"]`;

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
