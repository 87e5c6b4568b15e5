/**
 * Where a token made by RFC 8693 token exchange came from, carried in the token itself (the
 * `tsr_from` claim of a JWT, the same member of an opaque token's stored claims), so that every
 * node can tell, without any state of its own, whether the credentials it was exchanged from
 * still stand. A token exchanged from another exchanged token carries that token's lineage too:
 * revoking any ancestor ends every descendant (docs/tokens.md, "Token exchange").
 *
 * Each entry names one credential and how to ask about it:
 * - a PAT or SAT: its id and the generation of the secret that was presented (a rotation makes
 *   the next one; the previous lives on through its grace period only);
 * - an OAuth access token: its revocation id (a JWT's `jti`; for an opaque token a digest of it,
 *   put on the revocation list when the token is revoked), the client it was issued to, the user
 *   it acts for, and the grant it was issued under, if any.
 */
import { createHash } from 'node:crypto';

export const LINEAGE_CLAIM = 'tsr_from';

export type LineageEntry =
  | { tok: string; gen: number }
  | { jti: string; client_id: string; sub?: string; grant?: string };

/** The lineage a token carries: undefined for a token that was not exchanged, null for a malformed one (the token is then inactive). */
export function lineageOf(claims: Record<string, unknown> | undefined): LineageEntry[] | null | undefined {
  const value = claims?.[LINEAGE_CLAIM];
  if (value === undefined) return undefined;
  return Array.isArray(value) && value.length > 0 && value.every(isEntry) ? (value as LineageEntry[]) : null;
}

function isEntry(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const entry = e as Record<string, unknown>;
  if (typeof entry.tok === 'string') return typeof entry.gen === 'number';
  return typeof entry.jti === 'string' && typeof entry.client_id === 'string';
}

/**
 * The revocation id of an opaque access token in lineages and on the revocation list: a digest
 * of the token under a label of its own, so it is neither the token nor the key it is stored
 * under (docs/security.md, "No token at rest").
 */
export function opaqueLineageId(token: string): string {
  return `o.${createHash('sha256').update(`tessera exchange lineage\0${token}`).digest('base64url')}`;
}
