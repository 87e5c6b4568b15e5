import type { Role, User } from '../domain/types.js';
import type { Database, Queryable } from './database.js';
import { isPlausibleId } from './ids.js';

export interface KeysetAfter {
  k: string;
  id: string;
}

/**
 * The one spelling of a username that matching uses, at sign-in and in the login throttle
 * (src/domain/login-throttle.ts): Unicode compatibility form (NFKC), no surrounding spaces, and
 * the ASCII letters A-Z in lower case — nothing else folded. Usernames are ASCII (letters,
 * digits, . @ + - _; src/management/routes/users.ts), so this is all a stored name needs.
 *
 * Not JavaScript's toLowerCase() nor PostgreSQL's lower(): both fold far more than ASCII, and
 * differently (PostgreSQL, under a UTF-8 locale, lowers 'İ' (U+0130) to 'i', JavaScript to 'i'
 * followed by U+0307), so a spelling one of them folds onto an account and the other does not
 * would find the account with a throttle counter of its own.
 */
export function usernameKey(username: string): string {
  return username.normalize('NFKC').trim().replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

export function createUserRepository(db: Database) {
  return {
    async insert(user: Pick<User, 'id' | 'organization_id' | 'username' | 'email' | 'name' | 'role' | 'password_hash'>, q: Queryable = db): Promise<User> {
      const { rows } = await q.query<User>(
        `INSERT INTO users (id, organization_id, username, email, name, role, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [user.id, user.organization_id, user.username, user.email, user.name, user.role, user.password_hash],
      );
      return rows[0]!;
    },
    async findById(id: string, q: Queryable = db): Promise<User | undefined> {
      const { rows } = await q.query<User>('SELECT * FROM users WHERE id = $1', [id]);
      return rows[0];
    },
    /** A user of one organization; another organization's user is indistinguishable from none. */
    async findInOrganization(organizationId: string, id: string, q: Queryable = db, options: { lock?: boolean } = {}): Promise<User | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const { rows } = await q.query<User>(
        `SELECT * FROM users WHERE organization_id = $1 AND id = $2${options.lock ? ' FOR UPDATE' : ''}`,
        [organizationId, id],
      );
      return rows[0];
    },
    /** The user whose name has the same `usernameKey` as `username`. */
    async findByUsername(organizationId: string, username: string): Promise<User | undefined> {
      // Under the "C" collation lower() folds A-Z only, whatever the database's locale: the
      // stored side of usernameKey (stored names are ASCII and already trimmed and NFKC).
      const { rows } = await db.query<User>(
        'SELECT * FROM users WHERE organization_id = $1 AND lower(username COLLATE "C") = $2',
        [organizationId, usernameKey(username)],
      );
      return rows[0];
    },
    /** Keyset pagination by (created_at, id). */
    async list(organizationId: string, options: { after?: KeysetAfter; limit: number; role?: Role; status?: User['status'] }): Promise<User[]> {
      const { rows } = await db.query<User>(
        `SELECT * FROM users
          WHERE organization_id = $1
            AND ($2::timestamptz IS NULL OR (created_at, id) > ($2::timestamptz, $3))
            AND ($5::text IS NULL OR role = $5) AND ($6::text IS NULL OR status = $6)
          ORDER BY created_at, id LIMIT $4`,
        [organizationId, options.after?.k ?? null, options.after?.id ?? '', options.limit, options.role ?? null, options.status ?? null],
      );
      return rows;
    },
    /**
     * Locks the organization's active owners (FOR UPDATE) and returns their ids, so two
     * concurrent demotions cannot both see "another owner is left" and remove the last one.
     */
    async lockActiveOwners(organizationId: string, q: Queryable): Promise<string[]> {
      const { rows } = await q.query<{ id: string }>(
        `SELECT id FROM users WHERE organization_id = $1 AND role = 'owner' AND status = 'active' ORDER BY id FOR UPDATE`,
        [organizationId],
      );
      return rows.map((r) => r.id);
    },
    async update(
      organizationId: string,
      id: string,
      changes: { role?: Role; status?: User['status']; email?: string | null; name?: string | null },
      q: Queryable = db,
    ): Promise<User | undefined> {
      const { rows } = await q.query<User>(
        `UPDATE users SET role = COALESCE($3, role), status = COALESCE($4, status),
                email = CASE WHEN $5::boolean THEN $6 ELSE email END,
                name = CASE WHEN $7::boolean THEN $8 ELSE name END,
                updated_at = now()
          WHERE organization_id = $1 AND id = $2 RETURNING *`,
        [organizationId, id, changes.role ?? null, changes.status ?? null, 'email' in changes, changes.email ?? null, 'name' in changes, changes.name ?? null],
      );
      return rows[0];
    },
    async delete(organizationId: string, id: string, q: Queryable = db): Promise<boolean> {
      const { rowCount } = await q.query('DELETE FROM users WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rowCount > 0;
    },
    async setPassword(id: string, passwordHash: string): Promise<void> {
      await db.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [id, passwordHash]);
    },
  };
}
export type UserRepository = ReturnType<typeof createUserRepository>;
