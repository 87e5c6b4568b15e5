/**
 * The Database contract, on PGlite and on PostgreSQL: migrations, transactions, the errors
 * repositories map to HTTP answers, and what the two drivers return. Every repository is
 * written once against this contract, so the two must not differ.
 */
import { readdirSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Database } from '../../src/storage/database.js';
import { isUniqueViolation } from '../../src/storage/database.js';
import { migrate, MIGRATIONS_DIR } from '../../src/storage/migrate.js';
import { createPgDatabase } from '../../src/storage/pg-database.js';
import type { OpenedBackend } from '../helpers/backends.js';
import { backends, newSchemaName, postgresRedisSkipReason, TEST_DATABASE_URL } from '../helpers/backends.js';

/** Tables the storage layer and the adapter rely on; later migrations may add more. */
const CORE_TABLES = [
  'clients',
  'oidc_payloads',
  'organizations',
  'reference_tokens',
  'resource_servers',
  'revoked_jtis',
  'service_accounts',
  'signing_keys',
  'tessera_migrations',
  'users',
];

/** Every migration in migrations/, in the order node-pg-migrate applies them. */
const MIGRATION_NAMES = readdirSync(MIGRATIONS_DIR)
  .filter((file) => file.endsWith('.sql'))
  .map((file) => file.replace(/\.sql$/, ''))
  .sort();

