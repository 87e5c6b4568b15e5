import type { Database, Queryable } from './database.js';

export interface AuditRow {
  organization_id: string;
  seq: number;
  occurred_at: Date;
  actor_type: string;
  actor_id: string | null;
  actor_name: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: 'success' | 'failure';
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export interface AuditFilter {
  organizationId: string;
  from?: Date;
  to?: Date;
  actorId?: string;
  action?: string;
  targetId?: string;
  outcome?: 'success' | 'failure';
  /** Keyset position: rows strictly after this sequence number. */
  afterSeq?: number;
  limit: number;
}

const COLUMNS = ['organization_id', 'seq', 'occurred_at', 'actor_type', 'actor_id', 'actor_name', 'action', 'target_type', 'target_id', 'outcome', 'request_id', 'ip', 'user_agent', 'details', 'prev_hash', 'hash'] as const;

/**
 * One element of an append batch is a JSON array of a row's columns from `occurred_at` to
 * `details`, then its `hash` (encodeRow in src/audit/hash-chain.ts). Its organization and seq come
 * from the batch, and its prev_hash is the hash before it. The same statement adds the batch to
 * the counts per day (UTC) and action (migrations/1700000011000_console_lists.sql).
 */
const APPEND = `WITH appended AS (
  INSERT INTO audit_events (${COLUMNS.join(', ')})
  SELECT $2, $3::bigint + ord, (v->>0)::timestamptz, v->>1, v->>2, v->>3, v->>4, v->>5, v->>6, v->>7, v->>8, v->>9, v->>10, v->11,
         COALESCE(lag(v->>12) OVER (ORDER BY ord), $4), v->>12
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(v, ord)
), counted AS (
  INSERT INTO audit_daily_counts (organization_id, day, action, events)
  SELECT $2, ((v->>0)::timestamptz AT TIME ZONE 'UTC')::date, v->>4, count(*)
    FROM jsonb_array_elements($1::jsonb) AS r(v)
   GROUP BY 2, 3
  ON CONFLICT (organization_id, action, day) DO UPDATE SET events = audit_daily_counts.events + EXCLUDED.events
)
UPDATE audit_chain_heads SET seq = $5, hash = $6 WHERE organization_id = $2`;

export function createAuditRepository(db: Database) {
  return {
    /** Locks the organization's chain head (creating it at `genesis`) for the rest of the transaction. */
    async lockHead(tx: Queryable, organizationId: string, genesis: string): Promise<{ seq: number; hash: string }> {
      await tx.query('INSERT INTO audit_chain_heads (organization_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING', [organizationId, genesis]);
      const { rows } = await tx.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_chain_heads WHERE organization_id = $1 FOR UPDATE', [organizationId]);
      return rows[0]!;
    },
    /**
     * Appends rows of one organization's chain after `after` (the head locked by lockHead) and
     * moves the head, in one statement. The batch is one JSON parameter rather than 16 per row,
     * so the driver serialises one string.
     */
    async append(tx: Queryable, batch: { organizationId: string; after: { seq: number; hash: string }; rows: string[]; head: { seq: number; hash: string } }): Promise<void> {
      if (batch.rows.length === 0) return;
      await tx.query(APPEND, [`[${batch.rows.join(',')}]`, batch.organizationId, batch.after.seq, batch.after.hash, batch.head.seq, batch.head.hash]);
    },
    /**
     * One page of a filtered listing, in chain order. Only the conditions given are put in the
     * statement (no `$n IS NULL OR …`), so PostgreSQL plans each shape with its own index.
     */
    async list(filter: AuditFilter): Promise<AuditRow[]> {
      const values: unknown[] = [filter.organizationId, filter.afterSeq ?? 0];
      const where = ['organization_id = $1', 'seq > $2'];
      const add = (sql: string, value: unknown) => {
        values.push(value);
        where.push(sql.replace('?', `$${values.length}`));
      };
      if (filter.from) {
        add('occurred_at >= ?', filter.from);
        // Rows are listed in chain order: starting the walk at the first row of the period spares
        // reading every older row of the chain. A bound only (the condition above still decides),
        // taken from the time index: `seq + 0` keeps PostgreSQL from answering min(seq) by walking
        // the primary key from the chain's start, which is the very walk this avoids.
        where.push(`seq >= COALESCE((SELECT min(seq + 0) FROM audit_events WHERE organization_id = $1 AND occurred_at >= $${values.length}), 9223372036854775807)`);
      }
      if (filter.to) add('occurred_at < ?', filter.to);
      if (filter.actorId !== undefined) add('actor_id = ?', filter.actorId);
      if (filter.action !== undefined) add('action = ?', filter.action);
      if (filter.targetId !== undefined) add('target_id = ?', filter.targetId);
      if (filter.outcome !== undefined) add('outcome = ?', filter.outcome);
      values.push(filter.limit);
      const { rows } = await db.query<AuditRow>(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${values.length}`, values);
      return rows;
    },
    /** The client addresses the trail recorded for events about `targetId`, most recent first. */
    async addressesOf(organizationId: string, targetId: string, limit: number): Promise<{ ip: string; last_seen: Date }[]> {
      const { rows } = await db.query<{ ip: string; last_seen: Date }>(
        `SELECT ip, max(occurred_at) AS last_seen FROM audit_events
          WHERE organization_id = $1 AND target_id = $2 AND ip IS NOT NULL
          GROUP BY ip ORDER BY last_seen DESC LIMIT $3`,
        [organizationId, targetId, limit],
      );
      return rows;
    },
    /** Rows of one organization in chain order, in pages (verification, export). */
    async chainPage(organizationId: string, afterSeq: number, limit: number): Promise<AuditRow[]> {
      const { rows } = await db.query<AuditRow>('SELECT * FROM audit_events WHERE organization_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [organizationId, afterSeq, limit]);
      return rows;
    },
    async head(organizationId: string): Promise<{ seq: number; hash: string } | undefined> {
      const { rows } = await db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_chain_heads WHERE organization_id = $1', [organizationId]);
      return rows[0];
    },
    async organizationsWithEvents(): Promise<string[]> {
      const { rows } = await db.query<{ organization_id: string }>('SELECT organization_id FROM audit_chain_heads ORDER BY organization_id');
      return rows.map((r) => r.organization_id);
    },
    /**
     * Retention: removes up to `limit` rows older than `before`, always a prefix of the chain
     * (rows before the first one still inside the retention window), so what remains verifies.
     */
    async deleteOlderThan(organizationId: string, before: Date, limit: number): Promise<number> {
      const { rowCount } = await db.query(
        `DELETE FROM audit_events WHERE organization_id = $1 AND seq IN (
           SELECT seq FROM audit_events
            WHERE organization_id = $1
              AND seq < COALESCE((SELECT min(seq) FROM audit_events WHERE organization_id = $1 AND occurred_at >= $2), 9223372036854775807)
            ORDER BY seq LIMIT $3)`,
        [organizationId, before, limit],
      );
      return rowCount;
    },
  };
}
export type AuditRepository = ReturnType<typeof createAuditRepository>;
