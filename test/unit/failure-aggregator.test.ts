/** Repeated failures folded into one audit event per organization, client, source and window, on an injected clock. */
import { afterEach, describe, expect, it } from 'vitest';

import type { AuditEvent } from '../../src/audit/audit-event.js';
import { createFailureAggregator } from '../../src/audit/failure-aggregator.js';
import type { FailureAggregator } from '../../src/audit/failure-aggregator.js';
import { createTestClock } from '../helpers/test-clock.js';

const failure = (over: Partial<AuditEvent> = {}): AuditEvent => ({
  organizationId: 'org_1',
  actor: { type: 'client', id: 'app' },
  action: 'client.authentication_failed',
  target: { type: 'client', id: 'app' },
  outcome: 'failure',
  ip: '203.0.113.9',
  details: { endpoint: '/token/introspection' },
  ...over,
});

describe('the failure aggregator', () => {
  const open: FailureAggregator[] = [];
  afterEach(async () => {
    for (const aggregator of open.splice(0)) await aggregator.close();
  });
  function setup(options: { maxOpen?: number } = {}) {
    const clock = createTestClock(Date.parse('2030-01-01T00:00:00Z'));
    const written: AuditEvent[] = [];
    const aggregator = createFailureAggregator({ audit: { record: (e) => written.push(e), flush: async () => {} }, clock, windowMs: 60_000, sweepIntervalMs: 60_000, ...options });
    open.push(aggregator);
    return { clock, written, aggregator };
  }

  it('writes the first failure at once and the rest of the window as one event with the count', () => {
    const { clock, written, aggregator } = setup();
    aggregator.record(failure());
    for (let i = 0; i < 9; i += 1) {
      clock.advance(1000);
      aggregator.record(failure({ requestId: `r${i}` }));
    }
    expect(written).toEqual([failure()]);
    clock.advance(50_000);
    aggregator.sweep();
    expect(written).toHaveLength(1);
    clock.advance(1000);
    aggregator.sweep();
    expect(written[1]).toMatchObject({
      organizationId: 'org_1',
      actor: { type: 'client', id: 'app' },
      action: 'client.authentication_failed',
      ip: '203.0.113.9',
      details: { endpoint: '/token/introspection', count: 9, first_seen: '2030-01-01T00:00:01.000Z', last_seen: '2030-01-01T00:00:09.000Z', window_seconds: 60 },
    });
    expect(written[1]!.requestId).toBeUndefined();
    // A quiet window writes nothing more; the next failure opens a new one.
    aggregator.record(failure());
    expect(written).toHaveLength(3);
  });

  it('keeps sources, clients, organizations and actions apart', () => {
    const { written, aggregator } = setup();
    aggregator.record(failure());
    aggregator.record(failure({ ip: '198.51.100.1' }));
    aggregator.record(failure({ actor: { type: 'client', id: 'other' }, target: { type: 'client', id: 'other' } }));
    aggregator.record(failure({ organizationId: 'org_2' }));
    aggregator.record(failure({ action: 'client.replaced_secret_presented' }));
    expect(written).toHaveLength(5);
  });

  it('groups failures of unknown clients, whose ids the sender makes up, by source alone', () => {
    const { written, aggregator } = setup();
    for (let i = 0; i < 50; i += 1) aggregator.record(failure({ organizationId: null, actor: { type: 'client', id: `made-up-${i}` }, target: undefined }));
    expect(written).toHaveLength(1);
    expect(aggregator.open()).toBe(1);
  });

  it('stays bounded: past its open groups, it groups by organization and action', () => {
    const { clock, written, aggregator } = setup({ maxOpen: 3 });
    for (let i = 0; i < 100; i += 1) aggregator.record(failure({ ip: `192.0.2.${i}` }));
    expect(aggregator.open()).toBe(4);
    expect(written).toHaveLength(4);
    clock.advance(60_000);
    aggregator.sweep();
    expect(written[4]).toMatchObject({ actor: { type: 'client', id: null }, ip: undefined, details: { count: 96, many_sources: true } });
  });

  it('writes what open windows counted when it is closed (shutdown)', async () => {
    const { written, aggregator } = setup();
    aggregator.record(failure());
    aggregator.record(failure());
    aggregator.record(failure());
    await aggregator.close();
    expect(written).toHaveLength(2);
    expect(written[1]!.details).toMatchObject({ count: 2 });
    aggregator.record(failure());
    expect(written).toHaveLength(2);
  });
});
