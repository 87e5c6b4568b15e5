import { hash, randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Reference token format (docs/design.md, "Token format"):
 *   tsr_<kind>_<secret>_<check>
 * <secret> is 43 base62 characters drawn uniformly (≈256 bits); <check> is the CRC-32 (IEEE
 * 802.3) of everything before the final `_`, in base62, most significant digit first, padded
 * with `0` to 6 characters. The prefix lets secret scanners find leaked tokens and lets Tessera
 * tell kinds apart without a lookup; the checksum rejects garbage before any storage access.
 */
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const SECRET_LENGTH = 43;
export const CHECK_LENGTH = 6;
export type ReferenceKind = 'pat' | 'sat' | 'rk';

const TOKEN_PATTERN = /^tsr_(pat|sat|rk)_([0-9A-Za-z]{43})_([0-9A-Za-z]{6})$/;
/** Longest string that can be a reference token; anything longer is rejected unread. */
export const MAX_TOKEN_LENGTH = 'tsr_pat_'.length + SECRET_LENGTH + 1 + CHECK_LENGTH;

export function toBase62(value: number, width: number): string {
  let out = '';
  let rest = value;
  do {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  } while (rest > 0);
  return out.padStart(width, '0');
}

export function checksum(body: string): string {
  return toBase62(crc32(body) >>> 0, CHECK_LENGTH);
}

export function randomSecret(): string {
  let out = '';
  // randomInt is uniform (rejection sampling), so every character carries log2(62) bits.
  for (let i = 0; i < SECRET_LENGTH; i += 1) out += BASE62[randomInt(62)];
  return out;
}

export function generateToken(kind: ReferenceKind): string {
  const body = `tsr_${kind}_${randomSecret()}`;
  return `${body}_${checksum(body)}`;
}

/** The kind of a well-formed token whose checksum matches, or undefined. Touches no storage. */
export function parseToken(token: string): ReferenceKind | undefined {
  if (token.length !== MAX_TOKEN_LENGTH && token.length !== MAX_TOKEN_LENGTH - 1) return undefined;
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return undefined;
  const body = token.slice(0, token.length - CHECK_LENGTH - 1);
  return checksum(body) === match[3] ? (match[1] as ReferenceKind) : undefined;
}

export const looksLikeReferenceToken = (token: string) => token.startsWith('tsr_');

/** What storage keeps: sha256(token). Lookups are by this digest, so no comparison leaks timing. */
export function hashToken(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

/** sha256(token) as base64url: the key of a token in caches and invalidation messages (the one-shot API is the cheapest SHA-256 Node has). */
export function tokenKey(token: string): string {
  return hash('sha256', token, 'base64url');
}
