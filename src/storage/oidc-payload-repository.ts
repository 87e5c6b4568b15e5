import type { Database } from './database.js';

/**
 * Durable oidc-provider payloads (Grant, RefreshToken, registration tokens) in PostgreSQL. `id` is
 * the stored id the adapter derives (src/oidc/model-keys.ts): a digest for bearer credentials.
 */
export function createOidcPayloadRepository(db: Database) {
  return {
    async upsert(model: string, id: string, payload: Record<string, unknown>, expiresAt: Date | null): Promise<void> {
      await db.query(
        `INSERT INTO oidc_payloads (model, id, payload, grant_id, uid, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
           uid = EXCLUDED.uid, expires_at = EXCLUDED.expires_at`,
        [model, id, JSON.stringify(payload), (payload.grantId as string) ?? null, (payload.uid as string) ?? null, expiresAt],
      );
    },
    async find(model: string, id: string, now: Date): Promise<Record<string, unknown> | undefined> {
      const { rows } = await db.query<{ payload: Record<string, unknown>; consumed_at: Date | null }>(
        'SELECT payload, consumed_at FROM oidc_payloads WHERE model = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > $3)',
        [model, id, now],
      );
      const row = rows[0];
      if (!row) return undefined;
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload;
    },
    /**
     * `find`, also matching in the same query a row of the layout before ids were hashed: named
     * `legacyId`, which its payload repeats as jti (a hashed row has no jti, so a digest presented
     * as `legacyId` matches nothing). The hashed row wins; `legacy` says which one answered.
     */
    async findOrLegacy(model: string, id: string, legacyId: string, now: Date): Promise<{ payload: Record<string, unknown>; legacy: boolean } | undefined> {
      const { rows } = await db.query<{ payload: Record<string, unknown>; consumed_at: Date | null; legacy: boolean }>(
        `SELECT payload, consumed_at, id <> $2 AS legacy FROM oidc_payloads
          WHERE model = $1 AND (id = $2 OR (id = $3 AND payload->>'jti' = $3)) AND (expires_at IS NULL OR expires_at > $4)
          ORDER BY id = $2 DESC LIMIT 1`,
        [model, id, legacyId, now],
      );
      const row = rows[0];
      if (!row) return undefined;
      return { payload: row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload, legacy: row.legacy };
    },
    async findByUid(model: string, uid: string, now: Date): Promise<Record<string, unknown> | undefined> {
      const { rows } = await db.query<{ payload: Record<string, unknown>; consumed_at: Date | null }>(
        'SELECT payload, consumed_at FROM oidc_payloads WHERE model = $1 AND uid = $2 AND (expires_at IS NULL OR expires_at > $3)',
        [model, uid, now],
      );
      const row = rows[0];
      if (!row) return undefined;
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload;
    },
    /** With `legacyId`, a row of the layout before ids were hashed too (see findOrLegacy). */
    async consume(model: string, id: string, now: Date, legacyId?: string): Promise<void> {
      if (legacyId === undefined) {
        await db.query('UPDATE oidc_payloads SET consumed_at = $3 WHERE model = $1 AND id = $2', [model, id, now]);
      } else {
        await db.query("UPDATE oidc_payloads SET consumed_at = $3 WHERE model = $1 AND (id = $2 OR (id = $4 AND payload->>'jti' = $4))", [model, id, now, legacyId]);
      }
    },
    async destroy(model: string, id: string, legacyId?: string): Promise<void> {
      if (legacyId === undefined) {
        await db.query('DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
      } else {
        await db.query("DELETE FROM oidc_payloads WHERE model = $1 AND (id = $2 OR (id = $3 AND payload->>'jti' = $3))", [model, id, legacyId]);
      }
    },
    /**
     * Moves a row of the layout before ids were hashed (its id the raw token, which its payload
     * repeats as jti) to `storedId`, without the jti, in one statement. A row already kept under
     * `storedId` (another node got there first) wins. Only a row whose jti equals its id moves, so a hashed row is never taken for
     * a legacy one. True when there was a legacy row.
     */
    async adoptLegacyId(model: string, id: string, storedId: string): Promise<boolean> {
      const { rows } = await db.query<{ moved: number }>(
        `WITH legacy AS (
           DELETE FROM oidc_payloads WHERE model = $1 AND id = $2 AND payload->>'jti' = $2 RETURNING *
         ), adopted AS (
           INSERT INTO oidc_payloads (model, id, payload, grant_id, uid, expires_at, consumed_at)
           SELECT model, $3, payload - 'jti', grant_id, uid, expires_at, consumed_at FROM legacy
           ON CONFLICT (model, id) DO NOTHING
         )
         SELECT count(*)::int AS moved FROM legacy`,
        [model, id, storedId],
      );
      return (rows[0]?.moved ?? 0) > 0;
    },
    /**
     * Every token issued from the grant. Not the Grant itself: oidc-provider destroys that
     * separately when its revokeGrantPolicy says so (revoking an access token keeps it).
     */
    async revokeByGrantId(grantId: string): Promise<void> {
      await db.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
    },
    async deleteExpired(now: Date, limit: number): Promise<number> {
      const { rowCount } = await db.query(
        'DELETE FROM oidc_payloads WHERE ctid IN (SELECT ctid FROM oidc_payloads WHERE expires_at <= $1 LIMIT $2)',
        [now, limit],
      );
      return rowCount;
    },
  };
}
export type OidcPayloadRepository = ReturnType<typeof createOidcPayloadRepository>;
