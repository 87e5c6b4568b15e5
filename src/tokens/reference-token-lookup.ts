import type { MaybePromise } from '../maybe-promise.js';
import type { Resolution, TokenFacts } from './reference-token-cache.js';

/**
 * Resolving a presented PAT or SAT to the token it is, or the reason it is not usable. The
 * order matters for cost: shape and checksum first (no storage touched for garbage), then the
 * SHA-256 through the tiered cache, then the lifecycle rules: revoked, expired, replaced secret
 * past its grace period, owner deactivated or disabled (docs/design.md, "Short by default, long by exception": ownership changes stop a
 * token at once). Implemented by reference-token-cache.ts.
 */
export interface ReferenceTokenLookup {
  /** Synchronous when the answer is cached in this process. */
  resolve(token: string): MaybePromise<Resolution>;
  /** A token's facts by id, for what was exchanged from it (no secret presented, so no reuse handling). */
  resolveById(id: string): MaybePromise<TokenFacts | undefined>;
}
export type { Resolution, ReferenceRejection, TokenFacts } from './reference-token-cache.js';
