import type { Queryable } from './database.js';
import type { KeysetAfter } from './user-repository.js';

/** The tables listed page by page in their organization's (created_at, id) order. */
export type OrganizationListedTable = 'service_accounts' | 'resource_servers' | 'initial_access_tokens' | 'webhook_endpoints';

/**
 * One page of an organization's rows of `table`, in (created_at, id) order, strictly after the
 * keyset position `after` (src/management/pagination.ts makes and checks it). The table name is
 * one of the constants above, never input.
 */
export async function organizationPage<R>(db: Queryable, table: OrganizationListedTable, organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<R[]> {
  const { rows } = await db.query<R>(
    `SELECT * FROM ${table}
      WHERE organization_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3))
      ORDER BY created_at, id LIMIT $4`,
    [organizationId, options.after?.k ?? null, options.after?.id ?? '', options.limit],
  );
  return rows;
}
