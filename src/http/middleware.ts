import { randomUUID } from 'node:crypto';

import type { Context, Next } from 'koa';

import { CacheUnavailableError } from '../storage/cache.js';
import { isUniqueViolation, StorageUnavailableError } from '../storage/database.js';
import type { Logger } from './logger.js';
import { scrubText } from './logger.js';
import { OAuthError, temporarilyUnavailable } from './oauth-error.js';

/** RFC 9457 problem details, the error format of every non-OAuth route (Management API, ops). */
export class ProblemError extends Error {
  override name = 'ProblemError';
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
  }
}

/**
 * A refusal by the authority module (src/domain/authority.ts): 403, naming every authority the
 * caller lacks in `missing_authority` so the answer says what would be needed.
 */
export function authorityRefused(denials: readonly { missing: string; detail: string }[]): ProblemError {
  const missing = [...new Set(denials.map((d) => d.missing))];
  return new ProblemError(403, 'Forbidden', denials[0]?.detail ?? 'not allowed', { missing_authority: missing });
}

const REQUEST_ID = /^[\w.-]{1,128}$/;

/** A sane X-Request-Id from the load balancer, or a new one. */
export const requestIdFor = (incoming: string | undefined) => (incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : randomUUID());

/** Takes a sane X-Request-Id from the load balancer or makes one, and echoes it back. */
export function requestId() {
  return async (ctx: Context, next: Next) => {
    ctx.state.requestId = requestIdFor(ctx.get('x-request-id'));
    ctx.set('x-request-id', ctx.state.requestId);
    await next();
  };
}

/** One access-log line per request, with no query string (it can carry codes and tokens). */
export function accessLog(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      logRequest(logger, { requestId: ctx.state.requestId as string | undefined, method: ctx.method, path: ctx.path, status: ctx.status, started });
    }
  };
}

/**
 * Content-Security-Policy of every page that is not the JSON API: no framing, no foreign
 * scripts. It is set before the engine runs because oidc-provider writes its own HTML (errors,
 * form_post, logout) straight to the response, and adds the hash of its one inline form_post
 * script to `script-src` itself. `form-action` is left open: form_post must post to the
 * client's redirect URI. Interaction pages may set a stricter policy of their own.
 */
export const HTML_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/** Baseline security headers (OWASP Secure Headers) of a path; HSTS only when served over TLS. */
export function baselineSecurityHeaders(options: { hsts: boolean }, path: string): [string, string][] {
  const headers: [string, string][] = [
    ['x-content-type-options', 'nosniff'],
    ['referrer-policy', 'no-referrer'],
    ['x-frame-options', 'DENY'],
  ];
  if (!path.startsWith('/api/')) headers.push(['content-security-policy', HTML_CSP]);
  if (options.hsts) headers.push(['strict-transport-security', 'max-age=31536000; includeSubDomains']);
  return headers;
}

export function securityHeaders(options: { hsts: boolean }) {
  return async (ctx: Context, next: Next) => {
    for (const [name, value] of baselineSecurityHeaders(options, ctx.path)) ctx.set(name, value);
    await next();
  };
}

/** An answer this slow is logged at info whatever its status: someone should look at it. */
export const SLOW_REQUEST_MS = 1000;

/**
 * One access-log line. Failures (4xx, 5xx) and slow answers are `info`: they are what an operator
 * reads the log for. Successful answers are `debug`: the metrics count every request by endpoint
 * and result, and the audit trail records every token event, while a line per introspection at
 * thousands per second costs as much CPU as answering it (docs/operations.md, "Operating notes", logs).
 * The line is built only when its level is on.
 */
export function logRequest(logger: Logger, line: { requestId: string | undefined; method: string; path: string; status: number; started: number }): void {
  const ms = performance.now() - line.started;
  const level = line.status >= 400 || ms >= SLOW_REQUEST_MS ? 'info' : 'debug';
  if (!logger.isLevelEnabled(level)) return;
  logger[level]({ requestId: line.requestId, method: line.method, path: scrubText(line.path), status: line.status, ms: Math.round(ms * 10) / 10 }, 'request');
}

const wantsProblem = (ctx: Context) => ctx.path.startsWith('/api/');

/**
 * Turns every error into the wire format of the route: OAuth JSON (RFC 6749 §5.2) on protocol
 * endpoints, problem+json (RFC 9457) elsewhere. A dependency that is down is a 503 with
 * `temporarily_unavailable`, never a guess; anything unexpected is a 500 that says nothing about
 * internals, with the detail in the log.
 */
export function errorHandler(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (caught) {
      let error = caught;
      if (error instanceof StorageUnavailableError || error instanceof CacheUnavailableError) {
        logger.warn({ requestId: ctx.state.requestId, err: error }, 'dependency unavailable');
        error = wantsProblem(ctx)
          ? new ProblemError(503, 'Service Unavailable', 'a dependency is temporarily unavailable, retry later', { error: 'temporarily_unavailable' }, { 'retry-after': '1' })
          : temporarilyUnavailable();
      }
      // Database errors are mapped to HTTP in one place (docs/design.md, "One rule, one place"). A unique violation that a
      // route did not anticipate is still a conflict, not a server error.
      if (isUniqueViolation(error) && wantsProblem(ctx)) {
        // Constraint names follow PostgreSQL's `<table>_<column>_key`; report the column as the field.
        const constraint = (error as { constraint?: string }).constraint ?? '';
        const field = /^[a-z]+s_([a-z_]+?)_key$/.exec(constraint)?.[1]?.replace(/^organization_id_/, '');
        error = new ProblemError(409, 'Conflict', field ? `${field}: already in use` : 'an object with the same unique value already exists', field ? { errors: [{ field, message: 'already in use' }] } : {});
      }
      if (error instanceof OAuthError) {
        if (error.detail) logger.info({ requestId: ctx.state.requestId, error: error.error, detail: scrubText(error.detail) }, 'oauth error');
        ctx.status = error.status;
        ctx.set(error.headers);
        ctx.set('cache-control', 'no-store');
        ctx.body = error.toJSON();
        return;
      }
      if (error instanceof ProblemError) {
        ctx.status = error.status;
        ctx.set(error.headers);
        ctx.type = 'application/problem+json';
        ctx.body = { type: 'about:blank', title: error.title, status: error.status, ...(error.detail ? { detail: error.detail } : {}), ...error.extra };
        return;
      }
      const status = (error as { status?: number; expose?: boolean }).expose ? (error as { status: number }).status : 500;
      if (status >= 500) logger.error({ requestId: ctx.state.requestId, err: error }, 'unhandled error');
      ctx.status = status;
      const message = status >= 500 ? 'internal server error' : (error as Error).message;
      if (wantsProblem(ctx)) {
        ctx.type = 'application/problem+json';
        ctx.body = { type: 'about:blank', title: status >= 500 ? 'Internal Server Error' : 'Bad Request', status, detail: message };
      } else {
        ctx.body = { error: status >= 500 ? 'server_error' : 'invalid_request', error_description: message };
      }
    }
  };
}
