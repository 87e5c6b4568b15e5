import type { Context, Next } from 'koa';

import type { RateLimiter } from '../http/rate-limit.js';
import { contentSecurityPolicy, messagePage } from './views.js';

/** Where a user types a device's code (the engine's code verification page, RFC 8628 §3.3). */
export const DEVICE_VERIFICATION_PATH = '/device';

/**
 * RFC 8628 §5.1: a user code is short enough to type, so guessing one must be slowed down. Every
 * code entered (and every confirmation) counts against the source address, through config
 * `rateLimits.deviceCode`, shared by every node; over it, the page answers 429 with Retry-After
 * until the window ends. A code lives minutes and has about 34 bits (src/oidc/sign-in-config.ts).
 */
export function createDeviceCodeLimit(deps: { limiter: Pick<RateLimiter, 'consume'> }) {
  return async function deviceCodeLimit(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || ctx.path !== DEVICE_VERIFICATION_PATH) return next();
    const wait = await deps.limiter.consume(ctx.ip);
    if (wait === undefined) return next();
    ctx.status = 429;
    ctx.set('retry-after', String(wait));
    ctx.set('content-security-policy', contentSecurityPolicy());
    ctx.type = 'html';
    ctx.body = messagePage('Too many attempts', `Too many codes were entered from here. Wait ${wait} seconds, then enter the code your device shows.`);
  };
}
