import type { Organization } from '../domain/types.js';
import type { Database, Queryable } from './database.js';

export function createOrganizationRepository(db: Database) {
  return {
    async insert(org: Pick<Organization, 'id' | 'name' | 'policy'>, q: Queryable = db): Promise<Organization> {
      const { rows } = await q.query<Organization>(
        'INSERT INTO organizations (id, name, policy) VALUES ($1, $2, $3) RETURNING *',
        [org.id, org.name, JSON.stringify(org.policy)],
      );
      return rows[0]!;
    },
    async findById(id: string, q: Queryable = db): Promise<Organization | undefined> {
      const { rows } = await q.query<Organization>('SELECT * FROM organizations WHERE id = $1', [id]);
      return rows[0];
    },
    async findByName(name: string): Promise<Organization | undefined> {
      const { rows } = await db.query<Organization>('SELECT * FROM organizations WHERE name = $1', [name]);
      return rows[0];
    },
    async update(id: string, changes: { name?: string; policy?: Record<string, unknown> }): Promise<Organization | undefined> {
      const { rows } = await db.query<Organization>(
        `UPDATE organizations SET name = COALESCE($2, name), policy = policy || COALESCE($3::jsonb, '{}'::jsonb), updated_at = now()
          WHERE id = $1 RETURNING *`,
        [id, changes.name ?? null, changes.policy ? JSON.stringify(changes.policy) : null],
      );
      return rows[0];
    },
    /** Keyset pagination by (created_at, id). */
    async list(options: { after?: { k: string; id: string }; limit: number }): Promise<Organization[]> {
      const { rows } = await db.query<Organization>(
        `SELECT * FROM organizations WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2))
          ORDER BY created_at, id LIMIT $3`,
        [options.after?.k ?? null, options.after?.id ?? '', options.limit],
      );
      return rows;
    },
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM organizations');
      return rows[0]!.n;
    },
  };
}
export type OrganizationRepository = ReturnType<typeof createOrganizationRepository>;
