import type { ServiceAccount } from '../domain/types.js';
import type { Database, Queryable } from './database.js';
import { isPlausibleId } from './ids.js';
import { organizationPage } from './keyset.js';
import type { KeysetAfter } from './user-repository.js';

export function createServiceAccountRepository(db: Database) {
  return {
    async insert(account: Pick<ServiceAccount, 'id' | 'organization_id' | 'name' | 'description' | 'platform_admin'>, q: Queryable = db): Promise<ServiceAccount> {
      const { rows } = await q.query<ServiceAccount>(
        `INSERT INTO service_accounts (id, organization_id, name, description, platform_admin)
         VALUES ($1, $2, $3, $4, $5) RETURNING *`,
        [account.id, account.organization_id, account.name, account.description, account.platform_admin],
      );
      return rows[0]!;
    },
    async findById(id: string): Promise<ServiceAccount | undefined> {
      const { rows } = await db.query<ServiceAccount>('SELECT * FROM service_accounts WHERE id = $1', [id]);
      return rows[0];
    },
    /** An account of one organization; another organization's account is indistinguishable from none. */
    async findInOrganization(organizationId: string, id: string, q: Queryable = db): Promise<ServiceAccount | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const { rows } = await q.query<ServiceAccount>('SELECT * FROM service_accounts WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rows[0];
    },
    async list(organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<ServiceAccount[]> {
      return organizationPage<ServiceAccount>(db, 'service_accounts', organizationId, options);
    },
    async update(
      organizationId: string,
      id: string,
      changes: { status?: ServiceAccount['status']; name?: string; description?: string | null },
      q: Queryable = db,
    ): Promise<ServiceAccount | undefined> {
      const { rows } = await q.query<ServiceAccount>(
        `UPDATE service_accounts SET status = COALESCE($3, status), name = COALESCE($4, name),
                description = CASE WHEN $5::boolean THEN $6 ELSE description END, updated_at = now()
          WHERE organization_id = $1 AND id = $2 RETURNING *`,
        [organizationId, id, changes.status ?? null, changes.name ?? null, 'description' in changes, changes.description ?? null],
      );
      return rows[0];
    },
    async delete(organizationId: string, id: string, q: Queryable = db): Promise<boolean> {
      const { rowCount } = await q.query('DELETE FROM service_accounts WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rowCount > 0;
    },
  };
}
export type ServiceAccountRepository = ReturnType<typeof createServiceAccountRepository>;
