import type { Context, Next } from 'koa';
import { z } from 'zod';

import { ProblemError } from '../http/middleware.js';
import type { AuditLog } from '../audit/audit-event.js';
import type { ManagementAuth } from './auth.js';
import type { Principal } from '../domain/principal.js';
import type { Route } from './route.js';

export const API_PREFIX = '/api/v1';
/** Management API bodies are small documents; anything larger is refused before parsing. */
export const JSON_BODY_LIMIT = 64 * 1024;

interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

/** The request body's bytes, refused past `limit` (by Content-Length, or while reading) before anything is parsed. */
async function readBody(ctx: Context, limit: number): Promise<Buffer> {
  const tooLarge = () => new ProblemError(413, 'Payload Too Large', `request bodies are limited to ${limit} bytes`);
  const length = Number(ctx.get('content-length') || 0);
  if (length > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  if (size > 0 && !ctx.is('application/json')) throw new ProblemError(415, 'Unsupported Media Type', 'request bodies must be application/json');
  return Buffer.concat(chunks);
}

/** Parses a JSON body; undefined when there is none. */
export function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ProblemError(400, 'Bad Request', 'the request body is not valid JSON');
  }
}

/** A 422 naming every field that failed, in RFC 9457 form with an `errors` extension member. */
export function validationProblem(error: z.ZodError, where: 'body' | 'query', status: 400 | 422 = 422): ProblemError {
  const errors = error.issues.map((issue) => {
    const field = issue.path.join('.');
    const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
    return { field: field || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : where), message };
  });
  const first = errors[0]!;
  return new ProblemError(status, status === 400 ? 'Bad Request' : 'Unprocessable Content', `${first.field}: ${first.message}`, { errors });
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query', status: 400 | 422 = 422): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationProblem(result.error, where, status);
  return result.data;
}

/**
 * The Management API router: matches a route, authenticates (Bearer, Management audience),
 * checks the route's scope, validates query and body, runs the handler and writes JSON.
 */
export function createManagementRouter(options: { routes: Route[]; auth: ManagementAuth; realm: string; audit?: AuditLog }) {
  /**
   * docs/design.md, "Every use leaves a trace": a refused operation leaves a trace too. Every 403 after authentication (a
   * missing route scope, or a refusal by the authority module) is one `authority.denied` event
   * naming the route and what was missing; nothing was changed.
   */
  function recordDenial(ctx: Context, principal: Principal, route: Route, params: Record<string, string>, error: ProblemError) {
    const missing = (error.extra.missing_authority as string[] | undefined) ?? (typeof error.extra.required_scope === 'string' ? [error.extra.required_scope] : []);
    options.audit?.record({
      organizationId: principal.organizationId,
      actor: { type: principal.actor.type, id: principal.actor.id, name: principal.actor.name },
      action: 'authority.denied',
      ...(params.id !== undefined ? { target: { type: route.tag, id: params.id } } : {}),
      outcome: 'failure',
      requestId: ctx.state.requestId as string,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
      details: { method: route.method, route: route.path, missing, reason: error.detail },
    });
  }

  const compiled = options.routes.map(compile);

  async function managementApi(ctx: Context, next: Next) {
    // `/api/v1` itself is the API's too: a problem+json 404, not the engine's text/plain one.
    if (ctx.path !== API_PREFIX && !ctx.path.startsWith(`${API_PREFIX}/`)) return next();
    const path = ctx.path.slice(API_PREFIX.length);
    const candidates = compiled.filter((c) => c.pattern.test(path));
    if (candidates.length === 0) throw new ProblemError(404, 'Not Found', 'no such resource');
    const match = candidates.find((c) => c.route.method === ctx.method);
    if (!match) {
      const allowed = [...new Set(candidates.map((c) => c.route.method))].join(', ');
      throw new ProblemError(405, 'Method Not Allowed', `allowed: ${allowed}`, {}, { allow: allowed });
    }
    const { route } = match;
    const values = match.pattern.exec(path)!.slice(1);
    const params: Record<string, string> = {};
    match.names.forEach((name, i) => {
      let value: string;
      try {
        value = decodeURIComponent(values[i]!);
      } catch {
        throw new ProblemError(404, 'Not Found', 'no such resource');
      }
      // No id contains control characters, and PostgreSQL text cannot hold NUL: such a value
      // names nothing, and must never reach a query (where it would be a 500).
      if (/[\u0000-\u001f\u007f]/.test(value)) throw new ProblemError(404, 'Not Found', 'no such resource');
      params[name] = value;
    });

    let principal: Principal | undefined;
    if ((route.auth ?? 'management') === 'management') principal = await options.auth.authenticate(ctx);
    try {
      await run(ctx, route, params, principal);
    } catch (error) {
      if (principal && error instanceof ProblemError && error.status === 403) recordDenial(ctx, principal, route, params, error);
      throw error;
    }
  }

  async function run(ctx: Context, route: Route, params: Record<string, string>, principal: Principal | undefined) {
    if (principal && route.scope) options.auth.requireScope(principal, route.scope);

    const query = route.query ? parseWith(route.query, Object.fromEntries(Object.entries(ctx.query).map(([k, v]) => [k, Array.isArray(v) ? v[v.length - 1] : v])), 'query', route.queryErrorStatus) : undefined;
    let body: unknown;
    let rawBody: Buffer | undefined;
    if (ctx.method !== 'GET' && ctx.method !== 'DELETE') {
      rawBody = await readBody(ctx, route.bodyLimit ?? JSON_BODY_LIMIT);
      // A signed body (route.rawBody) is verified over its exact bytes before it is parsed.
      const raw = route.rawBody ? undefined : parseJson(rawBody);
      // No body means an empty object; a JSON `null` is a body, and not an object.
      body = route.body && !route.rawBody ? parseWith(route.body, raw === undefined ? {} : raw, 'body') : undefined;
    }
    const result = await route.handler({
      principal: principal as Principal,
      params,
      body,
      query,
      ...(route.rawBody ? { rawBody } : {}),
      koa: ctx,
      requestId: ctx.state.requestId as string,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
    });
    if (result.raw) return;
    ctx.set('cache-control', 'no-store');
    if (result.headers) ctx.set(result.headers);
    ctx.status = result.status ?? (result.body === undefined ? 204 : 200);
    if (result.body !== undefined) ctx.body = result.body;
  }

  return managementApi;
}

export { z };
