import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/**
 * Password hashing with scrypt (RFC 7914), built into Node, so no native module to build.
 * Parameters follow OWASP's Password Storage Cheat Sheet minimum for scrypt: N=2^17, r=8, p=1
 * (128 MiB of memory and ~100–200 ms per hash on a 2-core machine): expensive enough to make
 * offline guessing slow, cheap enough for a login. Hashes carry their parameters, so raising
 * them later keeps old hashes verifiable (PHC string format).
 */
export const SCRYPT_PARAMS = { N: 2 ** 17, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

export async function hashPassword(password: string, params: { N: number; r: number; p: number } = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await scryptAsync(password.normalize('NFKC'), salt, KEY_LENGTH, { ...params, maxmem: 256 * params.N * params.r });
  return `$scrypt$ln=${Math.log2(params.N)},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const match = stored ? /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/.exec(stored) : null;
  if (!match) return false;
  const N = 2 ** Number(match[1]);
  const r = Number(match[2]);
  const p = Number(match[3]);
  const expected = Buffer.from(match[5]!, 'base64url');
  const key = await scryptAsync(password.normalize('NFKC'), Buffer.from(match[4]!, 'base64url'), expected.length, { N, r, p, maxmem: 256 * N * r });
  return timingSafeEqual(key, expected);
}

/** A random password for generated accounts (bootstrap admin): 24 characters, ~143 bits. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * scrypt's cost for a password Tessera generated. The work factor exists to slow the guessing of
 * passwords people choose, which have few bits; a generated one has 143 random bits, beyond any
 * guessing whatever the cost, as the SHA-256 of a token is (docs/security.md). So it is hashed in
 * milliseconds instead of a few hundred (on a first start, the bootstrap admin's hash was the
 * largest single wait). A password the person sets later is hashed with SCRYPT_PARAMS.
 */
const GENERATED_PASSWORD_PARAMS = { N: 2 ** 12, r: 8, p: 1 } as const;

/**
 * The stored hash of a new account's password: the one chosen, or else a generated one, which is
 * returned so it can be shown once.
 */
export async function newAccountPassword(chosen: string | undefined): Promise<{ hash: string; generated?: string }> {
  if (chosen !== undefined) return { hash: await hashPassword(chosen) };
  const generated = generatePassword();
  return { hash: await hashPassword(generated, GENERATED_PASSWORD_PARAMS), generated };
}
