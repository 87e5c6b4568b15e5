import type { Context } from 'koa';
import type { ComponentChildren } from 'preact';

import type { ApiAnswer, RequestFacts } from './backend.js';
import type { ConsoleSession, ShownOnce } from './session-store.js';
import type { FieldErrors, Viewer } from './views/ui.js';

/** An error to show as a page, with its status. */
export class ConsolePageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** A signed-in page's tools: the person, their navigation, and the Management API as them. */
export interface PageContext {
  koa: Context;
  session: ConsoleSession;
  viewer: Viewer;
  facts: RequestFacts;
  /** Calls the Management API as the person; returns the answer whatever its status. */
  call(method: string, path: string, json?: unknown): Promise<ApiAnswer>;
  /** Like `call`, but an answer other than `ok` becomes the matching error page. */
  expect(method: string, path: string, json?: unknown, ok?: number[]): Promise<any>;
  render(status: number, page: ComponentChildren): void;
  form(): Promise<URLSearchParams>;
  redirect(to: string): void;
  /** Answers a POST with a redirect to a page that shows `shown` once (post/redirect/get). */
  showOnce(shown: ShownOnce): Promise<void>;
  /** Milliseconds since the epoch, on Tessera's clock. */
  now(): number;
}

export type PageHandler = (page: PageContext) => Promise<void>;

/** The field of each problem+json `errors` entry, at its first segment (`scopes.0` is `scopes`). */
export function fieldErrorsOf(answer: ApiAnswer): FieldErrors {
  const errors: FieldErrors = {};
  for (const e of (answer.body?.errors ?? []) as { field?: string; message?: string }[]) {
    const field = String(e.field ?? 'form').split('.')[0]!;
    errors[field] ??= String(e.message ?? 'invalid');
  }
  return errors;
}

/** The page an unexpected Management API answer turns into: its status and the API's own detail. */
export function pageErrorOf(answer: ApiAnswer): ConsolePageError {
  const detail = typeof answer.body?.detail === 'string' ? answer.body.detail : 'The request was refused.';
  if (answer.status === 403) return new ConsolePageError(403, 'Not allowed', `Your role does not allow this: ${detail}`);
  if (answer.status === 404) return new ConsolePageError(404, 'Not found', 'There is no such thing, or it belongs to another organization.');
  if (answer.status === 429) return new ConsolePageError(429, 'Too many requests', 'Wait a moment and try again.');
  if (answer.status >= 500) return new ConsolePageError(503, 'Temporarily unavailable', 'Tessera could not answer just now. Try again in a moment.');
  return new ConsolePageError(answer.status, 'Request refused', detail);
}

/** Rows a listing page shows at a time; the API's cursor leads to the next ones. */
export const PAGE_SIZE = 50;

/** One page of a Management API listing at the page's `?cursor=`, with the cursor of the next. */
export async function listPage(page: PageContext, path: string, params: Record<string, string> = {}): Promise<{ items: any[]; next: string | null; cursor: string }> {
  const cursor = typeof page.koa.query.cursor === 'string' ? page.koa.query.cursor.slice(0, 512) : '';
  const query = new URLSearchParams({ ...params, limit: String(PAGE_SIZE) });
  if (cursor) query.set('cursor', cursor);
  const body = await page.expect('GET', `${path}?${query}`);
  return { items: body.items, next: body.next_cursor ?? null, cursor };
}
