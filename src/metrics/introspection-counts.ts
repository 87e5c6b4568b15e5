import type { IntrospectionMetrics } from './metrics.js';

/**
 * Introspections per organization and day, whatever the token (PAT, SAT, JWT or opaque access
 * token, refresh token), active or not: the activity chart's "Introspections per day"
 * (GET /token-activity). Both introspection paths (src/tokens/introspection-fast-path.ts and
 * src/tokens/token-endpoints.ts) report every answer they give through IntrospectionMetrics
 * once, with the caller's organization, so the count is taken there: a map increment in a
 * batching recorder (src/tokens/usage-recorder.ts), written per day by
 * src/storage/token-activity-repository.ts.
 */
export function withIntrospectionCounts(metrics: IntrospectionMetrics, counts: { record(organizationId: string): void }): IntrospectionMetrics {
  return {
    observe(kind, result, seconds, organizationId) {
      metrics.observe(kind, result, seconds, organizationId);
      if (organizationId) counts.record(organizationId);
    },
  };
}
