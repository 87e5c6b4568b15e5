import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { projectRoot } from '../project-root.js';
import { migrate } from './migrate.js';
import { openPglite } from './pglite-database.js';

/**
 * The embedded database's starting point, made once at build time: an archive of a PGlite data
 * directory on which PostgreSQL's initdb has run and every migration is applied. A first start
 * unpacks it instead of running initdb in WebAssembly, which is most of a fresh start's time
 * (about 5 s of 7 on a 2-core machine; the unpacked copy opens in under 2). Migrations still run
 * at every start, so a template older than the sources only leaves the newer ones to apply.
 *
 * The archive is tied to the PGlite release that wrote it (its name carries the version): a
 * data directory must be opened by the PostgreSQL build that made it, so after an upgrade
 * without a rebuild the template is ignored and initdb runs as before.
 */
function pgliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === '@electric-sql/pglite' && parsed.version) return parsed.version;
    }
  }
  return 'unknown';
}

/** Where the build leaves the template (beside the compiled code) and where a start looks for it. */
export function embeddedTemplatePath(root: string = projectRoot()): string {
  return join(root, 'dist', `embedded-template-pglite-${pgliteVersion()}.tar.gz`);
}

/** The template's bytes, when the build made one for the installed PGlite. */
export function readEmbeddedTemplate(path: string = embeddedTemplatePath()): Blob | undefined {
  return existsSync(path) ? new Blob([readFileSync(path)]) : undefined;
}

/** Makes the template: a PGlite in memory, migrated, archived. */
export async function writeEmbeddedTemplate(path: string = embeddedTemplatePath()): Promise<void> {
  const { database, pglite } = await openPglite();
  try {
    await migrate(database);
    const archive = await pglite.dumpDataDir('gzip');
    const partial = `${path}.partial`;
    writeFileSync(partial, Buffer.from(await archive.arrayBuffer()));
    renameSync(partial, path);
  } finally {
    await database.close();
  }
}
