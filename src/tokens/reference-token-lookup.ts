import type { Clock } from '../clock.js';
import type { ReferenceTokenRepository, ReferenceTokenWithOwner } from '../storage/reference-token-repository.js';
import { hashToken, MAX_TOKEN_LENGTH, parseToken } from './format.js';
import type { ReferenceKind } from './format.js';

/**
 * Resolves a presented PAT or SAT to its live record, or undefined. The order matters for
 * cost: shape and checksum first (no storage touched for garbage), then one lookup by
 * SHA-256, then the lifecycle rules: revoked, expired, replaced secret past its grace period,
 * owner deactivated or disabled (principle 3: ownership changes stop a token at once).
 */
export interface ResolvedReferenceToken {
  row: ReferenceTokenWithOwner;
  kind: Exclude<ReferenceKind, 'rk'>;
  /** True when the presented secret is the previous one, inside its rotation grace period. */
  viaPreviousSecret: boolean;
}

export type ReferenceRejection = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'replaced' | 'owner_inactive';

export function createReferenceTokenLookup(deps: { tokens: ReferenceTokenRepository; clock: Clock }) {
  return {
    async resolve(token: string): Promise<{ ok: true; token: ResolvedReferenceToken } | { ok: false; reason: ReferenceRejection; row?: ReferenceTokenWithOwner }> {
      if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
      const kind = parseToken(token);
      if (kind !== 'pat' && kind !== 'sat') return { ok: false, reason: 'malformed' };
      const hash = hashToken(token);
      const row = await deps.tokens.findWithOwnerByHash(hash);
      if (!row || row.type !== kind) return { ok: false, reason: 'unknown' };
      if (row.revoked_at) return { ok: false, reason: 'revoked', row };
      const now = deps.clock.now();
      if (row.expires_at.getTime() <= now) return { ok: false, reason: 'expired', row };
      const viaPreviousSecret = !row.secret_hash.equals(hash);
      if (viaPreviousSecret && (row.previous_valid_until?.getTime() ?? 0) <= now) return { ok: false, reason: 'replaced', row };
      if (row.owner_status !== 'active') return { ok: false, reason: 'owner_inactive', row };
      return { ok: true, token: { row, kind, viaPreviousSecret } };
    },
  };
}
export type ReferenceTokenLookup = ReturnType<typeof createReferenceTokenLookup>;
