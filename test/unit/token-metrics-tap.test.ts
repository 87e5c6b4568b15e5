/** The PAT/SAT lifecycle's audit events, counted as token metrics on their way to the trail. */
import { describe, expect, it } from 'vitest';

import type { AuditEvent } from '../../src/audit/audit-event.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { revocationReason, withTokenMetrics } from '../../src/metrics/token-metrics-tap.js';

describe('token metrics from the token service\'s audit events', () => {
  it('counts issues, rotations and revocations by reason, and passes every event on', async () => {
    const metrics = createMetrics({ organizationLabels: false });
    const written: AuditEvent[] = [];
    const audit = withTokenMetrics({ record: (e) => written.push(e), flush: async () => {}, close: async () => {} }, metrics);
    const base = { organizationId: 'org_1', actor: { type: 'system' as const, id: null }, outcome: 'success' as const };
    audit.record({ ...base, action: 'token.issued', details: { type: 'sat' } });
    audit.record({ ...base, action: 'token.rotated', details: {} });
    for (const reason of ['revoked_by_api', 'leaked', 'idle', 'rfc7009', 'rotation_key_reused', 'owner_deactivated']) audit.record({ ...base, action: 'token.revoked', details: { reason } });
    audit.record({ ...base, action: 'organization.updated' });
    expect(written).toHaveLength(9);
    const text = await metrics.render();
    expect(text).toContain('tessera_tokens_issued_total{grant_type="reference_token",kind="sat"} 1');
    expect(text).toContain('tessera_tokens_issued_total{grant_type="rotation",kind="reference_token"} 1');
    for (const reason of ['api', 'leak_report', 'idle', 'rfc7009', 'reuse_detected', 'ownership_change']) {
      expect(text).toContain(`tessera_tokens_revoked_total{reason="${reason}",kind="reference_token"} 1`);
    }
  });

  it('maps unknown reasons to other', () => {
    expect(revocationReason('expired')).toBe('expiry');
    expect(revocationReason('something new')).toBe('other');
    expect(revocationReason(undefined)).toBe('other');
  });
});
