import type { ClientRecord } from '../domain/types.js';
import type { Database, Queryable } from './database.js';

export type NewClient = Pick<ClientRecord, 'client_id' | 'organization_id' | 'kind' | 'name' | 'resource_server_id' | 'service_account_id' | 'metadata' | 'allowed_scopes' | 'allowed_resources' | 'secret_enc' | 'registration'>;

export function createClientRepository(db: Database) {
  return {
    async insert(client: NewClient, q: Queryable = db): Promise<ClientRecord> {
      const { rows } = await q.query<ClientRecord>(
        `INSERT INTO clients (client_id, organization_id, kind, name, resource_server_id, service_account_id, metadata,
                              allowed_scopes, allowed_resources, secret_enc, registration)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
        [
          client.client_id, client.organization_id, client.kind, client.name, client.resource_server_id, client.service_account_id,
          JSON.stringify(client.metadata), JSON.stringify(client.allowed_scopes), JSON.stringify(client.allowed_resources),
          client.secret_enc, client.registration,
        ],
      );
      return rows[0]!;
    },
    async findById(clientId: string): Promise<ClientRecord | undefined> {
      const { rows } = await db.query<ClientRecord>('SELECT * FROM clients WHERE client_id = $1', [clientId]);
      return rows[0];
    },
    async findByResourceServer(resourceServerId: string): Promise<ClientRecord[]> {
      const { rows } = await db.query<ClientRecord>('SELECT * FROM clients WHERE resource_server_id = $1', [resourceServerId]);
      return rows;
    },
    async delete(clientId: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM clients WHERE client_id = $1', [clientId]);
      return rowCount > 0;
    },
  };
}
export type ClientRepository = ReturnType<typeof createClientRepository>;
