import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Context } from 'koa';

/**
 * CSRF protection of the sign-in forms (OWASP CSRF Prevention Cheat Sheet, "signed double-submit
 * cookie"). A random value lives in an HttpOnly, SameSite=Lax cookie of this browser; each form
 * carries HMAC(key, cookie value, interaction uid). A page of another site can neither read the
 * cookie nor compute the token, and a token from one sign-in does not fit another. The keys
 * derive from TESSERA_COOKIE_KEYS, so every node checks what any node issued, and a key
 * rotation keeps the previous keys valid.
 */
export const CSRF_COOKIE = 'tessera.csrf';
const COOKIE_PATH = '/interaction';

export function createCsrf(cookieKeys: readonly string[]) {
  const keys = cookieKeys.map((k) => Buffer.from(hkdfSync('sha256', k, Buffer.alloc(0), 'tessera interaction csrf', 32)));
  const mac = (key: Buffer, binding: string, uid: string) => createHmac('sha256', key).update(`${binding}\u0000${uid}`).digest();

  /** The browser's CSRF binding: read from its cookie, or set a fresh one. */
  function binding(ctx: Context): string {
    const existing = ctx.cookies.get(CSRF_COOKIE);
    if (existing && /^[\w-]{43}$/.test(existing)) return existing;
    const fresh = randomBytes(32).toString('base64url');
    ctx.cookies.set(CSRF_COOKIE, fresh, { httpOnly: true, sameSite: 'lax', path: COOKIE_PATH, secure: ctx.secure, overwrite: true });
    return fresh;
  }

  return {
    /** The token for the forms of interaction `uid`, setting the binding cookie if needed. */
    issue(ctx: Context, uid: string): string {
      return mac(keys[0]!, binding(ctx), uid).toString('base64url');
    },
    /** Whether `presented` was issued to this browser for interaction `uid`. */
    verify(ctx: Context, uid: string, presented: string | undefined): boolean {
      const cookie = ctx.cookies.get(CSRF_COOKIE);
      if (!cookie || !presented || presented.length > 128) return false;
      const given = Buffer.from(presented, 'base64url');
      return keys.some((key) => {
        const expected = mac(key, cookie, uid);
        return given.length === expected.length && timingSafeEqual(given, expected);
      });
    },
  };
}
export type Csrf = ReturnType<typeof createCsrf>;
