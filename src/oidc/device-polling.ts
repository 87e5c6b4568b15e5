import { hash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { Context, Next } from 'koa';
import { errors } from 'oidc-provider';

import type { Clock } from '../clock.js';
import { DEVICE_CODE_GRANT } from '../domain/client-policy.js';
import type { Logger } from '../http/logger.js';
import type { CacheStore } from '../storage/cache.js';
import { clientClaim } from './client-authenticator.js';
import { markNotAFailure, TOKEN_PATH } from './token-rate-limit.js';

/** The engine's device authorization endpoint (src/http/allowed-methods.ts). */
export const DEVICE_AUTHORIZATION_PATH = '/device/auth';
/** RFC 8628 §3.2: seconds a device waits between polls, and what Tessera's answer at /device/auth says. */
export const DEVICE_POLL_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: what `slow_down` adds to the interval, for that request and every later one. */
export const SLOW_DOWN_STEP_SECONDS = 5;
/** A device code the engine issues is 43 characters; anything far longer is not one, and is left to the engine. */
const MAX_DEVICE_CODE_LENGTH = 256;

/** The device code as the engine keeps it, for the questions asked here. */
export interface DeviceCodeFacts {
  clientId?: string;
  /** Epoch seconds. */
  exp?: number;
  isExpired?: boolean;
  accountId?: string;
  error?: string;
}

/** What is kept per device code, under the digest of the code. */
interface PollState {
  /** Epoch ms of the last poll, answered or refused. */
  last: number;
  /** The interval now in force, in seconds. */
  interval: number;
  /** Epoch seconds at which the device code expires, and this state with it. */
  exp: number;
}

/** Cache-store key of a device code's polling state: the SHA-256 of the code, never the code (docs/design.md, "No secret at rest, none in a log"). */
export const pollStateKey = (deviceCode: string) => `device-poll:${hash('sha256', deviceCode, 'base64url')}`;

export interface DevicePollingDependencies {
  cache: CacheStore;
  clock: Clock;
  logger: Logger;
  /** The engine's device code, looked up as its grant handler does (expired ones included). */
  findCode(deviceCode: string): Promise<DeviceCodeFacts | undefined>;
}

/**
 * RFC 8628 §3.5 polling rules at /token for the device code grant, as engine middleware (run
 * before the engine's token route: src/app/engine.ts). oidc-provider answers a pending device
 * code with `authorization_pending` however often it is asked and never with `slow_down`; so:
 *
 * - a poll that the engine answers `authorization_pending` starts (or continues) the code's state
 *   in the cache store: when it came and the interval in force (5 s, the `interval` of the
 *   device authorization response, which `announceInterval` adds);
 * - a poll sooner than the interval after the previous one, for a code that is still pending
 *   and whose client it names, is answered 400 `slow_down` here and the interval grows by 5 s
 *   for every later poll; the time counts from this poll too;
 * - once the code is approved, denied or expired, the engine answers whatever the timing, so a
 *   device that polled too fast still gets its tokens (or its error) at the next poll; the state
 *   is dropped when the tokens are issued.
 *
 * The state is keyed by the code's digest (`pollStateKey`) and expires with the code. Only a code
 * the engine has answered as pending for its own client gets one, so a wrong code leaves nothing
 * behind and is answered by the engine (`invalid_grant`). Both `authorization_pending` and
 * `slow_down` are the protocol working, not failures: they are marked so the /token failure
 * limit does not count them (src/oidc/token-rate-limit.ts). Two nodes answering two polls of one
 * code at the same instant may both let them through: the rule is there for well-behaved devices,
 * and the failure and client limits still bound the rest. If the cache store fails, the poll is
 * left to the engine: the rule slows devices down, it must not stop a sign-in.
 */
export function createDevicePolling(deps: DevicePollingDependencies) {
  const { cache, clock, logger } = deps;

  async function load(key: string): Promise<PollState | undefined> {
    const value = await cache.get(key);
    return value ? (JSON.parse(value) as PollState) : undefined;
  }

  async function save(key: string, state: PollState): Promise<void> {
    const ttl = state.exp - Math.floor(clock.now() / 1000);
    if (ttl > 0) await cache.set(key, JSON.stringify(state), ttl);
    else await cache.del(key);
  }

  /** The device code presented, for a device code grant read from the form Tessera left on the request (src/http/form-body.ts). */
  function presented(req: IncomingMessage & { body?: unknown }): { deviceCode: string; params: URLSearchParams } | undefined {
    if (typeof req.body !== 'string' || !req.body.includes('device_code')) return undefined;
    const params = new URLSearchParams(req.body);
    const grantTypes = params.getAll('grant_type');
    const codes = params.getAll('device_code');
    if (grantTypes.length !== 1 || grantTypes[0] !== DEVICE_CODE_GRANT || codes.length !== 1) return undefined;
    const deviceCode = codes[0]!;
    return deviceCode && deviceCode.length <= MAX_DEVICE_CODE_LENGTH ? { deviceCode, params } : undefined;
  }

  /** Whether the engine would answer this code `authorization_pending` for the client the request names. */
  function stillPending(code: DeviceCodeFacts | undefined, clientId: string | undefined): code is DeviceCodeFacts & { exp: number } {
    return code !== undefined && typeof code.exp === 'number' && code.exp * 1000 > clock.now() && !code.isExpired && !code.accountId && !code.error && code.clientId === clientId;
  }

  function slowDown(ctx: Context, res: ServerResponse): void {
    const error = new errors.SlowDown();
    markNotAFailure(res);
    // RFC 6749 §5.2 with the engine's wording; §5.1: token endpoint answers are never cached.
    ctx.status = 400;
    ctx.set('cache-control', 'no-store');
    ctx.set('pragma', 'no-cache');
    ctx.body = { error: error.error, error_description: error.error_description };
  }

  return {
    /** Engine middleware for POST /token: refuses polls that come too soon, and keeps each pending code's timing. */
    async tokenMiddleware(ctx: Context, next: Next): Promise<void> {
      if (ctx.method !== 'POST' || ctx.path !== TOKEN_PATH) return next();
      const poll = presented(ctx.req);
      if (!poll) return next();
      const key = pollStateKey(poll.deviceCode);
      const now = clock.now();
      let state: PollState | undefined;
      try {
        state = await load(key);
        if (state && now - state.last < state.interval * 1000) {
          const { clientId } = clientClaim(ctx.get('authorization') || undefined, poll.params);
          if (stillPending(await deps.findCode(poll.deviceCode), clientId)) {
            await save(key, { ...state, last: now, interval: state.interval + SLOW_DOWN_STEP_SECONDS });
            slowDown(ctx, ctx.res);
            return;
          }
        }
      } catch (error) {
        logger.warn({ err: error }, 'device polling: the cache store did not answer; the engine judges this poll');
        return next();
      }
      await next();
      const answer = ctx.status === 400 && ctx.body && typeof ctx.body === 'object' ? (ctx.body as { error?: unknown }).error : undefined;
      try {
        if (answer === 'authorization_pending') {
          markNotAFailure(ctx.res);
          const exp = state?.exp ?? (await deps.findCode(poll.deviceCode))?.exp;
          if (typeof exp === 'number') await save(key, { last: now, interval: state?.interval ?? DEVICE_POLL_INTERVAL_SECONDS, exp });
        } else if (state && ctx.status === 200) {
          // The code is used up: no more polling to pace. Any other answer (a denied or expired
          // code, or a request naming another client) leaves the state to expire with the code,
          // so nobody but the device resets its interval.
          await cache.del(key);
        }
      } catch (error) {
        logger.warn({ err: error }, 'device polling: could not keep the poll’s time');
      }
    },

    /** Engine middleware for POST /device/auth: RFC 8628 §3.2 `interval` in the answer, which the engine leaves out. */
    async announceInterval(ctx: Context, next: Next): Promise<void> {
      await next();
      if (ctx.method !== 'POST' || ctx.path !== DEVICE_AUTHORIZATION_PATH || ctx.status !== 200) return;
      const body = ctx.body as Record<string, unknown> | undefined;
      if (body && typeof body === 'object' && typeof body.device_code === 'string') body.interval = DEVICE_POLL_INTERVAL_SECONDS;
    },
  };
}
export type DevicePolling = ReturnType<typeof createDevicePolling>;
