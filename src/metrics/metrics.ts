import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CounterConfiguration } from 'prom-client';

import type { AuditWriterMetrics } from '../audit/audit-writer.js';

/**
 * Prometheus metrics of one Tessera instance (served at /metrics). Every instance owns its
 * Registry: nothing here touches prom-client's module-level default registry, so two apps in
 * one process (tests, several tenants of a host) never share or double-register a series.
 *
 * Labels carry no organization id unless `organizationLabels` is on: with thousands of
 * organizations every labelled series would multiply by that number (cardinality is what
 * makes a Prometheus server fall over). An operator with a few organizations may turn it on.
 */

/** Kinds of token introspection can be asked about. */
export type IntrospectedKind = 'pat' | 'sat' | 'jwt' | 'opaque' | 'refresh' | 'unknown';
export type IntrospectionResult = 'active' | 'inactive' | 'error';

/**
 * The introspection hot path's view of metrics: one call per request, no allocation on the
 * common path (label children are bound once, up front).
 */
export interface IntrospectionMetrics {
  observe(kind: IntrospectedKind, result: IntrospectionResult, seconds: number, organizationId?: string): void;
}

/** Why a credential was revoked (the `reason` label; the audit event carries the same word). */
export type RevocationReason = 'api' | 'rfc7009' | 'leak_report' | 'idle' | 'ownership_change' | 'expiry' | 'reuse_detected' | 'rotation' | 'other';

export interface TesseraMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  introspection: IntrospectionMetrics;
  audit: AuditWriterMetrics;
  tokenIssued(grantType: string, kind: string, organizationId?: string | null): void;
  tokenRevoked(reason: RevocationReason, kind: string, organizationId?: string | null): void;
  login(outcome: 'success' | 'failure' | 'locked_out', organizationId?: string | null): void;
  /** Reports the audit queue depth at scrape time (events accepted, not yet written). */
  watchAuditQueue(pending: () => number): void;
  /**
   * Feeds the introspection cache hit/miss counter at scrape time from a cache's own counters
   * (reference tokens: answers from the local or shared tier are hits, database loads misses),
   * so the hot path pays nothing for it.
   */
  watchIntrospectionCache(counts: () => { hits: number; misses: number }): void;
  render(): Promise<string>;
}

export interface MetricsOptions {
  /** Adds an `organization` label to per-organization series. Off by default (cardinality). */
  organizationLabels: boolean;
  /** Process metrics (CPU, memory, event loop lag, GC); on in production, off in most tests. */
  processMetrics?: boolean;
  prefix?: string;
}

const INTROSPECTED_KINDS: readonly IntrospectedKind[] = ['pat', 'sat', 'jwt', 'opaque', 'refresh', 'unknown'];
const INTROSPECTION_RESULTS: readonly IntrospectionResult[] = ['active', 'inactive', 'error'];
/** Seconds. Introspection answers from memory in well under a millisecond and from PostgreSQL in a few. */
const INTROSPECTION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** A value that is not one of our known label values becomes `other`: a label never echoes request input. */
const bounded = (value: string, allowed: ReadonlySet<string>) => (allowed.has(value) ? value : 'other');
const GRANT_TYPES = new Set(['client_credentials', 'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange', 'reference_token', 'rotation']);
const TOKEN_KINDS = new Set(['access_token', 'refresh_token', 'id_token', 'pat', 'sat', 'reference_token', 'rotation_key', 'client_secret', 'grant']);

