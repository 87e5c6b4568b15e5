import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The directory holding Tessera's package.json, found by walking up from this module. `config/`
 * and `migrations/` sit beside it, whether the code runs as TypeScript from `src/` or compiled
 * from `dist/src/`, from a clone or from the container image: one rule instead of a relative
 * path that holds for one layout only.
 */
export function projectRoot(from: string = import.meta.dirname): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'tessera') return dir;
      } catch {
        // Not ours (or unreadable): keep walking up.
      }
    }
    if (dirname(dir) === dir) throw new Error(`cannot find Tessera's package.json above ${from}`);
  }
}
