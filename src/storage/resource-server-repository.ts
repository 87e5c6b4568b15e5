import type { ResourceServer } from '../domain/types.js';
import type { Database, Queryable } from './database.js';

export type NewResourceServer = Pick<ResourceServer, 'id' | 'organization_id' | 'identifier' | 'name' | 'scopes' | 'token_format' | 'access_token_ttl' | 'sensitive'>;

export function createResourceServerRepository(db: Database) {
  return {
    async insert(rs: NewResourceServer, q: Queryable = db): Promise<ResourceServer> {
      const { rows } = await q.query<ResourceServer>(
        `INSERT INTO resource_servers (id, organization_id, identifier, name, scopes, token_format, access_token_ttl, sensitive)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [rs.id, rs.organization_id, rs.identifier, rs.name, JSON.stringify(rs.scopes), rs.token_format, rs.access_token_ttl, rs.sensitive],
      );
      return rows[0]!;
    },
    async findById(id: string): Promise<ResourceServer | undefined> {
      const { rows } = await db.query<ResourceServer>('SELECT * FROM resource_servers WHERE id = $1', [id]);
      return rows[0];
    },
    async findByIdentifier(identifier: string): Promise<ResourceServer | undefined> {
      const { rows } = await db.query<ResourceServer>('SELECT * FROM resource_servers WHERE identifier = $1', [identifier]);
      return rows[0];
    },
    async listByOrganization(organizationId: string): Promise<ResourceServer[]> {
      const { rows } = await db.query<ResourceServer>('SELECT * FROM resource_servers WHERE organization_id = $1 ORDER BY created_at, id', [organizationId]);
      return rows;
    },
  };
}
export type ResourceServerRepository = ReturnType<typeof createResourceServerRepository>;
