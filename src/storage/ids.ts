import { randomBytes } from 'node:crypto';

/**
 * Object ids: a type prefix (so an id in a log says what it names) and 16 random bytes in
 * base64url. Random, not sequential, so ids reveal nothing about volume or order.
 */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}
