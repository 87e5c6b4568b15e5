import type { Database, Queryable } from './database.js';

export interface ReferenceTokenRow {
  id: string;
  organization_id: string;
  type: 'pat' | 'sat';
  name: string;
  user_id: string | null;
  service_account_id: string | null;
  scopes: string[];
  resources: string[];
  secret_hash: Buffer;
  previous_secret_hash: Buffer | null;
  previous_valid_until: Date | null;
  rotation_key_hash: Buffer | null;
  created_by: string | null;
  created_at: Date;
  issued_at: Date;
  expires_at: Date;
  rotated_at: Date | null;
  last_used_at: Date | null;
  use_count: number;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

/** A token with what introspection needs to know about its owner. */
export interface ReferenceTokenWithOwner extends ReferenceTokenRow {
  owner_name: string;
  owner_status: string;
  owner_role: string | null;
}

export type NewReferenceToken = Pick<ReferenceTokenRow, 'id' | 'organization_id' | 'type' | 'name' | 'user_id' | 'service_account_id' | 'scopes' | 'resources' | 'secret_hash' | 'rotation_key_hash' | 'created_by' | 'expires_at'> & { now: Date };

export function createReferenceTokenRepository(db: Database) {
  return {
    async insert(token: NewReferenceToken, q: Queryable = db): Promise<ReferenceTokenRow> {
      const { rows } = await q.query<ReferenceTokenRow>(
        `INSERT INTO reference_tokens (id, organization_id, type, name, user_id, service_account_id, scopes, resources,
                                       secret_hash, rotation_key_hash, created_by, created_at, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) RETURNING *`,
        [
          token.id, token.organization_id, token.type, token.name, token.user_id, token.service_account_id,
          JSON.stringify(token.scopes), JSON.stringify(token.resources), token.secret_hash, token.rotation_key_hash,
          token.created_by, token.now, token.expires_at,
        ],
      );
      return rows[0]!;
    },
    async findWithOwnerByHash(hash: Buffer): Promise<ReferenceTokenWithOwner | undefined> {
      const { rows } = await db.query<ReferenceTokenWithOwner>(
        `SELECT t.*, COALESCE(u.username, sa.name) AS owner_name, COALESCE(u.status, sa.status) AS owner_status, u.role AS owner_role
           FROM reference_tokens t
           LEFT JOIN users u ON u.id = t.user_id
           LEFT JOIN service_accounts sa ON sa.id = t.service_account_id
          WHERE t.secret_hash = $1 OR t.previous_secret_hash = $1`,
        [hash],
      );
      return rows[0];
    },
    async revoke(id: string, reason: string, now: Date): Promise<boolean> {
      const { rowCount } = await db.query(
        'UPDATE reference_tokens SET revoked_at = $3, revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL',
        [id, reason, now],
      );
      return rowCount > 0;
    },
    /** The token whose current or previous secret hashes to `hash`. */
    async findByHash(hash: Buffer): Promise<ReferenceTokenRow | undefined> {
      const { rows } = await db.query<ReferenceTokenRow>(
        'SELECT * FROM reference_tokens WHERE secret_hash = $1 OR previous_secret_hash = $1',
        [hash],
      );
      return rows[0];
    },
  };
}
export type ReferenceTokenRepository = ReturnType<typeof createReferenceTokenRepository>;
