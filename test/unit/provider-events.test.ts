/** oidc-provider's events as audit events and metrics, driven by the events the engine emits. */
import { EventEmitter } from 'node:events';

import type Provider from 'oidc-provider';
import { describe, expect, it } from 'vitest';

import type { AuditEvent } from '../../src/audit/audit-event.js';
import { attachProviderAuditing } from '../../src/oidc/provider-events.js';
import { createLogger } from '../../src/http/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

function setup() {
  const engine = new EventEmitter();
  const events: AuditEvent[] = [];
  const metrics = createMetrics({ organizationLabels: false });
  attachProviderAuditing(engine as unknown as Provider, { record: (e) => events.push(e), flush: async () => {}, close: async () => {} }, createLogger({ level: 'silent' }), metrics);
  const ctx = (oidc: Record<string, unknown>) => ({
    oidc: { client: { clientId: 'app', tessera_organization_id: 'org_1' }, ...oidc },
    state: {},
    res: { getHeader: (name: string) => (name === 'x-request-id' ? 'req-42' : undefined) },
    ip: '203.0.113.9',
    get: (name: string) => (name === 'user-agent' ? 'test-agent' : ''),
  });
  return { engine, events, metrics, ctx };
}

describe('provider events', () => {
  it('records a refresh with the family\'s new tokens and counts each kind issued', async () => {
    const { engine, events, metrics, ctx } = setup();
    engine.emit('grant.success', ctx({
      route: 'token',
      params: { grant_type: 'refresh_token' },
      entities: { AccessToken: { accountId: 'usr_1', scope: 'openid orders:read', aud: 'https://orders.test', grantId: 'g1' }, RefreshToken: {}, IdToken: {} },
    }));
    expect(events).toEqual([expect.objectContaining({
      organizationId: 'org_1',
      actor: { type: 'user', id: 'usr_1' },
      action: 'token.refreshed',
      requestId: 'req-42',
      ip: '203.0.113.9',
      details: expect.objectContaining({ grant_type: 'refresh_token', client_id: 'app', scope: 'openid orders:read', refresh_token_issued: true, id_token_issued: true, grant_id: 'g1' }),
    })]);
    const text = await metrics.render();
    for (const kind of ['access_token', 'refresh_token', 'id_token']) expect(text).toContain(`tessera_tokens_issued_total{grant_type="refresh_token",kind="${kind}"} 1`);
  });

  it('records refresh-token reuse as detected, with the family revoked', async () => {
    const { engine, events, metrics, ctx } = setup();
    engine.emit('grant.revoked', ctx({ route: 'token', params: { grant_type: 'refresh_token' }, entities: { RefreshToken: { accountId: 'usr_1' } } }), 'grant-9');
    expect(events).toEqual([expect.objectContaining({
      action: 'token.refresh_reuse_detected',
      target: { type: 'grant', id: 'grant-9' },
      outcome: 'failure',
      details: { route: 'token', reason: 'reuse_detected', family_revoked: true, account_id: 'usr_1' },
    })]);
    expect(await metrics.render()).toContain('tessera_tokens_revoked_total{reason="reuse_detected",kind="refresh_token"} 1');

    engine.emit('grant.revoked', ctx({ route: 'revocation', params: {} }), 'grant-10');
    expect(events[1]).toMatchObject({ action: 'grant.revoked', outcome: 'success', details: { reason: 'rfc7009' } });
  });

  it('records failed client authentication at the token endpoint', () => {
    const { engine, events, ctx } = setup();
    engine.emit('grant.error', ctx({ params: { grant_type: 'client_credentials' } }), { error: 'invalid_client', error_description: 'client authentication failed' });
    expect(events[0]).toMatchObject({ action: 'client.authentication_failed', outcome: 'failure', actor: { type: 'client', id: 'app' }, organizationId: 'org_1' });
  });

  it('records no failure for a device told to keep polling (RFC 8628 §3.5), and one for a wrong device code', () => {
    const { engine, events, ctx } = setup();
    const device = ctx({ params: { grant_type: 'urn:ietf:params:oauth:grant-type:device_code' } });
    engine.emit('grant.error', device, { error: 'authorization_pending', error_description: 'authorization request is still pending as the end-user hasn\'t yet completed the user interaction steps' });
    engine.emit('grant.error', device, { error: 'slow_down', error_description: 'you are polling too quickly and should back off at a reasonable rate' });
    expect(events).toEqual([]);
    engine.emit('grant.error', device, { error: 'invalid_grant', error_description: 'grant request is invalid' });
    expect(events).toEqual([expect.objectContaining({ action: 'token.request_failed', outcome: 'failure', details: expect.objectContaining({ error: 'invalid_grant' }) })]);
  });
});
