import type { Database, Queryable } from './database.js';

export type KeyState = 'next' | 'current' | 'retired';

export interface SigningKeyRow {
  kid: string;
  alg: string;
  state: KeyState;
  public_jwk: Record<string, unknown>;
  private_jwk_enc: string;
  created_at: Date;
  promoted_at: Date | null;
  retired_at: Date | null;
  remove_after: Date | null;
}

export function createSigningKeyRepository(db: Database) {
  return {
    /** Every key still published: current, staged and retired-but-not-yet-removed. */
    async listPublished(now: Date): Promise<SigningKeyRow[]> {
      const { rows } = await db.query<SigningKeyRow>(
        `SELECT * FROM signing_keys WHERE remove_after IS NULL OR remove_after > $1
         ORDER BY CASE state WHEN 'current' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC`,
        [now],
      );
      return rows;
    },
    async insert(row: Pick<SigningKeyRow, 'kid' | 'alg' | 'state' | 'public_jwk' | 'private_jwk_enc'>, now: Date, q: Queryable = db): Promise<boolean> {
      // The partial unique index on (alg) WHERE state='current' makes concurrent first starts safe.
      const { rowCount } = await q.query(
        `INSERT INTO signing_keys (kid, alg, state, public_jwk, private_jwk_enc, created_at, promoted_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'current' THEN $6::timestamptz END) ON CONFLICT DO NOTHING`,
        [row.kid, row.alg, row.state, JSON.stringify(row.public_jwk), row.private_jwk_enc, now],
      );
      return rowCount > 0;
    },
    /** Promotes the staged key of `alg`; the current one is retired and removed after `removeAfter`. */
    async promote(alg: string, kid: string, now: Date, removeAfter: Date): Promise<void> {
      await db.transaction(async (tx) => {
        await tx.query(
          `UPDATE signing_keys SET state = 'retired', retired_at = $2, remove_after = $3 WHERE alg = $1 AND state = 'current'`,
          [alg, now, removeAfter],
        );
        await tx.query(`UPDATE signing_keys SET state = 'current', promoted_at = $3 WHERE alg = $1 AND kid = $2 AND state = 'next'`, [alg, kid, now]);
      });
    },
    async deleteRemoved(now: Date): Promise<number> {
      const { rowCount } = await db.query(`DELETE FROM signing_keys WHERE state = 'retired' AND remove_after <= $1`, [now]);
      return rowCount;
    },
  };
}

export type SigningKeyRepository = ReturnType<typeof createSigningKeyRepository>;
