import { cpSync, existsSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { PGlite, types } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

import { GROUP_AND_OTHER, restrictToOwner } from './data-directory.js';
import type { Database, Queryable, QueryResult } from './database.js';

/** The parts of Emscripten's NODEFS (the bridge from PostgreSQL's file calls to Node's fs) that set a mode on disk. */
interface NodefsModeOperations {
  node_ops: {
    mknod(parent: unknown, name: string, mode: number, dev: number): unknown;
    setattr(node: unknown, attr: { mode?: number | null }): void;
  };
  stream_ops: { setattr(stream: unknown, attr: { mode?: number | null }): void };
}

/**
 * PGlite's Node filesystem, with every mode it sets on disk stripped of group and other bits.
 *
 * Restricting the directory once is not enough, and neither is the process umask: PostgreSQL
 * inside PGlite keeps creating files while it runs (relation files, WAL segments, and
 * `pg_internal.init` at every start), and Emscripten applies its own umask (0022) and then sets
 * the result with an explicit chmod, which the process umask does not filter. Measured with a
 * process umask of 0077, a fresh cluster still had 0666 files and every start rewrote
 * `pg_internal.init` as 0644. Masking the modes where NODEFS hands them to Node keeps every
 * file owner-only from the moment it exists (test/integration/embedded-data-permissions.test.ts
 * checks the whole tree after a run with a umask of 0000).
 */
type EmscriptenOptions = Parameters<NodeFS['init']>[1];

class OwnerOnlyNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: EmscriptenOptions) {
    const result = await super.init(pg, opts);
    // Runs before NodeFS's own step, which mounts the directory.
    result.emscriptenOpts.preRun = [(mod) => maskModes(mod.NODEFS as unknown as NodefsModeOperations), ...(result.emscriptenOpts.preRun ?? [])];
    return result;
  }
}

function maskModes(nodefs: NodefsModeOperations): void {
  const { node_ops: nodeOps, stream_ops: streamOps } = nodefs;
  const mask = <A extends { mode?: number | null }>(attr: A): A => (attr.mode == null ? attr : { ...attr, mode: attr.mode & ~GROUP_AND_OTHER });
  const { mknod, setattr } = nodeOps;
  const streamSetattr = streamOps.setattr;
  nodeOps.mknod = (parent, name, mode, dev) => mknod.call(nodeOps, parent, name, mode & ~GROUP_AND_OTHER, dev);
  nodeOps.setattr = (node, attr) => setattr.call(nodeOps, node, mask(attr));
  streamOps.setattr = (stream, attr) => streamSetattr.call(streamOps, stream, mask(attr));
}

/**
 * The embedded default: PostgreSQL compiled to WASM, keeping its files under the data
 * directory (in memory without one: tests). One process owns it, so advisory locks always
 * succeed and transactions are serialized by PGlite itself.
 *
 * The directory and every file in it are owner-only (src/storage/data-directory.ts): an
 * install from before this rule is tightened here, and whatever PGlite writes from now on is
 * created owner-only (OwnerOnlyNodeFS above).
 */
export async function createPgliteDatabase(options: PgliteOptions = {}): Promise<Database> {
  return (await openPglite(options)).database;
}

export interface PgliteOptions {
  dataDir?: string;
  /**
   * A data directory to start from when `dataDir` holds no database yet (the build's template,
   * src/storage/embedded-template.ts); ignored once one exists.
   */
  template?: () => string | undefined;
}

/**
 * Copies a template data directory in. The copy is made in a staging directory beside the data
 * directory (on the same filesystem, also when the data directory is a link to a volume), made
 * owner-only, then moved in entry by entry with `PG_VERSION` last: that file is what marks a
 * directory as holding a database, so a copy cut short (a crash, a full disk) is made again by
 * the next start instead of being opened half-made.
 */
function copyTemplate(template: string, dataDir: string): void {
  const target = realpathSync(dataDir);
  const staging = join(dirname(target), `.${basename(target)}.template`);
  rmSync(staging, { recursive: true, force: true });
  restrictToOwner(staging);
  try {
    cpSync(template, staging, { recursive: true });
  } catch {
    // The template went away while being copied (a rebuild replaces it whole): start without
    // it, as an install without a template does (PGlite runs initdb).
    rmSync(staging, { recursive: true, force: true });
    return;
  }
  restrictToOwner(staging);
  const entries = readdirSync(staging).filter((name) => name !== 'PG_VERSION');
  for (const name of [...entries, 'PG_VERSION']) {
    rmSync(join(target, name), { recursive: true, force: true });
    renameSync(join(staging, name), join(target, name));
  }
  rmSync(staging, { recursive: true, force: true });
}

/** The Database, and PGlite itself for what only PGlite does (archiving its data directory). */
export async function openPglite(options: PgliteOptions = {}): Promise<{ database: Database; pglite: PGlite }> {
  if (options.dataDir) restrictToOwner(options.dataDir);
  const fresh = options.dataDir !== undefined && !existsSync(join(options.dataDir, 'PG_VERSION'));
  const template = fresh ? options.template?.() : undefined;
  if (template && options.dataDir) copyTemplate(template, options.dataDir);
  const db = new PGlite({
    ...(options.dataDir ? { fs: new OwnerOnlyNodeFS(options.dataDir) } : {}),
    // bytea as a Buffer, as `pg` returns it: callers compare hashes with Buffer#equals.
    parsers: { [types.BYTEA]: (value: string) => Buffer.from(value.slice(2), 'hex') },
  });
  await db.waitReady;
  // The masking step runs before the directory is mounted, so nothing should be left to do; a
  // second pass costs a few milliseconds at start and holds even if a PGlite upgrade added a
  // way of writing files that bypasses it.
  if (options.dataDir) restrictToOwner(options.dataDir);

  const run = async <R>(target: Pick<PGlite, 'query'>, text: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const result = await target.query<R>(text, params as unknown[]);
    // PGlite reports affectedRows = 0 for a SELECT; pg's rowCount counts the rows returned.
    return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
  };

  const database: Database = {
    kind: 'pglite',
    query: (text, params) => run(db, text, params),
    transaction(fn) {
      return db.transaction((tx) => fn({ query: (text, params) => run(tx, text, params) } satisfies Queryable));
    },
    async withAdvisoryLock(_key, fn) {
      return fn();
    },
    withConnection(fn) {
      // The migration runner sends whole multi-statement files without parameters; PGlite's
      // extended-protocol query() refuses those, so they go through the simple protocol.
      return fn({
        async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
          if (params && params.length > 0) return run<R>(db, text, params);
          const results = await db.exec(text);
          const last = results.at(-1);
          return { rows: (last?.rows ?? []) as R[], rowCount: last?.affectedRows ?? 0 };
        },
      });
    },
    async close() {
      await db.close();
    },
  };
  return { database, pglite: db };
}
