import { z } from 'zod';

import type { TokenActivityRepository } from '../../storage/token-activity-repository.js';
import { route } from '../route.js';
import type { Route } from '../route.js';

const DAY = 86_400_000;
const WEEK = 7 * DAY;

/**
 * GET /token-activity: the organization's token activity as a few numbers for a chart — tokens
 * issued per day (the audit trail's `token.issued` events: OAuth grants, PATs and SATs), PAT and
 * SAT uses per day (introspections and Management API calls made with them), introspections per
 * day (every introspection answered by the organization's resource servers, whatever the token:
 * PAT, SAT, JWT or opaque access token), and live PATs and SATs by the week they expire.
 * Organization-wide counts: `audit:read`.
 */
export function tokenActivityRoutes(deps: { activity: TokenActivityRepository; now: () => number }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/token-activity',
      scope: 'audit:read',
      tag: 'Audit',
      summary: 'Tokens issued, PAT/SAT uses and introspections (every token kind) per day (UTC) for the last `days` days, today included, and live PATs/SATs expiring in each of the next `weeks` weeks',
      query: z
        .object({
          days: z.coerce.number().int().min(1).max(366).default(30),
          weeks: z.coerce.number().int().min(1).max(104).default(12),
        })
        .strict(),
      queryErrorStatus: 400,
      response: z.object({
        days: z.array(z.object({
          day: z.string(),
          issued: z.number(),
          uses: z.number().describe('PAT and SAT uses: introspections of them and Management API calls made with them'),
          introspections: z.number().describe('Introspections answered, whatever the token (PAT, SAT, JWT or opaque access token, refresh token), active or not'),
        })),
        weeks: z.array(z.object({ from: z.string(), to: z.string(), expiring: z.number() })),
      }),
      errors: [400],
      async handler({ principal, query }) {
        const now = deps.now();
        const today = Math.floor(now / DAY) * DAY;
        const days = Array.from({ length: query.days }, (_, i) => new Date(today - (query.days - 1 - i) * DAY).toISOString().slice(0, 10));
        const [issued, uses, introspections, expiring] = await Promise.all([
          deps.activity.eventsPerDay(principal.organizationId, 'token.issued', days[0]!),
          deps.activity.usesPerDay(principal.organizationId, days[0]!),
          deps.activity.introspectionsPerDay(principal.organizationId, days[0]!),
          deps.activity.expiringPerWeek(principal.organizationId, new Date(now), query.weeks),
        ]);
        return {
          body: {
            days: days.map((day) => ({ day, issued: issued.get(day) ?? 0, uses: uses.get(day) ?? 0, introspections: introspections.get(day) ?? 0 })),
            weeks: expiring.map((n, i) => ({ from: new Date(now + i * WEEK).toISOString(), to: new Date(now + (i + 1) * WEEK).toISOString(), expiring: n })),
          },
        };
      },
    }),
  ];
}
