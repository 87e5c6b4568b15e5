import type { Database, Queryable } from './database.js';
import { isPlausibleId } from './ids.js';
import { organizationPage } from './keyset.js';
import type { KeysetAfter } from './user-repository.js';

export interface InitialAccessTokenRow {
  id: string;
  organization_id: string;
  token_hash: Buffer;
  scopes: string[];
  resources: string[];
  created_by: string | null;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
  use_count: number;
}

/** RFC 7591 initial access tokens; only their SHA-256 is stored. */
export function createInitialAccessTokenRepository(db: Database) {
  return {
    async insert(row: Pick<InitialAccessTokenRow, 'id' | 'organization_id' | 'token_hash' | 'scopes' | 'resources' | 'created_by' | 'expires_at'> & { now: Date }, q: Queryable = db): Promise<InitialAccessTokenRow> {
      const { rows } = await q.query<InitialAccessTokenRow>(
        `INSERT INTO initial_access_tokens (id, organization_id, token_hash, scopes, resources, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [row.id, row.organization_id, row.token_hash, JSON.stringify(row.scopes), JSON.stringify(row.resources), row.created_by, row.now, row.expires_at],
      );
      return rows[0]!;
    },
    async findByHash(hash: Buffer): Promise<InitialAccessTokenRow | undefined> {
      const { rows } = await db.query<InitialAccessTokenRow>('SELECT * FROM initial_access_tokens WHERE token_hash = $1', [hash]);
      return rows[0];
    },
    async findInOrganization(organizationId: string, id: string): Promise<InitialAccessTokenRow | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const { rows } = await db.query<InitialAccessTokenRow>('SELECT * FROM initial_access_tokens WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rows[0];
    },
    async list(organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<InitialAccessTokenRow[]> {
      return organizationPage<InitialAccessTokenRow>(db, 'initial_access_tokens', organizationId, options);
    },
    async recordUse(id: string, now: Date): Promise<void> {
      await db.query('UPDATE initial_access_tokens SET last_used_at = $2, use_count = use_count + 1 WHERE id = $1', [id, now]);
    },
    async revoke(organizationId: string, id: string, now: Date): Promise<boolean> {
      const { rowCount } = await db.query(
        'UPDATE initial_access_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE organization_id = $1 AND id = $2',
        [organizationId, id, now],
      );
      return rowCount > 0;
    },
  };
}
export type InitialAccessTokenRepository = ReturnType<typeof createInitialAccessTokenRepository>;
