/**
 * The embedded database template (src/storage/embedded-template.ts): a first start copies it
 * instead of running initdb, ends up with every migration applied and every file owner-only,
 * and a data directory that already holds a database never takes it.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { embeddedTemplate, writeEmbeddedTemplate } from '../../src/storage/embedded-template.js';
import { migrate } from '../../src/storage/migrate.js';
import { openPglite } from '../../src/storage/pglite-database.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? [path, ...filesUnder(path)] : [path];
  });
}

describe('the embedded database template', () => {
  let dir: string;
  let template: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-template-'));
    template = join(dir, 'template');
    await writeEmbeddedTemplate(template);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a fresh data directory a migrated database, owner-only, without initdb', async () => {
    const dataDir = join(dir, 'fresh');
    let asked = 0;
    const { database } = await openPglite({ dataDir, template: () => (asked += 1, embeddedTemplate(template)) });
    try {
      expect(asked).toBe(1);
      expect(await migrate(database)).toEqual([]);
      const { rows } = await database.query<{ n: string }>('SELECT count(*) AS n FROM organizations');
      expect(Number(rows[0]!.n)).toBe(0);
      const open = filesUnder(dataDir).filter((path) => (statSync(path).mode & 0o077) !== 0);
      expect(open).toEqual([]);
    } finally {
      await database.close();
    }
  }, 60_000);

  it('takes a copy cut short again from the start', async () => {
    const dataDir = join(dir, 'interrupted');
    // What a crash during the copy leaves: some of the files, never PG_VERSION (copied last).
    cpSync(join(template, 'global'), join(dataDir, 'global'), { recursive: true });
    writeFileSync(join(dataDir, 'global', 'pg_control'), 'torn');
    const { database } = await openPglite({ dataDir, template: () => embeddedTemplate(template) });
    try {
      expect(await migrate(database)).toEqual([]);
    } finally {
      await database.close();
    }
  }, 60_000);

  it('is not asked for once the directory holds a database', async () => {
    const dataDir = join(dir, 'existing');
    const first = await openPglite({ dataDir, template: () => embeddedTemplate(template) });
    await first.database.query("INSERT INTO tessera_migrations (name, run_on) VALUES ('marker', now())");
    await first.database.close();
    let asked = 0;
    const again = await openPglite({ dataDir, template: () => (asked += 1, embeddedTemplate(template)) });
    try {
      expect(asked).toBe(0);
      const { rows } = await again.database.query<{ n: string }>("SELECT count(*) AS n FROM tessera_migrations WHERE name = 'marker'");
      expect(Number(rows[0]!.n)).toBe(1);
    } finally {
      await again.database.close();
    }
  }, 60_000);
});