export function createMetrics(options: MetricsOptions): TesseraMetrics {
  const registry = new Registry();
  const prefix = options.prefix ?? 'tessera_';
  const org = options.organizationLabels;
  const withOrg = <T extends string>(labels: T[]) => (org ? [...labels, 'organization'] : labels);
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix });

  const counter = <T extends string>(config: Omit<CounterConfiguration<T>, 'registers'>) => new Counter<T>({ ...config, registers: [registry] });

  // Every token endpoint answer counts here: counted in a Map and handed to prom-client at scrape
  // time, so the hot path pays a Map lookup instead of prom-client's label hashing.
  const issuedCounts = new Map<string, { labels: string[]; pending: number }>();
  const issued = counter({
    name: `${prefix}tokens_issued_total`,
    help: 'Tokens issued, by grant type and token kind',
    labelNames: withOrg(['grant_type', 'kind']),
    collect() {
      for (const count of issuedCounts.values()) {
        if (count.pending === 0) continue;
        this.labels(...count.labels).inc(count.pending);
        count.pending = 0;
      }
    },
  });
  const revoked = counter({ name: `${prefix}tokens_revoked_total`, help: 'Credentials revoked, by reason and token kind', labelNames: withOrg(['reason', 'kind']) });
  const logins = counter({ name: `${prefix}logins_total`, help: 'Interactive logins, by outcome (success, failure, locked_out)', labelNames: withOrg(['outcome']) });
  const introspections = counter({ name: `${prefix}introspections_total`, help: 'Token introspections, by result and token kind', labelNames: withOrg(['result', 'kind']) });
  const introspectionSeconds = new Histogram({
    name: `${prefix}introspection_duration_seconds`,
    help: 'Time to answer a token introspection, by token kind',
    labelNames: ['kind'],
    buckets: INTROSPECTION_BUCKETS,
    registers: [registry],
  });
  let cacheSource: (() => { hits: number; misses: number }) | undefined;
  let cacheSeen = { hits: 0, misses: 0 };
  const introspectionCache = new Counter({
    name: `${prefix}introspection_cache_total`,
    help: 'Introspection cache lookups, by result (hit, miss)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      if (!cacheSource) return;
      const now = cacheSource();
      // The source counts since start; add what is new since the previous scrape.
      if (now.hits > cacheSeen.hits) this.inc({ result: 'hit' }, now.hits - cacheSeen.hits);
      if (now.misses > cacheSeen.misses) this.inc({ result: 'miss' }, now.misses - cacheSeen.misses);
      cacheSeen = now;
    },
  });
  const auditBatches = counter({ name: `${prefix}audit_batches_written_total`, help: 'Audit batches written to the database' });
  const auditRows = counter({ name: `${prefix}audit_rows_written_total`, help: 'Audit events written to the database' });
  const auditDropped = counter({ name: `${prefix}audit_rows_lost_total`, help: 'Audit events dropped because the queue was full (the database was unreachable too long)' });
  const auditFailed = counter({ name: `${prefix}audit_batches_failed_total`, help: 'Audit batch writes that failed and were retried later (events delayed)' });
  let pending: (() => number) | undefined;
  new Gauge({
    name: `${prefix}audit_queue_depth`,
    help: 'Audit events accepted but not yet written (delayed)',
    registers: [registry],
    collect() {
      this.set(pending?.() ?? 0);
    },
  });

  // Pre-bound children: the introspection path does a Map lookup and two increments, no label hashing.
  const bound = new Map<string, { count: Counter.Internal; seconds: Histogram.Internal<string> }>();
  for (const kind of INTROSPECTED_KINDS) {
    const seconds = introspectionSeconds.labels(kind);
    for (const result of INTROSPECTION_RESULTS) {
      if (!org) bound.set(`${kind}|${result}`, { count: introspections.labels(result, kind), seconds });
    }
  }

  const introspection: IntrospectionMetrics = {
    observe(kind, result, seconds, organizationId) {
      if (org) {
        introspections.labels(result, kind, organizationId ?? '').inc();
        introspectionSeconds.labels(kind).observe(seconds);
      } else {
        const child = bound.get(`${kind}|${result}`) ?? bound.get(`unknown|${result}`)!;
        child.count.inc();
        child.seconds.observe(seconds);
      }
    },
  };

  const orgLabel = (organizationId: string | null | undefined) => (org ? [organizationId ?? ''] : []);

  return {
    registry,
    contentType: registry.contentType,
    introspection,
    audit: {
      batchWritten(rows) {
        auditBatches.inc();
        auditRows.inc(rows);
      },
      rowsDropped(rows) {
        auditDropped.inc(rows);
      },
      batchFailed() {
        auditFailed.inc();
      },
    },
    tokenIssued(grantType, kind, organizationId) {
      const labels = [bounded(grantType, GRANT_TYPES), bounded(kind, TOKEN_KINDS), ...orgLabel(organizationId)];
      const key = labels.join('\n');
      const count = issuedCounts.get(key);
      if (count) count.pending += 1;
      else issuedCounts.set(key, { labels, pending: 1 });
    },
    tokenRevoked(reason, kind, organizationId) {
      revoked.labels(reason, bounded(kind, TOKEN_KINDS), ...orgLabel(organizationId)).inc();
    },
    login(outcome, organizationId) {
      logins.labels(outcome, ...orgLabel(organizationId)).inc();
    },
    watchAuditQueue(fn) {
      pending = fn;
    },
    watchIntrospectionCache(fn) {
      cacheSource = () => ({ ...fn() });
    },
    render: () => registry.metrics(),
  };
}
