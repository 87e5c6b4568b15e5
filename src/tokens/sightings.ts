import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';
import { BoundedCache } from './bounded-cache.js';

/**
 * Usage telemetry of PATs and SATs (docs/tokens.md): the last client addresses and user agents a
 * token was used from, kept 5 per token in PostgreSQL. A busy token must not cost a write per
 * use, so each token is written at most once a minute per node; what this node saw in between is
 * dropped (the next minute's use is written).
 */
export interface Sightings {
  record(tokenId: string, ip: string, userAgent: string | undefined): void;
}

const INTERVAL_MS = 60_000;
const MAX_TRACKED = 100_000;
const MAX_USER_AGENT = 256;

export function createSightings(deps: { write(tokenId: string, ip: string, userAgent: string, at: Date): Promise<void>; clock: Clock; logger: Logger }): Sightings {
  const written = new BoundedCache<true>(MAX_TRACKED, () => deps.clock.now());
  return {
    record(tokenId, ip, userAgent) {
      if (written.get(tokenId)) return;
      written.set(tokenId, true, INTERVAL_MS);
      deps.write(tokenId, ip.slice(0, 64), (userAgent ?? '').slice(0, MAX_USER_AGENT), new Date(deps.clock.now())).catch((error) => deps.logger.warn({ err: error }, 'token sighting not written'));
    },
  };
}