/** A deferred promise: lets a test hold a lock or a transaction open until it says so. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe.each(backends)('database on $name', (backendFactory) => {
  let backend: OpenedBackend;
  let db: Database;
  let orgSeq = 0;
  const newOrgId = () => `org_${backendFactory.name.replace(/\W/g, '')}_${++orgSeq}`;

  beforeAll(async () => {
    backend = await backendFactory.open();
    db = backend.db;
  });
  afterAll(async () => {
    await backend?.close();
  });

  const tablesInCurrentSchema = async () => {
    const { rows } = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`,
    );
    return rows.map((r) => r.table_name);
  };
  const countOrganizations = async (ids: string[]) => {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM organizations WHERE id = ANY($1)', [ids]);
    return rows[0]!.n;
  };

  describe('migrations', () => {
    it('applied every migration, in order, and created the tables storage relies on', async () => {
      expect(MIGRATION_NAMES.length).toBeGreaterThan(0);
      const { rows } = await db.query<{ name: string }>('SELECT name FROM tessera_migrations ORDER BY run_on, id');
      expect(rows.map((r) => r.name)).toEqual(MIGRATION_NAMES);
      expect(await tablesInCurrentSchema()).toEqual(expect.arrayContaining(CORE_TABLES));
    });

    it('works in the schema the database was opened with', async () => {
      const { rows } = await db.query<{ schema: string }>('SELECT current_schema() AS schema');
      expect(rows[0]!.schema).toBe(backend.schema ?? 'public');
    });

    it('re-running migrate applies nothing and changes nothing', async () => {
      await db.query(`INSERT INTO organizations (id, name) VALUES ('org_survivor', 'survivor')`);
      const tablesBefore = await tablesInCurrentSchema();
      expect(await migrate(db, { schema: backend.schema })).toEqual([]);
      expect(await migrate(db)).toEqual([]);
      expect(await tablesInCurrentSchema()).toEqual(tablesBefore);
      expect(await countOrganizations(['org_survivor'])).toBe(1);
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM tessera_migrations');
      expect(rows[0]!.n).toBe(MIGRATION_NAMES.length);
    });
  });

  describe('queries', () => {
    it('round-trips the column types repositories use, the same way on both drivers', async () => {
      const id = newOrgId();
      const createdAt = new Date('2030-01-02T03:04:05.678Z');
      await db.query('INSERT INTO organizations (id, name, policy, created_at) VALUES ($1, $2, $3, $4)', [
        id,
        `name-${id}`,
        JSON.stringify({ max_pat_lifetime_days: 30, allowed_pat_scopes: ['a', 'b'] }),
        createdAt,
      ]);
      const { rows } = await db.query<{ id: string; policy: unknown; created_at: Date }>(
        'SELECT id, policy, created_at FROM organizations WHERE id = $1',
        [id],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.policy).toEqual({ max_pat_lifetime_days: 30, allowed_pat_scopes: ['a', 'b'] });
      expect(rows[0]!.created_at).toBeInstanceOf(Date);
      expect(rows[0]!.created_at.toISOString()).toBe(createdAt.toISOString());

      const types = await db.query<{ big: number; hash: Buffer; flag: boolean; nothing: null }>(
        `SELECT 9007199254740991::int8 AS big, '\\xdeadbeef'::bytea AS hash, true AS flag, NULL::text AS nothing`,
      );
      expect(types.rows[0]!.big).toBe(Number.MAX_SAFE_INTEGER);
      // Reference-token hashes are compared with Buffer#equals, so both drivers must return Buffers.
      expect(Buffer.isBuffer(types.rows[0]!.hash)).toBe(true);
      expect(types.rows[0]!.hash.equals(Buffer.from('deadbeef', 'hex'))).toBe(true);
      expect(types.rows[0]!.flag).toBe(true);
      expect(types.rows[0]!.nothing).toBeNull();

      const hash = Buffer.from('0102ff', 'hex');
      const found = await db.query<{ same: boolean }>('SELECT $1::bytea = $2::bytea AS same', [hash, Buffer.from('0102ff', 'hex')]);
      expect(found.rows[0]!.same).toBe(true);
    });

    it('counts rows the same way on both drivers: rows returned for SELECT, rows touched for writes', async () => {
      const ids = [newOrgId(), newOrgId(), newOrgId()];
      const inserted = await db.query('INSERT INTO organizations (id, name) SELECT x, x FROM unnest($1::text[]) AS x', [ids]);
      expect(inserted.rowCount).toBe(3);
      const selected = await db.query('SELECT id FROM organizations WHERE id = ANY($1)', [ids]);
      expect(selected.rows).toHaveLength(3);
      expect(selected.rowCount).toBe(3);
      const updated = await db.query(`UPDATE organizations SET policy = '{"x":1}' WHERE id = ANY($1)`, [ids.slice(0, 2)]);
      expect(updated.rowCount).toBe(2);
      const none = await db.query('DELETE FROM organizations WHERE id = $1', ['org_does_not_exist']);
      expect(none.rowCount).toBe(0);
      const returning = await db.query<{ id: string }>('DELETE FROM organizations WHERE id = ANY($1) RETURNING id', [ids]);
      expect(returning.rowCount).toBe(3);
      expect(returning.rows.map((r) => r.id).sort()).toEqual([...ids].sort());
    });
  });

  describe('transactions', () => {
    it('commits everything when the function resolves, and returns its value', async () => {
      const [a, b] = [newOrgId(), newOrgId()];
      const result = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [a]);
        await tx.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [b]);
        const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM organizations WHERE id = ANY($1)', [[a, b]]);
        return rows[0]!.n;
      });
      expect(result).toBe(2);
      expect(await countOrganizations([a, b])).toBe(2);
    });

    it('rolls everything back when the function throws, and rethrows the same error', async () => {
      const [a, b] = [newOrgId(), newOrgId()];
      const failure = new Error('half-way');
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [a]);
          await tx.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [b]);
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await countOrganizations([a, b])).toBe(0);
    });

    it('rolls back the first write when a later statement fails (nothing half-written)', async () => {
      const org = newOrgId();
      await db.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [org]);
      const user = `usr_${org}`;
      const error = await db
        .transaction(async (tx) => {
          await tx.query(`INSERT INTO users (id, organization_id, username, role) VALUES ($1, $2, 'alice', 'owner')`, [user, org]);
          await tx.query(`INSERT INTO users (id, organization_id, username, role) VALUES ($1, $2, 'alice', 'admin')`, [`${user}_2`, org]);
        })
        .catch((e: unknown) => e);
      expect(isUniqueViolation(error)).toBe(true);
      const { rows } = await db.query('SELECT id FROM users WHERE organization_id = $1', [org]);
      expect(rows).toEqual([]);
    });

    it('leaves the database usable after a rollback', async () => {
      const org = newOrgId();
      await db.transaction(async () => Promise.reject(new Error('boom'))).catch(() => {});
      await db.transaction(async (tx) => {
        await tx.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [org]);
      });
      expect(await countOrganizations([org])).toBe(1);
    });

    it.runIf(backendFactory.name === 'postgres+redis')('hides uncommitted writes from other connections', async () => {
      const org = newOrgId();
      const written = deferred();
      const release = deferred();
      const tx = db.transaction(async (t) => {
        await t.query('INSERT INTO organizations (id, name) VALUES ($1, $1)', [org]);
        written.resolve();
        await release.promise;
      });
      await written.promise;
      expect(await countOrganizations([org])).toBe(0);
      release.resolve();
      await tx;
      expect(await countOrganizations([org])).toBe(1);
    });
  });

  describe('errors', () => {
    it('isUniqueViolation recognizes a duplicate key, and nothing else', async () => {
      const org = newOrgId();
      await db.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [org, `unique-${org}`]);
      const duplicateName = await db.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [`${org}_b`, `unique-${org}`]).catch((e: unknown) => e);
      const duplicateKey = await db.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [org, `other-${org}`]).catch((e: unknown) => e);
      const foreignKey = await db
        .query(`INSERT INTO users (id, organization_id, username, role) VALUES ('usr_orphan', 'org_missing', 'x', 'member')`)
        .catch((e: unknown) => e);
      const check = await db
        .query(`INSERT INTO users (id, organization_id, username, role) VALUES ('usr_bad_role', $1, 'y', 'emperor')`, [org])
        .catch((e: unknown) => e);

      expect(isUniqueViolation(duplicateName)).toBe(true);
      expect(isUniqueViolation(duplicateKey)).toBe(true);
      expect(foreignKey).toBeInstanceOf(Error);
      expect(isUniqueViolation(foreignKey)).toBe(false);
      expect(check).toBeInstanceOf(Error);
      expect(isUniqueViolation(check)).toBe(false);
      expect(isUniqueViolation(new Error('duplicate key value violates unique constraint'))).toBe(false);
      expect(isUniqueViolation(undefined)).toBe(false);
      expect(isUniqueViolation(null)).toBe(false);
    });
  });

  describe('connections', () => {
    it('withConnection runs every query on one session', async () => {
      const value = await db.withConnection(async (connection) => {
        await connection.query('CREATE TEMP TABLE scratch_session (v int)');
        await connection.query('INSERT INTO scratch_session (v) VALUES (41), (1)');
        const { rows } = await connection.query<{ total: number }>('SELECT sum(v)::int AS total FROM scratch_session');
        await connection.query('DROP TABLE scratch_session');
        return rows[0]!.total;
      });
      expect(value).toBe(42);
    });

    it('withAdvisoryLock runs the function and returns its value when the lock is free', async () => {
      expect(await db.withAdvisoryLock(4242, async () => 'ran')).toBe('ran');
      // Released afterwards: the next holder gets it.
      expect(await db.withAdvisoryLock(4242, async () => 'again')).toBe('again');
    });

    it('withAdvisoryLock releases the lock when the function throws', async () => {
      await expect(db.withAdvisoryLock(4243, async () => Promise.reject(new Error('job failed')))).rejects.toThrow('job failed');
      expect(await db.withAdvisoryLock(4243, async () => 'after failure')).toBe('after failure');
    });
  });
});

describe.skipIf(postgresRedisSkipReason !== undefined)('PostgreSQL across nodes', () => {
  // Two pools on one schema stand for two Tessera nodes sharing one database.
  const schema = newSchemaName();
  let nodeA: Database;
  let nodeB: Database;

  beforeAll(async () => {
    nodeA = createPgDatabase({ url: TEST_DATABASE_URL, schema, max: 2 });
    nodeB = createPgDatabase({ url: TEST_DATABASE_URL, schema, max: 2 });
  });
  afterAll(async () => {
    await nodeA?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await Promise.all([nodeA?.close(), nodeB?.close()]);
  });

  it('nodes starting together migrate once; migrate(db) without a schema uses the pool\'s own', async () => {
    const [appliedA, appliedB] = await Promise.all([migrate(nodeA), migrate(nodeB)]);
    // One node applies everything, the other waits for its lock and finds nothing left to do.
    expect([appliedA, appliedB]).toContainEqual(MIGRATION_NAMES);
    expect([appliedA, appliedB]).toContainEqual([]);
    const { rows } = await nodeB.query<{ table_schema: string }>(
      `SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = 'tessera_migrations' AND table_schema = $1`,
      [schema],
    );
    expect(rows).toEqual([{ table_schema: schema }]);
    // Every pooled connection still works in the node's schema afterwards.
    const paths = await Promise.all([nodeA, nodeA, nodeB, nodeB].map((db) => db.query<{ s: string }>('SELECT current_schema() AS s')));
    expect(paths.map((p) => p.rows[0]!.s)).toEqual([schema, schema, schema, schema]);
  });

  it('a job holding an advisory lock on one node makes the other node skip it', async () => {
    const holding = deferred();
    const release = deferred();
    let ranOnB = false;
    const onA = nodeA.withAdvisoryLock(7001, async () => {
      holding.resolve();
      await release.promise;
      return 'A did the job';
    });
    await holding.promise;

    expect(await nodeB.withAdvisoryLock(7001, async () => (ranOnB = true))).toBeUndefined();
    expect(ranOnB).toBe(false);
    // Another connection of the same node is another session: it is refused as well.
    expect(await nodeA.withAdvisoryLock(7001, async () => 'second holder on A')).toBeUndefined();
    // A different key is independent.
    expect(await nodeB.withAdvisoryLock(7002, async () => 'other job')).toBe('other job');

    release.resolve();
    expect(await onA).toBe('A did the job');
    expect(await nodeB.withAdvisoryLock(7001, async () => 'B after A')).toBe('B after A');
  });

  it('a node sees the other node\'s committed writes at once', async () => {
    await nodeA.transaction(async (tx) => {
      await tx.query(`INSERT INTO organizations (id, name) VALUES ('org_shared', 'shared')`);
    });
    const { rows } = await nodeB.query<{ name: string }>(`SELECT name FROM organizations WHERE id = 'org_shared'`);
    expect(rows).toEqual([{ name: 'shared' }]);
  });
});
