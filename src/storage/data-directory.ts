import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';

/**
 * The data directory of an embedded install holds password hashes, sealed client secrets, the
 * audit trail (in PGlite's files and WAL), the generated key-encryption key and bootstrap
 * credentials: only the user Tessera runs as may read it, list it or change it.
 */
export const OWNER_ONLY_DIRECTORY = 0o700;
export const OWNER_ONLY_FILE = 0o600;
/** Group and other permission bits. */
export const GROUP_AND_OTHER = 0o077;

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

function restrict(path: string, stats: Stats): void {
  const wanted = stats.isDirectory() ? OWNER_ONLY_DIRECTORY : OWNER_ONLY_FILE;
  if ((stats.mode & 0o777) === wanted) return;
  try {
    chmodSync(path, wanted);
  } catch (error) {
    // A file the running database removed in the meantime needs nothing.
    if (!isMissing(error)) throw error;
  }
}

function restrictBelow(directory: string): void {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for (const name of names) {
    const path = join(directory, name);
    let stats: Stats;
    try {
      stats = lstatSync(path);
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    // chmod follows a symbolic link, which could lead out of the tree: links are left alone.
    if (stats.isSymbolicLink() || !(stats.isDirectory() || stats.isFile())) continue;
    restrict(path, stats);
    if (stats.isDirectory()) restrictBelow(path);
  }
}

/**
 * Creates `directory` when it is missing and makes it and everything under it owner-only:
 * directories 0700, files 0600. The modes are set with chmod, because mkdir's and open's modes
 * pass through the process umask (0022 leaves files group- and world-readable, 0000 writable)
 * and apply only to what they create, not to an install made before this rule. The directory
 * itself may be a symbolic link (a volume mounted elsewhere): its target is restricted.
 */
export function restrictToOwner(directory: string): void {
  mkdirSync(directory, { recursive: true, mode: OWNER_ONLY_DIRECTORY });
  restrict(directory, statSync(directory));
  restrictBelow(directory);
}
