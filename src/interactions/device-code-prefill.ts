import type { Context, Next } from 'koa';

/** Longer than any code Tessera issues (src/oidc/sign-in-config.ts: `****-****`) with room for spaces a user adds. */
const MAX_USER_CODE_LENGTH = 64;
/** Where the code waits on the request's state for the code page. */
const PREFILLED = 'tesseraPrefilledUserCode';

/**
 * RFC 8628 §3.3.1 verification_uri_complete (`/device?user_code=…`). The engine answers it with a
 * page of its own that posts the code at once by an inline script (src/http/middleware.ts lets
 * the engine allow that script by its hash), and without script shows a bare "Continue" button
 * that never shows the code. Instead the code is taken off the request here, as engine
 * middleware before its code page (src/app/engine.ts), so the engine shows Tessera's code page
 * (src/oidc/sign-in-config.ts userCodeInputSource) under the pages' CSP, with the code already
 * in its field: the user checks it against the device and submits, no script needed.
 */
export function deviceCodePrefill(ctx: Context, next: Next) {
  if (!('user_code' in ctx.query)) return next();
  const { user_code: code, ...rest } = ctx.query;
  if (typeof code === 'string' && code.length > 0 && code.length <= MAX_USER_CODE_LENGTH) ctx.state[PREFILLED] = code;
  ctx.query = rest;
  return next();
}

/** The code verification_uri_complete carried, to show in the field of the code page (escaped there). */
export const prefilledUserCode = (ctx: Context): string | undefined => (ctx.state as Record<string, unknown> | undefined)?.[PREFILLED] as string | undefined;
