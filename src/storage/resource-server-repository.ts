import type { ResourceServer } from '../domain/types.js';
import type { Database, Queryable } from './database.js';
import { isPlausibleId } from './ids.js';
import { organizationPage } from './keyset.js';
import type { KeysetAfter } from './user-repository.js';

export type NewResourceServer = Pick<ResourceServer, 'id' | 'organization_id' | 'identifier' | 'name' | 'scopes' | 'token_format' | 'access_token_ttl' | 'sensitive'> & Partial<Pick<ResourceServer, 'dpop_required'>>;
export type ResourceServerChanges = Partial<Pick<ResourceServer, 'name' | 'scopes' | 'token_format' | 'access_token_ttl' | 'sensitive' | 'dpop_required'>>;

export function createResourceServerRepository(db: Database) {
  return {
    async insert(rs: NewResourceServer, q: Queryable = db): Promise<ResourceServer> {
      const { rows } = await q.query<ResourceServer>(
        `INSERT INTO resource_servers (id, organization_id, identifier, name, scopes, token_format, access_token_ttl, sensitive, dpop_required)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
        [rs.id, rs.organization_id, rs.identifier, rs.name, JSON.stringify(rs.scopes), rs.token_format, rs.access_token_ttl, rs.sensitive, rs.dpop_required ?? false],
      );
      return rows[0]!;
    },
    async findById(id: string): Promise<ResourceServer | undefined> {
      const { rows } = await db.query<ResourceServer>('SELECT * FROM resource_servers WHERE id = $1', [id]);
      return rows[0];
    },
    async findInOrganization(organizationId: string, id: string, q: Queryable = db): Promise<ResourceServer | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const { rows } = await q.query<ResourceServer>('SELECT * FROM resource_servers WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rows[0];
    },
    async findByIdentifier(identifier: string, q: Queryable = db): Promise<ResourceServer | undefined> {
      // PostgreSQL refuses NUL in text; such a value names no API.
      if (identifier.includes('\u0000') || identifier.length > 4096) return undefined;
      const { rows } = await q.query<ResourceServer>('SELECT * FROM resource_servers WHERE identifier = $1', [identifier]);
      return rows[0];
    },
    /** The longest access_token_ttl of any resource server, in seconds; undefined with none. */
    async longestAccessTokenTtl(): Promise<number | undefined> {
      const { rows } = await db.query<{ ttl: number | null }>('SELECT max(access_token_ttl) AS ttl FROM resource_servers');
      return rows[0]?.ttl ?? undefined;
    },
    async listByOrganization(organizationId: string): Promise<ResourceServer[]> {
      const { rows } = await db.query<ResourceServer>('SELECT * FROM resource_servers WHERE organization_id = $1 ORDER BY created_at, id', [organizationId]);
      return rows;
    },
    async list(organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<ResourceServer[]> {
      return organizationPage<ResourceServer>(db, 'resource_servers', organizationId, options);
    },
    async update(organizationId: string, id: string, changes: ResourceServerChanges, q: Queryable = db): Promise<ResourceServer | undefined> {
      const { rows } = await q.query<ResourceServer>(
        `UPDATE resource_servers SET
            name = CASE WHEN $3::boolean THEN $4 ELSE name END,
            scopes = COALESCE($5::jsonb, scopes),
            token_format = COALESCE($6, token_format),
            access_token_ttl = COALESCE($7, access_token_ttl),
            sensitive = COALESCE($8, sensitive),
            dpop_required = COALESCE($9, dpop_required),
            updated_at = now()
          WHERE organization_id = $1 AND id = $2 RETURNING *`,
        [
          organizationId, id, 'name' in changes, changes.name ?? null, changes.scopes ? JSON.stringify(changes.scopes) : null,
          changes.token_format ?? null, changes.access_token_ttl ?? null, changes.sensitive ?? null, changes.dpop_required ?? null,
        ],
      );
      return rows[0];
    },
    async delete(organizationId: string, id: string, q: Queryable = db): Promise<boolean> {
      const { rowCount } = await q.query('DELETE FROM resource_servers WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rowCount > 0;
    },
  };
}
export type ResourceServerRepository = ReturnType<typeof createResourceServerRepository>;
