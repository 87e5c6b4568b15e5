import type { ClientRecord } from '../domain/types.js';
import type { Database, Queryable } from './database.js';
import { isPlausibleId } from './ids.js';
import type { KeysetAfter } from './user-repository.js';

export type NewClient = Pick<ClientRecord, 'client_id' | 'organization_id' | 'kind' | 'name' | 'resource_server_id' | 'service_account_id' | 'metadata' | 'allowed_scopes' | 'allowed_resources' | 'secret_enc' | 'registration'>
  & Partial<Pick<ClientRecord, 'registration_limits' | 'initial_access_token_id'>>;

export type ClientChanges = Partial<Pick<ClientRecord, 'name' | 'service_account_id' | 'metadata' | 'allowed_scopes' | 'allowed_resources'>>;

export function createClientRepository(db: Database) {
  return {
    async insert(client: NewClient, q: Queryable = db): Promise<ClientRecord> {
      const { rows } = await q.query<ClientRecord>(
        `INSERT INTO clients (client_id, organization_id, kind, name, resource_server_id, service_account_id, metadata,
                              allowed_scopes, allowed_resources, secret_enc, registration, registration_limits, initial_access_token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [
          client.client_id, client.organization_id, client.kind, client.name, client.resource_server_id, client.service_account_id,
          JSON.stringify(client.metadata), JSON.stringify(client.allowed_scopes), JSON.stringify(client.allowed_resources),
          client.secret_enc, client.registration,
          client.registration_limits ? JSON.stringify(client.registration_limits) : null, client.initial_access_token_id ?? null,
        ],
      );
      return rows[0]!;
    },
    /** One batched write of secret uses (see usage-recorder.ts); clients deleted meanwhile are skipped. */
    async recordSecretUse(batch: { subject: string; count: number; lastUsedAt: Date }[]): Promise<void> {
      if (batch.length === 0) return;
      await db.query(
        `UPDATE clients c SET secret_use_count = c.secret_use_count + u.n,
                secret_last_used_at = GREATEST(c.secret_last_used_at, u.at)
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u(client_id, n, at)
          WHERE c.client_id = u.client_id`,
        [batch.map((b) => b.subject), batch.map((b) => b.count), batch.map((b) => b.lastUsedAt)],
      );
    },
    async findById(clientId: string, q: Queryable = db): Promise<ClientRecord | undefined> {
      const { rows } = await q.query<ClientRecord>('SELECT * FROM clients WHERE client_id = $1', [clientId]);
      return rows[0];
    },
    /**
     * A client of one organization as the Management API shows it: an application or a built-in
     * client (tessera-cli, tessera-console), never a resource server's introspection credentials.
     */
    async findInOrganization(organizationId: string, clientId: string, q: Queryable = db, options: { lock?: boolean } = {}): Promise<ClientRecord | undefined> {
      if (!isPlausibleId(clientId)) return undefined;
      const { rows } = await q.query<ClientRecord>(
        `SELECT * FROM clients WHERE organization_id = $1 AND client_id = $2 AND kind IN ('oauth', 'cli', 'console')${options.lock ? ' FOR UPDATE' : ''}`,
        [organizationId, clientId],
      );
      return rows[0];
    },
    async findByResourceServer(resourceServerId: string, q: Queryable = db): Promise<ClientRecord[]> {
      const { rows } = await q.query<ClientRecord>('SELECT * FROM clients WHERE resource_server_id = $1', [resourceServerId]);
      return rows;
    },
    async listByServiceAccount(organizationId: string, serviceAccountId: string, q: Queryable = db): Promise<ClientRecord[]> {
      const { rows } = await q.query<ClientRecord>('SELECT * FROM clients WHERE organization_id = $1 AND service_account_id = $2', [organizationId, serviceAccountId]);
      return rows;
    },
    /** Every client of the organization that holds a secret (applications and introspection clients alike). */
    async withSecrets(organizationId: string): Promise<ClientRecord[]> {
      const { rows } = await db.query<ClientRecord>('SELECT * FROM clients WHERE organization_id = $1 AND secret_enc IS NOT NULL ORDER BY created_at, client_id', [organizationId]);
      return rows;
    },
    async list(organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<ClientRecord[]> {
      const { rows } = await db.query<ClientRecord>(
        `SELECT * FROM clients
          WHERE organization_id = $1 AND kind IN ('oauth', 'cli', 'console') AND ($2::timestamptz IS NULL OR (created_at, client_id) > ($2::timestamptz, $3))
          ORDER BY created_at, client_id LIMIT $4`,
        [organizationId, options.after?.k ?? null, options.after?.id ?? '', options.limit],
      );
      return rows;
    },
    async update(organizationId: string, clientId: string, changes: ClientChanges, q: Queryable = db): Promise<ClientRecord | undefined> {
      const { rows } = await q.query<ClientRecord>(
        `UPDATE clients SET
            name = CASE WHEN $3::boolean THEN $4 ELSE name END,
            service_account_id = CASE WHEN $5::boolean THEN $6 ELSE service_account_id END,
            metadata = COALESCE($7::jsonb, metadata),
            allowed_scopes = COALESCE($8::jsonb, allowed_scopes),
            allowed_resources = COALESCE($9::jsonb, allowed_resources),
            updated_at = now()
          WHERE organization_id = $1 AND client_id = $2 RETURNING *`,
        [
          organizationId, clientId, 'name' in changes, changes.name ?? null, 'service_account_id' in changes, changes.service_account_id ?? null,
          changes.metadata ? JSON.stringify(changes.metadata) : null,
          changes.allowed_scopes ? JSON.stringify(changes.allowed_scopes) : null,
          changes.allowed_resources ? JSON.stringify(changes.allowed_resources) : null,
        ],
      );
      return rows[0];
    },
    /**
     * Replaces the secret; the one it replaces stays valid until `previousExpiresAt` (rotation
     * grace). A null `previousExpiresAt` ends the old secret at once.
     */
    async rotateSecret(clientId: string, secretEnc: string, previousEnc: string | null, previousExpiresAt: Date | null, now: Date, q: Queryable = db): Promise<ClientRecord | undefined> {
      const { rows } = await q.query<ClientRecord>(
        `UPDATE clients SET secret_enc = $2, previous_secret_enc = $3, previous_secret_expires_at = $4,
                secret_rotated_at = $5, updated_at = now()
          WHERE client_id = $1 RETURNING *`,
        [clientId, secretEnc, previousEnc, previousExpiresAt, now],
      );
      return rows[0];
    },
    /** Forgets a resource identifier in every client of the organization (the API was deleted). */
    async removeResource(organizationId: string, identifier: string, q: Queryable = db): Promise<string[]> {
      const { rows } = await q.query<{ client_id: string }>(
        `UPDATE clients SET allowed_resources = allowed_resources - $2::text, updated_at = now()
          WHERE organization_id = $1 AND allowed_resources ? $2::text RETURNING client_id`,
        [organizationId, identifier],
      );
      return rows.map((r) => r.client_id);
    },
    /** Insert-or-update of a dynamically registered client (RFC 7591/7592); never touches other clients. */
    async upsertRegistered(client: NewClient, q: Queryable = db): Promise<ClientRecord | undefined> {
      const { rows } = await q.query<ClientRecord>(
        `INSERT INTO clients (client_id, organization_id, kind, name, resource_server_id, service_account_id, metadata,
                              allowed_scopes, allowed_resources, secret_enc, registration, registration_limits, initial_access_token_id)
         VALUES ($1, $2, 'oauth', $3, NULL, NULL, $4, $5, $6, $7, true, $8, $9)
         ON CONFLICT (client_id) DO UPDATE SET name = EXCLUDED.name, metadata = EXCLUDED.metadata,
              allowed_scopes = EXCLUDED.allowed_scopes, allowed_resources = EXCLUDED.allowed_resources,
              secret_enc = EXCLUDED.secret_enc, updated_at = now()
          WHERE clients.registration = true AND clients.organization_id = EXCLUDED.organization_id
         RETURNING *`,
        [
          client.client_id, client.organization_id, client.name, JSON.stringify(client.metadata), JSON.stringify(client.allowed_scopes),
          JSON.stringify(client.allowed_resources), client.secret_enc,
          client.registration_limits ? JSON.stringify(client.registration_limits) : null, client.initial_access_token_id ?? null,
        ],
      );
      return rows[0];
    },
    async delete(clientId: string, q: Queryable = db): Promise<boolean> {
      const { rowCount } = await q.query('DELETE FROM clients WHERE client_id = $1', [clientId]);
      return rowCount > 0;
    },
    async deleteRegistered(clientId: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM clients WHERE client_id = $1 AND registration = true', [clientId]);
      return rowCount > 0;
    },
  };
}
export type ClientRepository = ReturnType<typeof createClientRepository>;
