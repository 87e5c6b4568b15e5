/**
 * The policy-driven engine options of interactive sign-in: refresh-family lifetimes (absolute and
 * idle), the sliding session, PKCE for confidential clients, and who gets refresh tokens.
 */
import type { Configuration } from 'oidc-provider';
import { describe, expect, it } from 'vitest';

import { loadConfig } from '../../src/config/config.js';
import { createPolicyService } from '../../src/domain/organization-policy.js';
import type { OrganizationPolicy } from '../../src/domain/types.js';
import { allowedOidcScopes, signInConfiguration } from '../../src/oidc/sign-in-config.js';
import type { ConsentRepository } from '../../src/storage/consent-repository.js';
import { createTestClock } from '../helpers/test-clock.js';

const config = loadConfig({ NODE_ENV: 'test' });
const DAY = 86_400;
const now = () => Math.floor(Date.now() / 1000);

async function configured(policies: Record<string, Partial<OrganizationPolicy>>) {
  const service = createPolicyService({
    organizations: { findById: async (id) => (policies[id] ? { policy: policies[id] } : undefined) },
    defaults: config.policyDefaults,
    clock: createTestClock(),
  });
  for (const id of Object.keys(policies)) await service.forOrganization(id);
  const c: Configuration = {};
  signInConfiguration({ config, policies: service, consents: {} as ConsentRepository, isMember: async () => true })(c);
  return c;
}

const client = (organization: string, method = 'none', grants = ['authorization_code', 'refresh_token']) =>
  ({ clientId: 'c', clientAuthMethod: method, tessera_organization_id: organization, grantTypeAllowed: (g: string) => grants.includes(g) }) as never;

describe('refresh families', () => {
  it('live for the idle lifetime after each rotation, never past the absolute lifetime from the first sign-in', async () => {
    const c = await configured({ org: { refresh_idle_lifetime_seconds: 7 * DAY, refresh_absolute_lifetime_seconds: 30 * DAY } });
    const ttl = c.ttl!.RefreshToken as (ctx: unknown, token: unknown, client: unknown) => number;
    expect(ttl(undefined, { iiat: now() }, client('org'))).toBe(7 * DAY);
    expect(ttl(undefined, { iiat: now() - 25 * DAY }, client('org'))).toBeCloseTo(5 * DAY, -1);
    expect(ttl(undefined, { iiat: now() - 31 * DAY }, client('org'))).toBe(1);
  });

  it('use the configured defaults for an organization without its own policy', async () => {
    const c = await configured({});
    const ttl = c.ttl!.RefreshToken as (ctx: unknown, token: unknown, client: unknown) => number;
    expect(ttl(undefined, { iiat: now() }, client('unknown'))).toBe(config.policyDefaults.refresh_idle_lifetime_seconds);
  });

  it('are issued for offline_access, or always when the organization says so, and only with the refresh_token grant', async () => {
    const c = await configured({ always: { refresh_token_issuance: 'always' } });
    const issue = (cl: unknown, scope: string) => c.issueRefreshToken!({} as never, cl as never, { scopes: new Set(scope.split(' ')) } as never);
    expect(await issue(client('org'), 'openid offline_access')).toBe(true);
    expect(await issue(client('org'), 'openid')).toBe(false);
    expect(await issue(client('always'), 'openid')).toBe(true);
    expect(await issue(client('always', 'none', ['authorization_code']), 'openid offline_access')).toBe(false);
  });
});

describe('sessions', () => {
  it('slide by the idle time, never past the absolute session lifetime after sign-in', async () => {
    const c = await configured({});
    const ttl = c.ttl!.Session as (ctx: unknown, session: unknown) => number;
    expect(ttl(undefined, { loginTs: now() })).toBe(Math.min(config.ttl.sessionIdle, config.ttl.session));
    expect(ttl(undefined, { loginTs: now() - config.ttl.session + 100 })).toBeLessThanOrEqual(100);
  });
});

describe('PKCE', () => {
  it('is always required of public clients, and of confidential ones unless their organization turns it off', async () => {
    const c = await configured({ relaxed: { pkce_required_for_confidential_clients: false } });
    const required = (cl: unknown) => c.pkce!.required!({} as never, cl as never);
    expect(required(client('org', 'none'))).toBe(true);
    expect(required(client('org', 'client_secret_basic'))).toBe(true);
    expect(required(client('relaxed', 'none'))).toBe(true);
    expect(required(client('relaxed', 'client_secret_basic'))).toBe(false);
  });
});

describe('OpenID scopes a client may be granted', () => {
  it('are openid plus those of its allowed scopes that are OpenID scopes', () => {
    expect([...allowedOidcScopes({ tessera_scopes: ['profile', 'orders:read', 'offline_access'] })].sort()).toEqual(['offline_access', 'openid', 'profile']);
    expect([...allowedOidcScopes({})]).toEqual(['openid']);
  });
});
