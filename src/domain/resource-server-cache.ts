import type { Clock } from '../clock.js';
import type { ResourceServer } from './types.js';

/**
 * Resource servers by identifier, as the token endpoint reads them on every client-credentials
 * grant: from a bounded in-process cache for `ttlMs`, so issuing a token costs no database
 * round-trip. A change to a resource server reaches the token endpoint within `ttlMs` (5 s by
 * default); `invalidate` drops an entry at once on this node.
 */
/** Finds a resource server by its identifier (RFC 8707 `resource`); the repository is one. */
export interface ResourceLookup {
  findByIdentifier(identifier: string): Promise<ResourceServer | undefined>;
}

export function createResourceServerCache(deps: { lookup: ResourceLookup; clock: Clock; ttlMs?: number; maxEntries?: number }) {
  const ttlMs = deps.ttlMs ?? 5000;
  const maxEntries = deps.maxEntries ?? 10_000;
  const entries = new Map<string, { value: Promise<ResourceServer | undefined>; until: number }>();
  return {
    findByIdentifier(identifier: string): Promise<ResourceServer | undefined> {
      const hit = entries.get(identifier);
      if (hit && hit.until > deps.clock.now()) return hit.value;
      const value = deps.lookup.findByIdentifier(identifier);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(identifier, { value, until: deps.clock.now() + ttlMs });
      // A failed lookup is not remembered.
      value.catch(() => entries.delete(identifier));
      return value;
    },
    invalidate(identifier?: string): void {
      if (identifier === undefined) entries.clear();
      else entries.delete(identifier);
    },
  };
}
