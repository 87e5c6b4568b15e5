/**
 * The embedded install's data directory (PGlite's files and WAL, the generated KEK,
 * bootstrap.json) is owner-only whatever the umask: the directory and every directory in it
 * 0700, every file 0600, from the first start on, for files PGlite writes while it runs, and
 * for an install whose files were left open by an earlier release.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServiceAccount } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

/** Every entry under `root` (itself included) whose mode lets its group or others in, as "mode path". */
function openToOthers(root: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    const stats = lstatSync(path);
    if ((stats.mode & 0o077) !== 0) found.push(`${(stats.mode & 0o777).toString(8)} ${path.slice(root.length) || '/'}`);
    if (stats.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(root);
  return found;
}

/** What an earlier release left behind under a umask of 0000: everything readable and writable by all. */
function loosen(root: string) {
  const walk = (path: string) => {
    const stats = lstatSync(path);
    chmodSync(path, stats.isDirectory() ? 0o777 : 0o666);
    if (stats.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(root);
}

const entries = (root: string) => {
  let count = 0;
  const walk = (path: string) => {
    count += 1;
    if (lstatSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(root);
  return count;
};

describe('the embedded data directory under a permissive umask', () => {
  let previousUmask: number;
  let dataDir: string;
  let first: TestServer | undefined;
  let second: TestServer | undefined;

  beforeAll(async () => {
    previousUmask = process.umask(0o000);
    // A directory an operator made by hand, open to everyone, with a file of their own in it.
    dataDir = join(mkdtempSync(join(tmpdir(), 'tessera-perm-')), 'data');
    mkdirSync(join(dataDir, 'notes'), { recursive: true });
    chmodSync(dataDir, 0o777);
    writeFileSync(join(dataDir, 'notes', 'readme.txt'), 'kept, but private\n');
    loosen(dataDir);
    // No TESSERA_KEK / TESSERA_COOKIE_KEYS: the install generates secrets.json here too.
    first = await startTestServer('pglite+memory', { overrides: EXAMPLE_SEED, env: { TESSERA_DATA_DIR: dataDir, TESSERA_KEK: '', TESSERA_COOKIE_KEYS: '' } });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
    process.umask(previousUmask);
    rmSync(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('keeps the directory 0700 and every file in it unreadable to others, while running and after a stop', { timeout: 120_000 }, async () => {
    const server = first!;
    expect(lstatSync(dataDir).mode & 0o777).toBe(0o700);
    for (const file of ['secrets.json', 'bootstrap.json', 'notes/readme.txt']) expect(lstatSync(join(dataDir, file)).mode & 0o777, file).toBe(0o600);
    // PostgreSQL writes while it runs: new relations, WAL, a checkpoint.
    await createServiceAccount(server, server.managementToken);
    await server.tessera.db.query('CREATE TABLE permission_probe AS SELECT g AS n, repeat(\'x\', 200) AS pad FROM generate_series(1, 20000) AS g');
    await server.tessera.db.query('CHECKPOINT');
    await server.tessera.audit.flush();
    expect(entries(join(dataDir, 'pglite'))).toBeGreaterThan(100);
    expect(openToOthers(dataDir)).toEqual([]);

    await server.running.stop();
    expect(openToOthers(dataDir)).toEqual([]);
  });

  it('tightens an install an earlier release left open, at the next start', { timeout: 120_000 }, async () => {
    loosen(dataDir);
    expect(openToOthers(dataDir).length).toBeGreaterThan(100);
    // Every start rewrites files (pg_internal.init among them): those are owner-only as well.
    second = await startTestServer('pglite+memory', { overrides: EXAMPLE_SEED, shareStorageWith: first! });
    expect(openToOthers(dataDir)).toEqual([]);
    await createServiceAccount(second, first!.managementToken);
    await second.tessera.db.query('CHECKPOINT');
    expect(openToOthers(dataDir)).toEqual([]);
  });
});
