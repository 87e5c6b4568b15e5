import type { Context } from 'koa';
import type { z } from 'zod';

import type { Principal } from '../domain/principal.js';

/**
 * One Management API route, declared once: the router validates requests with these schemas
 * and the OpenAPI document is generated from the same declaration, so the two cannot drift.
 */
export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface RouteContext<B, Q> {
  principal: Principal;
  params: Record<string, string>;
  body: B;
  query: Q;
  /** The body's exact bytes, for routes declared with `rawBody` (a signature covers them). */
  rawBody?: Buffer;
  koa: Context;
  requestId: string;
  ip: string;
  userAgent: string | undefined;
}

export interface RouteResult {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Replies with a stream or custom type; the handler has set ctx.body itself. */
  raw?: boolean;
}

export interface Route<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  method: HttpMethod;
  /** Relative to /api/v1, OpenAPI style: `/users/{id}`. */
  path: string;
  /** Scope the caller must hold; `null` for routes that authenticate differently. */
  scope: string | null;
  /**
   * 'management': Bearer token for the Management API (default). 'none': the route does its own
   * authentication (rotation key, leak report) or none.
   */
  auth?: 'management' | 'none';
  summary: string;
  tag: string;
  body?: B;
  /** Bodies larger than this are 413 before they are read (default: JSON_BODY_LIMIT, 64 KiB). */
  bodyLimit?: number;
  /** The handler gets the body's bytes (`rawBody`) unparsed and validates them itself; `body` then only documents it. */
  rawBody?: boolean;
  query?: Q;
  /** Documented success response schema and status. */
  response?: z.ZodType;
  status?: number;
  /**
   * Status of a query that fails its schema: 422 by default; 400 for routes whose query is a
   * search (an unknown format or filter is a bad request, not unprocessable content).
   */
  queryErrorStatus?: 400 | 422;
  /** Other statuses the route documents (404, 409, …). */
  errors?: number[];
  handler(ctx: RouteContext<z.output<B>, z.output<Q>>): Promise<RouteResult>;
}

/** Declares a route with its handler's types inferred from the schemas. */
export function route<B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined>(definition: Route<B, Q>): Route {
  return definition as unknown as Route;
}
