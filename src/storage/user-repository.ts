import type { User } from '../domain/types.js';
import type { Database, Queryable } from './database.js';

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
    async findById(id: string): Promise<User | undefined> {
      const { rows } = await db.query<User>('SELECT * FROM users WHERE id = $1', [id]);
      return rows[0];
    },
    async findByUsername(organizationId: string, username: string): Promise<User | undefined> {
      const { rows } = await db.query<User>('SELECT * FROM users WHERE organization_id = $1 AND username = $2', [organizationId, username]);
      return rows[0];
    },
    async setPassword(id: string, passwordHash: string): Promise<void> {
      await db.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [id, passwordHash]);
    },
  };
}
export type UserRepository = ReturnType<typeof createUserRepository>;
