import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Context } from 'koa';

/**
 * CSRF protection of Tessera's forms (OWASP CSRF Prevention Cheat Sheet, "signed double-submit
 * cookie"). A random value lives in an HttpOnly, SameSite=Lax cookie of this browser; each form
 * carries HMAC(key, cookie value, binding), where the binding names what the form belongs to (the
 * interaction uid of a sign-in, the person of a console session). A page of another site can
 * neither read the cookie nor compute the token, and a token issued for one binding does not fit
 * another. The keys derive from TESSERA_COOKIE_KEYS, so every node checks what any node issued,
 * and a key rotation keeps the previous keys valid. The sign-in pages and the console
 * (src/console/) each get their own instance: their own cookie, path and key derivation.
 */
export const CSRF_COOKIE = 'tessera.csrf';
const COOKIE_PATH = '/interaction';

export interface CsrfOptions {
  /** The cookie's name; over https a `__Host-` name needs path `/` (RFC 6265bis §4.1.3.2). */
  cookie?: (secure: boolean) => string;
  path?: (secure: boolean) => string;
  /** Separates this instance's keys from every other's (HKDF info). */
  purpose?: string;
}

export function createCsrf(cookieKeys: readonly string[], options: CsrfOptions = {}) {
  const purpose = options.purpose ?? 'tessera interaction csrf';
  const cookieName = options.cookie ?? (() => CSRF_COOKIE);
  const cookiePath = options.path ?? (() => COOKIE_PATH);
  const keys = cookieKeys.map((k) => Buffer.from(hkdfSync('sha256', k, Buffer.alloc(0), purpose, 32)));
  const mac = (key: Buffer, binding: string, uid: string) => createHmac('sha256', key).update(`${binding}\u0000${uid}`).digest();

  /** The browser's CSRF binding: read from its cookie, or set a fresh one. */
  function binding(ctx: Context): string {
    const existing = ctx.cookies.get(cookieName(ctx.secure));
    if (existing && /^[\w-]{43}$/.test(existing)) return existing;
    const fresh = randomBytes(32).toString('base64url');
    ctx.cookies.set(cookieName(ctx.secure), fresh, { httpOnly: true, sameSite: 'lax', path: cookiePath(ctx.secure), secure: ctx.secure, overwrite: true });
    return fresh;
  }

  return {
    /** The token for the forms bound to `uid`, setting the binding cookie if needed. */
    issue(ctx: Context, uid: string): string {
      return mac(keys[0]!, binding(ctx), uid).toString('base64url');
    },
    /** Whether `presented` was issued to this browser for `uid`. */
    verify(ctx: Context, uid: string, presented: string | undefined): boolean {
      const cookie = ctx.cookies.get(cookieName(ctx.secure));
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
