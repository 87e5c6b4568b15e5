import type { ServiceAccount } from '../domain/types.js';
import type { Database, Queryable } from './database.js';

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
  };
}
export type ServiceAccountRepository = ReturnType<typeof createServiceAccountRepository>;
