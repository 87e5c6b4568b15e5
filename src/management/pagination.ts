import { z } from 'zod';

import { ProblemError } from '../http/middleware.js';

/**
 * Cursor pagination (docs/management-api.md: `?limit=&cursor=`, `{"items", "next_cursor"}`). A cursor is the
 * sort key of the last row served plus the organization it belongs to, base64url-encoded; a
 * cursor of another organization, or one that does not decode, is a 400, never a silent restart.
 */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 50;

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: z.string().max(512).optional(),
};

export interface CursorPosition {
  /** Sort key: RFC 3339 time or another string. */
  k: string;
  id: string;
}

export function encodeCursor(organizationId: string, position: CursorPosition): string {
  return Buffer.from(JSON.stringify({ o: organizationId, ...position })).toString('base64url');
}

export function decodeCursor(organizationId: string, cursor: string | undefined): CursorPosition | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o?: unknown; k?: unknown; id?: unknown };
    if (value.o === organizationId && typeof value.k === 'string' && typeof value.id === 'string') return { k: value.k, id: value.id };
  } catch {
    // fall through
  }
  throw new ProblemError(400, 'Bad Request', 'cursor is malformed or belongs to another listing', { errors: [{ field: 'cursor', message: 'invalid cursor' }] });
}

/** Builds a page from `limit + 1` fetched rows: the extra row only says there is a next page. */
export function page<T>(organizationId: string, rows: T[], limit: number, keyOf: (row: T) => CursorPosition, present: (row: T) => unknown) {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(present),
    next_cursor: rows.length > limit && last ? encodeCursor(organizationId, keyOf(last)) : null,
  };
}

export const pageSchema = (item: z.ZodType) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });
