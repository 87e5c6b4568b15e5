import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { projectRoot } from '../project-root.js';
import { migrate } from './migrate.js';
import { openPglite } from './pglite-database.js';

/**
 * The embedded database's starting point, made once at build time: a PGlite data directory on
 * which PostgreSQL's initdb has run and every migration is applied, closed cleanly. A first start
 * copies it into the data directory and opens it as a restart would, instead of running initdb
 * in WebAssembly (about 5 s of a first start on a 2-core machine) or unpacking an archive
 * through PGlite (inflating and writing 41 MB through its virtual filesystem took over 2 s; a
 * plain file copy takes a tenth of that). Migrations still run at every start, so a template
 * older than the sources only leaves the newer ones to apply.
 *
 * The template is tied to the PGlite release that wrote it (its name carries the version): a
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
  return join(root, 'dist', `embedded-template-pglite-${pgliteVersion()}`);
}

/** The template's directory, when the build made one for the installed PGlite. */
export function embeddedTemplate(path: string = embeddedTemplatePath()): string | undefined {
  return existsSync(join(path, 'PG_VERSION')) ? path : undefined;
}

/** Makes the template: a PGlite data directory, migrated, closed, then moved into place whole. */
export async function writeEmbeddedTemplate(path: string = embeddedTemplatePath()): Promise<void> {
  const partial = `${path}.partial`;
  rmSync(partial, { recursive: true, force: true });
  const { database } = await openPglite({ dataDir: partial });
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
  // Readable by everyone, like the rest of the build: it holds no secret (an empty, migrated
  // database), and the server may run as another user than the build (the Docker image). Each
  // copy a first start makes is owner-only.
  chmodTree(partial);
  rmSync(path, { recursive: true, force: true });
  renameSync(partial, path);
}

function chmodTree(path: string): void {
  const isDirectory = statSync(path).isDirectory();
  chmodSync(path, isDirectory ? 0o755 : 0o644);
  if (isDirectory) for (const name of readdirSync(path)) chmodTree(join(path, name));
}
