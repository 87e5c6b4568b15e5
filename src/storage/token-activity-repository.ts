import type { Database } from './database.js';

/**
 * What the activity charts read (docs/console.md): tokens issued per day (the audit trail's
 * counts per day and action), PAT and SAT uses per day (the batched usage write's counts),
 * introspections per day (every introspection answered, whatever the token: counted where
 * introspection answers are observed, src/metrics/introspection-counts.ts), and live PATs and
 * SATs by the week they expire. Each reads one row a day or an index range of
 * live tokens, so it stays fast however long the trail grows
 * (migrations/1700000011000_console_lists.sql).
 */
export function createTokenActivityRepository(db: Database) {
  /** A per-day table's counts, its `day` column as YYYY-MM-DD and `n` the count. */
  const perDay = async (text: string, params: unknown[]): Promise<Map<string, number>> => {
    const { rows } = await db.query<{ day: string; n: string }>(text, params, { prepare: true });
    return new Map(rows.map((r) => [r.day, Number(r.n)]));
  };
  return {
    /** Events of `action` per UTC day (YYYY-MM-DD) from `fromDay` on. */
    async eventsPerDay(organizationId: string, action: string, fromDay: string): Promise<Map<string, number>> {
      return perDay(
        "SELECT to_char(day, 'YYYY-MM-DD') AS day, events AS n FROM audit_daily_counts WHERE organization_id = $1 AND action = $2 AND day >= $3::date",
        [organizationId, action, fromDay],
      );
    },
    /** PAT and SAT uses per UTC day from `fromDay` on. */
    async usesPerDay(organizationId: string, fromDay: string): Promise<Map<string, number>> {
      return perDay(
        "SELECT to_char(day, 'YYYY-MM-DD') AS day, uses AS n FROM reference_token_usage_daily WHERE organization_id = $1 AND day >= $2::date",
        [organizationId, fromDay],
      );
    },
    /**
     * One batched write of introspection counts: `subject` is the organization, the day (UTC) is
     * that of the batch's last introspection (a batch spans seconds; see usage-recorder.ts).
     */
    async recordIntrospections(batch: { subject: string; count: number; lastUsedAt: Date }[]): Promise<void> {
      if (batch.length === 0) return;
      await db.query(
        `INSERT INTO introspection_daily (organization_id, day, introspections)
         SELECT b.organization_id, (b.at AT TIME ZONE 'UTC')::date, sum(b.n)::bigint
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS b(organization_id, n, at)
          WHERE EXISTS (SELECT 1 FROM organizations o WHERE o.id = b.organization_id)
          GROUP BY 1, 2
         ON CONFLICT (organization_id, day) DO UPDATE SET introspections = introspection_daily.introspections + EXCLUDED.introspections`,
        [batch.map((b) => b.subject), batch.map((b) => b.count), batch.map((b) => b.lastUsedAt)],
      );
    },
    /** Introspections answered per UTC day from `fromDay` on, every kind of token. */
    async introspectionsPerDay(organizationId: string, fromDay: string): Promise<Map<string, number>> {
      return perDay(
        "SELECT to_char(day, 'YYYY-MM-DD') AS day, introspections AS n FROM introspection_daily WHERE organization_id = $1 AND day >= $2::date",
        [organizationId, fromDay],
      );
    },
    /** Live PATs and SATs expiring in each of `weeks` weeks from `now` (index 0: the next 7 days). */
    async expiringPerWeek(organizationId: string, now: Date, weeks: number): Promise<number[]> {
      const { rows } = await db.query<{ week: number; n: string }>(
        `SELECT floor(extract(epoch FROM expires_at - $2::timestamptz) / 604800)::int AS week, count(*) AS n
           FROM reference_tokens
          WHERE organization_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND expires_at < $2::timestamptz + $3::int * interval '7 days'
          GROUP BY 1`,
        [organizationId, now, weeks],
        { prepare: true },
      );
      const counts = Array.from({ length: weeks }, () => 0);
      for (const r of rows) if (r.week >= 0 && r.week < weeks) counts[r.week] = Number(r.n);
      return counts;
    },
  };
}
export type TokenActivityRepository = ReturnType<typeof createTokenActivityRepository>;
