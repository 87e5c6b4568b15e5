import { randomBytes } from 'node:crypto';

/**
 * Object ids: a type prefix (so an id in a log says what it names) and 16 random bytes in
 * base64url. Random, not sequential, so ids reveal nothing about volume or order.
 */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(16).toString('base64url')}`;
}

/**
 * Ids Tessera and the engine make are short printable ASCII. A presented value outside that
 * (a NUL byte, megabytes of text) can match nothing, so it is answered without touching SQL,
 * which would reject some of them as invalid encoding.
 */
export function isPlausibleId(id: string): boolean {
  return /^[\x21-\x7e]{1,512}$/.test(id);
}
