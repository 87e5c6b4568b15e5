/**
 * Password hashes (src/domain/passwords.ts): a password a person chooses gets scrypt's full cost;
 * one Tessera generates (143 random bits) a light one, since no cost matters against that many
 * bits; both verify, and neither verifies another password.
 */
import { describe, expect, it } from 'vitest';

import { hashPassword, newAccountPassword, verifyPassword } from '../../src/domain/passwords.js';

describe('password hashes', () => {
  it('hash a chosen password at full cost and a generated one lightly, both verifiable', async () => {
    const chosen = await newAccountPassword('correct horse battery staple');
    expect(chosen.generated).toBeUndefined();
    expect(chosen.hash).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$/);
    expect(await verifyPassword('correct horse battery staple', chosen.hash)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', chosen.hash)).toBe(false);

    const made = await newAccountPassword(undefined);
    expect(made.generated).toMatch(/^[\w-]{24}$/);
    expect(made.hash).toMatch(/^\$scrypt\$ln=12,r=8,p=1\$/);
    expect(await verifyPassword(made.generated!, made.hash)).toBe(true);
    expect(await verifyPassword(`${made.generated!}x`, made.hash)).toBe(false);
  });

  it('refuses what is not a Tessera scrypt hash', async () => {
    expect(await verifyPassword('x', null)).toBe(false);
    expect(await verifyPassword('x', '$argon2id$v=19$m=65536,t=3,p=4$abc$def')).toBe(false);
    expect(await verifyPassword('x', await hashPassword('y'))).toBe(false);
  });
});
