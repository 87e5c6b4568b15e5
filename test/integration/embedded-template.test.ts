/**
 * The embedded database template (src/storage/embedded-template.ts): a first start unpacks it
 * instead of running initdb, ends up with every migration applied and every file owner-only,
 * and a data directory that already holds a database never takes it.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readEmbeddedTemplate, writeEmbeddedTemplate } from '../../src/storage/embedded-template.js';
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
    template = join(dir, 'template.tar.gz');
    await writeEmbeddedTemplate(template);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a fresh data directory a migrated database, owner-only, without initdb', async () => {
    const dataDir = join(dir, 'fresh');
    let asked = 0;
    const { database } = await openPglite({ dataDir, template: () => (asked += 1, readEmbeddedTemplate(template)) });
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

  it('is not asked for once the directory holds a database', async () => {
    const dataDir = join(dir, 'existing');
    const first = await openPglite({ dataDir, template: () => readEmbeddedTemplate(template) });
    await first.database.query("INSERT INTO tessera_migrations (name, run_on) VALUES ('marker', now())");
    await first.database.close();
    let asked = 0;
    const again = await openPglite({ dataDir, template: () => (asked += 1, readEmbeddedTemplate(template)) });
    try {
      expect(asked).toBe(0);
      const { rows } = await again.database.query<{ n: string }>("SELECT count(*) AS n FROM tessera_migrations WHERE name = 'marker'");
      expect(Number(rows[0]!.n)).toBe(1);
    } finally {
      await again.database.close();
    }
  }, 60_000);
});
