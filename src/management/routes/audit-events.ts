import { Readable } from 'node:stream';

import { z } from 'zod';

import type { AuditRepository, AuditRow } from '../../storage/audit-repository.js';
import { ProblemError } from '../../http/middleware.js';
import { decodeCursor, encodeCursor, pageQuery } from '../pagination.js';
import { route } from '../route.js';
import type { Route } from '../route.js';

const EXPORT_PAGE = 1000;
const EARLIEST = Date.UTC(2000, 0, 1);

const eventSchema = z.object({
  seq: z.number(),
  time: z.string(),
  actor: z.object({ type: z.string(), id: z.string().nullable(), name: z.string().nullable() }),
  action: z.string(),
  target: z.object({ type: z.string().nullable(), id: z.string().nullable() }),
  outcome: z.enum(['success', 'failure']),
  request_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  hash: z.string(),
  prev_hash: z.string(),
});

export function presentEvent(row: AuditRow) {
  return {
    seq: Number(row.seq),
    time: row.occurred_at.toISOString(),
    actor: { type: row.actor_type, id: row.actor_id, name: row.actor_name },
    action: row.action,
    target: { type: row.target_type, id: row.target_id },
    outcome: row.outcome,
    request_id: row.request_id,
    ip: row.ip,
    user_agent: row.user_agent,
    details: row.details,
    hash: row.hash,
    prev_hash: row.prev_hash,
  };
}

const time = (field: string) =>
  z.iso.datetime({ offset: true, message: `${field} must be an RFC 3339 date-time` }).transform((value) => new Date(value));

/** Exact match only: an empty value or a wildcard would match, and so scan, every row. */
const exact = (field: string) =>
  z
    .string()
    .min(1, `${field} must not be empty`)
    .max(200)
    .refine((value) => !/[*%?]/.test(value), `${field} is matched exactly; wildcards are not supported`);

/** The longest range a query may span: the longest retention an organization may set. */
const MAX_RANGE_DAYS = 3650;

const query = z
  .object({
    ...pageQuery,
    from: time('from').optional(),
    to: time('to').optional(),
    actor: exact('actor').optional(),
    action: z.string().max(100).regex(/^[a-z_]+(\.[a-z_]+)+$/, 'a dotted action name such as token.issued').optional(),
    target: exact('target').optional(),
    outcome: z.enum(['success', 'failure']).optional(),
    format: z.enum(['json', 'jsonl'], { message: 'format must be json or jsonl' }).default('json'),
  })
  .strict();

/** GET /audit-events: filtered, cursor-paginated, or streamed as JSON Lines for export. */
export function auditEventRoutes(deps: { audit: AuditRepository; now: () => number }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/audit-events',
      scope: 'audit:read',
      tag: 'Audit',
      summary: 'Audit events of the organization, oldest first; `format=jsonl` streams every match as JSON Lines',
      query,
      queryErrorStatus: 400,
      response: z.object({ items: z.array(eventSchema), next_cursor: z.string().nullable() }),
      errors: [400],
      async handler({ principal, query: q, koa }) {
        const bad = (field: string, message: string) => new ProblemError(400, 'Bad Request', `${field}: ${message}`, { errors: [{ field, message }] });
        if (q.from && q.to && q.from.getTime() >= q.to.getTime()) throw bad('from', 'must be before to');
        for (const [field, value] of [['from', q.from], ['to', q.to]] as const) {
          if (value && (value.getTime() < EARLIEST || value.getTime() > deps.now() + 86400_000)) throw bad(field, 'is outside any range that can hold events');
        }
        if (q.from && q.to && q.to.getTime() - q.from.getTime() > MAX_RANGE_DAYS * 86400_000) throw bad('to', `the range may span at most ${MAX_RANGE_DAYS} days`);
        // `outcome` alone has no index to narrow it: a rare outcome would walk the whole trail
        // to fill one page. It must come with a time range or an indexed filter.
        if (q.outcome && !q.from && !q.to && q.actor === undefined && q.action === undefined && q.target === undefined) {
          throw bad('outcome', 'combine it with from/to, actor, action or target; on its own it scans the whole audit trail');
        }
        const position = decodeCursor(principal.organizationId, q.cursor);
        const afterSeq = position ? Number(position.k) : 0;
        if (!/^\d{1,15}$/.test(position?.k ?? '0') || !Number.isSafeInteger(afterSeq)) throw bad('cursor', 'cursor is malformed or belongs to another listing');
        const filter = { organizationId: principal.organizationId, from: q.from, to: q.to, actorId: q.actor, action: q.action, targetId: q.target, outcome: q.outcome };

        if (q.format === 'jsonl') {
          // Streams page by page: memory stays bounded however many events match.
          const audit = deps.audit;
          async function* lines() {
            let after = afterSeq;
            for (;;) {
              const rows = await audit.list({ ...filter, afterSeq: after, limit: EXPORT_PAGE });
              for (const row of rows) yield `${JSON.stringify(presentEvent(row))}\n`;
              if (rows.length < EXPORT_PAGE) return;
              after = Number(rows.at(-1)!.seq);
            }
          }
          koa.set('cache-control', 'no-store');
          koa.type = 'application/x-ndjson';
          koa.body = Readable.from(lines());
          return { raw: true };
        }

        const rows = await deps.audit.list({ ...filter, afterSeq, limit: q.limit + 1 });
        const items = rows.slice(0, q.limit);
        return {
          body: {
            items: items.map(presentEvent),
            next_cursor: rows.length > q.limit ? encodeCursor(principal.organizationId, { k: String(items.at(-1)!.seq), id: '' }) : null,
          },
        };
      },
    }),
  ];
}
