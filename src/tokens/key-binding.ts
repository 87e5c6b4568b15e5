import { timingSafeEqual } from 'node:crypto';

/**
 * Key-bound PATs and SATs (docs/tokens.md, "Key-bound PATs and SATs"): a token created with
 * `cnf.jkt` is bound to one DPoP key, named by its RFC 7638 thumbprint (base64url of a SHA-256,
 * 43 characters; RFC 9449 §6.1). It is worth nothing without proof of that key: the resource
 * server verifies the request's DPoP proof (RFC 9449 §7) and passes the proof key's thumbprint
 * to introspection as `dpop_jkt`. The one rule, `keyConfirmed`, is what introspection (both its
 * Koa path and its fast path, src/tokens/introspection.ts) and token exchange
 * (src/oidc/token-exchange.ts) ask.
 */
export const THUMBPRINT_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Whether `value` has the shape of a base64url SHA-256 JWK thumbprint (RFC 7638 §3, RFC 9449 §6.1). */
export const isThumbprint = (value: unknown): value is string => typeof value === 'string' && THUMBPRINT_PATTERN.test(value);

/**
 * Whether a token bound to `bound` (undefined or null: a bearer token) may be used by whoever
 * proved possession of the key `presented`. A bearer token needs no key, and a thumbprint sent
 * for one changes nothing; a bound token needs exactly its own key. Compared in constant time.
 */
export function keyConfirmed(bound: string | null | undefined, presented: string | undefined): boolean {
  if (bound === undefined || bound === null) return true;
  if (presented === undefined) return false;
  const a = Buffer.from(bound, 'utf8');
  const b = Buffer.from(presented, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
