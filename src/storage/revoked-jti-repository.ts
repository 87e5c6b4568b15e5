import type { Database } from './database.js';

/** Durable half of the JWT revocation list; the cache store holds the hot half. */
export function createRevokedJtiRepository(db: Database) {
  return {
    async insert(jti: string, organizationId: string | null, expiresAt: Date): Promise<void> {
      await db.query(
        'INSERT INTO revoked_jtis (jti, organization_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING',
        [jti, organizationId, expiresAt],
      );
    },
    async isRevoked(jti: string): Promise<boolean> {
      const { rows } = await db.query('SELECT 1 FROM revoked_jtis WHERE jti = $1', [jti]);
      return rows.length > 0;
    },
    async listActive(now: Date): Promise<{ jti: string; expires_at: Date }[]> {
      const { rows } = await db.query<{ jti: string; expires_at: Date }>('SELECT jti, expires_at FROM revoked_jtis WHERE expires_at > $1', [now]);
      return rows;
    },
    async deleteExpired(now: Date): Promise<number> {
      const { rowCount } = await db.query('DELETE FROM revoked_jtis WHERE expires_at <= $1', [now]);
      return rowCount;
    },
  };
}
export type RevokedJtiRepository = ReturnType<typeof createRevokedJtiRepository>;
