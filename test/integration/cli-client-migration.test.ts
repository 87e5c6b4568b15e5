/**
 * migrations/1700000008000_cli_client.sql on PGlite and PostgreSQL, with data between the steps
 * as an upgrade meets it: organizations created before the migration get the same built-in tessera-cli client
 * the code gives a new organization (src/domain/cli-client.ts), once; and a client registered as
 * native before becomes a web client, since port-agnostic loopback redirects are the built-in
 * client's alone. Later, migrations/1700000016100_cli_device_grant.sql gives the built-in client
 * the device code grant, harmlessly when run again.
 */
import { readdirSync } from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import { cliClient, cliClientId } from '../../src/domain/cli-client.js';
import { consoleClient, consoleClientId } from '../../src/domain/console-client.js';
import { createClientRepository } from '../../src/storage/client-repository.js';
import type { Database } from '../../src/storage/database.js';
import { migrate, MIGRATIONS_DIR } from '../../src/storage/migrate.js';
import { createPgDatabase } from '../../src/storage/pg-database.js';
import { createPgliteDatabase } from '../../src/storage/pglite-database.js';
import { newSchemaName, postgresRedisSkipReason, TEST_DATABASE_URL } from '../helpers/backends.js';

const MIGRATIONS = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith('.sql')).sort();
const BEFORE_CLI_CLIENT = MIGRATIONS.indexOf('1700000008000_cli_client.sql');

interface EmptyDatabase {
  db: Database;
  schema?: string;
  close(): Promise<void>;
}

const databases: Record<string, () => Promise<EmptyDatabase>> = {
  pglite: async () => {
    const db = await createPgliteDatabase();
    return { db, close: () => db.close() };
  },
  ...(postgresRedisSkipReason
    ? {}
    : {
        postgres: async () => {
          const schema = newSchemaName();
          const db = createPgDatabase({ url: TEST_DATABASE_URL, schema, max: 1 });
          await db.query(`CREATE SCHEMA "${schema}"`);
          return {
            db,
            schema,
            async close() {
              await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
              await db.close();
            },
          };
        },
      }),
};

describe.each(Object.keys(databases))('the tessera-cli migration on %s', (name) => {
  let opened: EmptyDatabase | undefined;
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
  });

  it('backfills every existing organization with the client the code creates, and makes registered native clients web clients', async () => {
    expect(BEFORE_CLI_CLIENT).toBeGreaterThan(0);
    opened = await databases[name]!();
    const { db, schema } = opened;
    await migrate(db, { schema, count: BEFORE_CLI_CLIENT });
    await db.query("INSERT INTO organizations (id, name) VALUES ('org_a', 'a'), ('org_b', 'b')");
    await db.query(
      `INSERT INTO clients (client_id, organization_id, kind, name, metadata) VALUES ('app', 'org_a', 'oauth', 'App', '{"grant_types": ["client_credentials"]}')`,
    );
    // Registered through RFC 7591 as native before only the built-in client could be.
    await db.query(
      `INSERT INTO clients (client_id, organization_id, kind, name, metadata, registration) VALUES
         ('native-app', 'org_b', 'oauth', 'Native', '{"application_type": "native", "redirect_uris": ["http://127.0.0.1:7000/cb"]}', true)`,
    );

    expect(await migrate(db, { schema })).toEqual(MIGRATIONS.slice(BEFORE_CLI_CLIENT).map((file) => file.replace(/\.sql$/, '')));

    const clients = createClientRepository(db);
    for (const organizationId of ['org_a', 'org_b']) {
      const stored = await clients.findById(cliClientId(organizationId));
      const expected = cliClient(organizationId);
      expect(stored).toMatchObject({
        client_id: expected.client_id,
        organization_id: organizationId,
        kind: 'cli',
        name: expected.name,
        metadata: expected.metadata,
        allowed_scopes: expected.allowed_scopes,
        allowed_resources: expected.allowed_resources,
        secret_enc: null,
        registration: false,
      });
      // migrations/1700000010000_console_client.sql backfills the console client the same way.
      const console = consoleClient(organizationId);
      expect(await clients.findById(consoleClientId(organizationId))).toMatchObject({
        client_id: console.client_id, kind: 'console', name: console.name, metadata: console.metadata,
        allowed_scopes: console.allowed_scopes, allowed_resources: console.allowed_resources, secret_enc: null, registration: false,
      });
    }
    const { rows } = await db.query<{ kind: string; n: number }>('SELECT kind, count(*)::int AS n FROM clients GROUP BY kind ORDER BY kind');
    expect(rows).toEqual([{ kind: 'cli', n: 2 }, { kind: 'console', n: 2 }, { kind: 'oauth', n: 2 }]);
    // It is a web client now: redirect URIs match exactly as registered.
    expect((await clients.findById('native-app'))!.metadata).toEqual({ redirect_uris: ['http://127.0.0.1:7000/cb'] });

    // migrations/1700000016100_cli_device_grant.sql gave the clients the device code grant (the
    // metadata above is the code's); run again, as test/integration/adapter.test.ts replays
    // migrations, it changes nothing.
    expect(cliClient('org_a').metadata.grant_types).toContain('urn:ietf:params:oauth:grant-type:device_code');
    const before = await db.query('SELECT client_id, metadata, updated_at FROM clients ORDER BY client_id');
    // (node-pg-migrate applies in order only, so the later ones run again with it.)
    await db.query("DELETE FROM tessera_migrations WHERE name >= '1700000016100_cli_device_grant'");
    const again = MIGRATIONS.slice(MIGRATIONS.indexOf('1700000016100_cli_device_grant.sql')).map((file) => file.replace(/\.sql$/, ''));
    expect(await migrate(db, { schema })).toEqual(again);
    expect((await db.query('SELECT client_id, metadata, updated_at FROM clients ORDER BY client_id')).rows).toEqual(before.rows);

    // One built-in client per organization, whatever its id.
    await expect(clients.insert({ ...cliClient('org_a'), client_id: 'tessera-cli.other' })).rejects.toThrow();
    await expect(clients.insert({ ...consoleClient('org_a'), client_id: 'tessera-console.other' })).rejects.toThrow();
  }, 120_000);
});
