/** Metrics: one registry per app, bounded labels, organization labels only when asked for. */
import { register } from 'prom-client';
import { describe, expect, it } from 'vitest';

import { createMetrics } from '../../src/metrics/metrics.js';

const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

describe('metrics', () => {
  it('keeps each instance in its own registry and never touches the default one', async () => {
    const a = createMetrics({ organizationLabels: false, processMetrics: true });
    const b = createMetrics({ organizationLabels: false, processMetrics: true });
    a.tokenIssued('client_credentials', 'access_token', 'org_1');
    expect(value(await a.render(), 'tessera_tokens_issued_total{grant_type="client_credentials",kind="access_token"}')).toBe(1);
    expect(await b.render()).not.toContain('tessera_tokens_issued_total{');
    expect(await a.render()).toContain('tessera_process_cpu_user_seconds_total');
    expect(register.getMetricsAsArray()).toHaveLength(0);
  });

  it('carries no organization label by default, and one when the operator turns it on', async () => {
    const plain = createMetrics({ organizationLabels: false });
    const labelled = createMetrics({ organizationLabels: true });
    for (const m of [plain, labelled]) {
      m.tokenIssued('client_credentials', 'access_token', 'org_1');
      m.tokenRevoked('rfc7009', 'pat', 'org_1');
      m.login('failure', 'org_1');
      m.introspection.observe('jwt', 'active', 0.0004, 'org_1');
    }
    const text = await plain.render();
    expect(text).not.toContain('org_1');
    expect(value(text, 'tessera_introspections_total{result="active",kind="jwt"}')).toBe(1);
    expect(value(text, 'tessera_introspection_duration_seconds_bucket{le="0.0005",kind="jwt"}')).toBe(1);
    expect(value(text, 'tessera_logins_total{outcome="failure"}')).toBe(1);
    const withOrg = await labelled.render();
    expect(value(withOrg, 'tessera_tokens_issued_total{grant_type="client_credentials",kind="access_token",organization="org_1"}')).toBe(1);
    expect(value(withOrg, 'tessera_tokens_revoked_total{reason="rfc7009",kind="pat",organization="org_1"}')).toBe(1);
    expect(value(withOrg, 'tessera_introspections_total{result="active",kind="jwt",organization="org_1"}')).toBe(1);
  });

  it('never turns request input into a label value', async () => {
    const m = createMetrics({ organizationLabels: false });
    m.tokenIssued('urn:evil:<script>', 'whatever', null);
    m.introspection.observe('nonsense' as never, 'inactive', 0.001);
    const text = await m.render();
    expect(value(text, 'tessera_tokens_issued_total{grant_type="other",kind="other"}')).toBe(1);
    expect(value(text, 'tessera_introspections_total{result="inactive",kind="unknown"}')).toBe(1);
    expect(text).not.toContain('evil');
  });

  it('reads introspection cache hits and misses from the cache\'s own counters at scrape time', async () => {
    const m = createMetrics({ organizationLabels: false });
    const tiers = { local: 5, shared: 1, database: 2 };
    m.watchIntrospectionCache(() => ({ hits: tiers.local + tiers.shared, misses: tiers.database }));
    let text = await m.render();
    expect(value(text, 'tessera_introspection_cache_total{result="hit"}')).toBe(6);
    expect(value(text, 'tessera_introspection_cache_total{result="miss"}')).toBe(2);
    tiers.local += 10;
    text = await m.render();
    expect(value(text, 'tessera_introspection_cache_total{result="hit"}')).toBe(16);
    expect(value(text, 'tessera_introspection_cache_total{result="miss"}')).toBe(2);
  });

  it('counts audit batches, lost rows, failed batches and the queue depth', async () => {
    const m = createMetrics({ organizationLabels: false });
    let pending = 7;
    m.watchAuditQueue(() => pending);
    m.audit.batchWritten(500);
    m.audit.batchWritten(20);
    m.audit.rowsDropped(3);
    m.audit.batchFailed();
    let text = await m.render();
    expect(value(text, 'tessera_audit_batches_written_total')).toBe(2);
    expect(value(text, 'tessera_audit_rows_written_total')).toBe(520);
    expect(value(text, 'tessera_audit_rows_lost_total')).toBe(3);
    expect(value(text, 'tessera_audit_batches_failed_total')).toBe(1);
    expect(value(text, 'tessera_audit_queue_depth')).toBe(7);
    pending = 0;
    text = await m.render();
    expect(value(text, 'tessera_audit_queue_depth')).toBe(0);
  });
});
