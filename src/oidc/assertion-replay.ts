import { hash } from 'node:crypto';

import type { Clock } from '../clock.js';
import type { CacheStore } from '../storage/cache.js';
import { modelKey } from './model-keys.js';

/**
 * RFC 7523 §3 item 7: a client assertion's `jti` is accepted once, wherever it is presented.
 *
 * oidc-provider remembers assertions it accepted through its ReplayDetection model
 * (node_modules/oidc-provider/lib/models/replay_detection.js): id = sha256(iss ‖ jti) in
 * base64url, payload `{ iss, jti: id, kind, iat, exp }`, saved until the assertion's `exp` plus
 * the engine's clock tolerance. Tessera's adapter keeps that model in the cache store under
 * `modelKey('ReplayDetection', id)` (src/oidc/adapter.ts, CACHED_MODELS). Tessera's own
 * endpoints write the very same record there, with an atomic set-if-absent, so one store
 * remembers every assertion: one accepted at /token is refused at introspection or revocation,
 * and the other way round.
 */
export interface AssertionReplay {
  /** True the first time (iss, jti) is seen, false ever after until `exp` (epoch seconds) has passed. */
  unique(iss: string, jti: string, exp: number): Promise<boolean>;
}

/**
 * The engine's default `clockTolerance` (src/oidc/provider.ts sets none): it keeps its record
 * this much longer than the assertion's `exp`, and so does this one, so neither side forgets first.
 */
export const ENGINE_CLOCK_TOLERANCE_SECONDS = 15;

export function createAssertionReplay(deps: { cache: CacheStore; clock: Clock }): AssertionReplay {
  return {
    async unique(iss, jti, exp) {
      const id = hash('sha256', `${iss}${jti}`, 'base64url');
      const now = Math.floor(deps.clock.now() / 1000);
      const until = exp + ENGINE_CLOCK_TOLERANCE_SECONDS;
      const record = { iat: now, exp: until, jti: id, kind: 'ReplayDetection', iss };
      return deps.cache.setIfAbsent(modelKey('ReplayDetection', id), JSON.stringify(record), Math.max(1, until - now));
    },
  };
}
