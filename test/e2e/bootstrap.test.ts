/**
 * First start (README.md, "Two commands"): `tessera bootstrap --json` prints the documented
 * shape exactly once per database.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/http/logger.js';
import { startServer } from '../../src/main.js';
import { parseToken } from '../../src/tokens/format.js';
import { createPgDatabase } from '../../src/storage/pg-database.js';
import type { Database } from '../../src/storage/database.js';
import { newSchemaName, postgresRedisSkipReason, TEST_DATABASE_URL } from '../helpers/backends.js';
import { runCli, stderrLines, urlWithSchema } from '../helpers/cli.js';
import { api, freePort } from '../helpers/server.js';

describe.skipIf(postgresRedisSkipReason !== undefined)('`tessera bootstrap --json` on an empty PostgreSQL schema', () => {
  let admin: Database;
  let schema: string;
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    admin = createPgDatabase({ url: TEST_DATABASE_URL, max: 1 });
    schema = newSchemaName();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    dataDir = mkdtempSync(join(tmpdir(), 'tessera-bootstrap-'));
    const port = await freePort();
    env = {
      DATABASE_URL: urlWithSchema(TEST_DATABASE_URL, schema),
      TESSERA_KEK: randomBytes(32).toString('base64'),
      TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
      TESSERA_ISSUER: `http://127.0.0.1:${port}`,
      PORT: String(port),
      TESSERA_DATA_DIR: dataDir,
    };
  });
  afterAll(async () => {
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints exactly the documented shape once, after a plain migrate, and refuses a second time in one line', { timeout: 240_000 }, async () => {
    // An operator's natural order: migrate, then bootstrap. Migrating must not bootstrap by itself.
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(stderrLines(migrated.stderr)).toEqual([]);

    const first = await runCli(['bootstrap', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(stderrLines(first.stderr)).toEqual([]);
    const result = JSON.parse(first.stdout) as Record<string, unknown> & { admin: Record<string, unknown> };
    expect(Object.keys(result).sort()).toEqual(['admin', 'issuer', 'management_token', 'organization_id']);
    expect(Object.keys(result.admin).sort()).toEqual(['password', 'username']);
    expect(result.admin.username).toBe('admin');
    expect(typeof result.admin.password).toBe('string');
    expect((result.admin.password as string).length).toBeGreaterThanOrEqual(16);
    expect(result.issuer).toBe(env.TESSERA_ISSUER);
    expect(typeof result.organization_id).toBe('string');
    expect(result.management_token).toMatch(/^tsr_sat_/);
    expect(parseToken(result.management_token as string), 'a well-formed SAT with a valid checksum').toBe('sat');
    // The printed output is the delivery: nothing is written to the data directory.
    expect(() => statSync(join(dataDir, 'bootstrap.json'))).toThrow();

    const second = await runCli(['bootstrap', '--json'], env);
    expect(second.code).not.toBe(0);
    expect(second.stdout).toBe('');
    const lines = stderrLines(second.stderr);
    expect(lines, second.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^tessera: .*already/);

    // The printed management token works against a server on that database.
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const config = loadConfig({ NODE_ENV: 'test', ...env });
    const running = await startServer(config, createLogger({ level: 'silent', destination: sink }));
    try {
      expect(running.tessera.bootstrapped).toBeUndefined();
      const organization = await api(running, result.management_token as string, 'GET', '/organization');
      expect(organization.status).toBe(200);
      expect(organization.body).toMatchObject({ id: result.organization_id, name: 'default' });
    } finally {
      await running.stop();
    }
  });
});
