/**
 * One authority (src/domain/authority.ts): an operation that returns a secret, or changes where a
 * credential's power can be used, is allowed only if the caller could create that credential,
 * with those scopes and resources, right now. Each case here was an escalation before the rule
 * lived in one place: rotating someone else's PAT or a stronger SAT, rotating the secret of (or
 * re-pointing) a client stronger than the caller, and reading the whole token inventory with a
 * token that sees no token at GET /tokens. Every refusal is a 403 naming what is missing, leaves
 * an audit event, and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, ROLE_SCOPES } from '../../src/domain/types.js';
import type { Role } from '../../src/domain/types.js';
import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, createResourceServer, createServiceAccount, expectApi, uniqueName } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

// Authority is storage-independent; the production backend when reachable.
const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

describe(`one authority for credentials on ${backend.name}`, () => {
  let server: TestServer;
  let org: CreatedOrganization;

  beforeAll(async () => {
    server = await startTestServer(backend.name);
    org = await createOrganization(server, server.managementToken);
  });
  afterAll(async () => {
    await server?.stop();
  });

  const issue = (input: { type: 'pat' | 'sat'; userId?: string; serviceAccountId?: string; scopes: readonly string[]; organizationId?: string }) =>
    server.tessera.referenceTokenIssuer.issue({
      organizationId: input.organizationId ?? org.id,
      type: input.type,
      name: uniqueName('t'),
      ...(input.userId ? { userId: input.userId } : { serviceAccountId: input.serviceAccountId }),
      scopes: [...input.scopes],
      resources: [MANAGEMENT_AUDIENCE],
      expiresInSeconds: 3600,
      createdBy: 'test',
    });

  /** A user of `role` with a PAT carrying every scope of the role. */
  async function userWithPat(role: Role, organizationId = org.id, creator = org.managementToken) {
    const user = await expectApi(server, creator, 'POST', '/users', { username: uniqueName(role), role, password: 'a-long-enough-password' }, 201);
    const { token, row } = await issue({ type: 'pat', userId: user.id, scopes: ROLE_SCOPES[role], organizationId });
    return { user, token, tokenId: row.id as string };
  }

  /** A SAT with exactly `scopes`, for a new service account. */
  async function satWith(scopes: readonly string[]) {
    const account = await createServiceAccount(server, org.managementToken);
    const { token, row } = await issue({ type: 'sat', serviceAccountId: account.id, scopes });
    return { account, token, tokenId: row.id as string };
  }

  async function deniedEvents(actorId: string) {
    await server.tessera.audit.flush();
    const events = await expectApi(server, org.managementToken, 'GET', `/audit-events?action=authority.denied&limit=100`, undefined, 200);
    return (events.items as { actor: { id: string }; details: { missing: string[]; route: string } }[]).filter((e) => e.actor.id === actorId);
  }

  it('lets only its own user rotate a PAT, and nobody rotate a token stronger than themselves', async () => {
    const owner = await userWithPat('owner');
    const admin = await userWithPat('admin');

    // An admin rotating the owner's PAT would hold organization:write.
    const refused = await api(server, admin.token, 'POST', `/tokens/${owner.tokenId}/rotate`, {});
    expect(refused.status, refused.text).toBe(403);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body.missing_authority).toEqual(['token-owner']);
    expect(refused.text).not.toMatch(/tsr_pat_/);
    // Nothing changed: the owner's PAT was not rotated.
    const after = await expectApi(server, org.managementToken, 'GET', `/tokens/${owner.tokenId}`, undefined, 200);
    expect(after.rotated_at).toBeNull();
    expect((await api(server, owner.token, 'PATCH', '/organization', { policy: {} })).status).not.toBe(401);
    const events = await deniedEvents(admin.user.id);
    expect(events.at(-1)?.details).toMatchObject({ route: '/tokens/{id}/rotate', missing: ['token-owner'] });

    // The owner rotates their own PAT; a narrowed token of theirs cannot rotate a broader one.
    const narrow = await issue({ type: 'pat', userId: owner.user.id, scopes: ['tokens:read', 'tokens:write'] });
    const narrowed = await api(server, narrow.token, 'POST', `/tokens/${owner.tokenId}/rotate`, {});
    expect(narrowed.status, narrowed.text).toBe(403);
    expect(narrowed.body.missing_authority).toContain('organization:write');
    const own = await api(server, owner.token, 'POST', `/tokens/${owner.tokenId}/rotate`, {});
    expect(own.status, own.text).toBe(200);
    expect(own.body.token).toMatch(/^tsr_pat_/);
  });

  it('refuses rotating a SAT whose scopes exceed the caller, the platform SAT included', async () => {
    // The organization's all-scope automation SAT (created with the organization).
    const sats = await expectApi(server, org.managementToken, 'GET', '/tokens?kind=sat', undefined, 200);
    const automation = (sats.items as { id: string; scopes: string[] }[]).find((t) => t.scopes.includes('organization:write'))!;
    expect(automation).toBeDefined();
    const weak = await satWith(['tokens:read', 'tokens:write', 'service-accounts:write']);
    const refused = await api(server, weak.token, 'POST', `/tokens/${automation.id}/rotate`, {});
    expect(refused.status, refused.text).toBe(403);
    expect(refused.body.missing_authority).toEqual(expect.arrayContaining(['organization:write', 'users:write']));
    expect((await expectApi(server, org.managementToken, 'GET', `/tokens/${automation.id}`, undefined, 200)).rotated_at).toBeNull();
    expect(await deniedEvents(weak.account.id)).toHaveLength(1);

    // A SAT within the caller's scopes rotates.
    const narrowTarget = await satWith(['tokens:read']);
    expect((await api(server, weak.token, 'POST', `/tokens/${narrowTarget.tokenId}/rotate`, {})).status).toBe(200);

    // The bootstrap SAT holds organizations:admin: an admin of the platform organization, who can
    // see it, may not rotate it.
    const platformOrg = server.bootstrap.organization_id;
    const platformSats = await expectApi(server, server.managementToken, 'GET', '/tokens?kind=sat', undefined, 200);
    const bootstrapSat = (platformSats.items as { id: string; scopes: string[] }[]).find((t) => t.scopes.includes('organizations:admin'))!;
    expect(bootstrapSat).toBeDefined();
    const platformAdmin = await userWithPat('admin', platformOrg, server.managementToken);
    const platformRefused = await api(server, platformAdmin.token, 'POST', `/tokens/${bootstrapSat.id}/rotate`, {});
    expect(platformRefused.status, platformRefused.text).toBe(403);
    expect(platformRefused.body.missing_authority).toContain('organizations:admin');
  });

  it('refuses a client secret, or a change of where a client\'s power is used, to a caller weaker than the client', async () => {
    const account = await createServiceAccount(server, org.managementToken);
    // An owner-made automation client holding organization:write.
    const strong = await createClient(server, org.managementToken, { scopes: ['organization:write', 'users:read'], resources: [MANAGEMENT_AUDIENCE], service_account_id: account.id });
    const admin = await userWithPat('admin');

    const secret = await api(server, admin.token, 'POST', `/clients/${strong.client_id}/secret`, {});
    expect(secret.status, secret.text).toBe(403);
    expect(secret.body.missing_authority).toEqual(['organization:write']);
    expect(secret.text).not.toMatch(/client_secret/);
    // The old secret still works, and only it: nothing was rotated.
    const stillWorks = await clientCredentials(server, strong.client_id, strong.client_secret, { resource: MANAGEMENT_AUDIENCE, scope: 'organization:write' });
    expect(stillWorks.status).toBe(200);
    expect((await expectApi(server, org.managementToken, 'GET', `/clients/${strong.client_id}`, undefined, 200)).secret_rotated_at).toBeNull();

    const other = await createServiceAccount(server, org.managementToken);
    for (const change of [
      { grant_types: ['authorization_code', 'client_credentials'], redirect_uris: ['https://attacker.example/cb'] },
      { token_endpoint_auth_method: 'client_secret_post' },
      { service_account_id: other.id },
      { scopes: ['organization:write', 'users:read', 'clients:read'] },
    ]) {
      const patched = await api(server, admin.token, 'PATCH', `/clients/${strong.client_id}`, change);
      expect(patched.status, `${JSON.stringify(change)}: ${patched.text}`).toBe(403);
      expect(patched.body.missing_authority).toContain('organization:write');
    }
    const unchanged = await expectApi(server, org.managementToken, 'GET', `/clients/${strong.client_id}`, undefined, 200);
    expect(unchanged).toMatchObject({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', service_account_id: account.id, scopes: ['organization:write', 'users:read'] });

    // A rename or a narrowing leaves the power where it was: allowed.
    expect((await api(server, admin.token, 'PATCH', `/clients/${strong.client_id}`, { name: 'Renamed' })).status).toBe(200);
    expect((await api(server, admin.token, 'PATCH', `/clients/${strong.client_id}`, { scopes: ['organization:write'] })).status).toBe(200);
    // The owner, who holds organization:write, rotates it.
    const rotated = await api(server, org.managementToken, 'POST', `/clients/${strong.client_id}/secret`, {});
    expect(rotated.status, rotated.text).toBe(200);

    // An initial access token for a sensitive API needs an administrator, like a PAT for it.
    const sensitive = await createResourceServer(server, org.managementToken, { sensitive: true });
    const clientsOnly = await satWith(['clients:write', 'clients:read']);
    const iat = await api(server, clientsOnly.token, 'POST', '/initial-access-tokens', { resources: [sensitive.identifier] });
    expect(iat.status, iat.text).toBe(403);
    expect(iat.body.missing_authority).toEqual(['role:admin']);
  });

  it('shows the token inventory by the same rule as GET /tokens', async () => {
    const member = await userWithPat('member');
    const readOnly = await satWith(['tokens:read']);
    // A token that lists no token at GET /tokens finds none in the inventory either.
    expect((await expectApi(server, readOnly.token, 'GET', '/tokens', undefined, 200)).items).toEqual([]);
    const inventory = await expectApi(server, readOnly.token, 'GET', '/token-inventory?limit=100', undefined, 200);
    expect(inventory.items).toEqual([]);
    // A member sees their own PATs in both, and nobody else's credentials.
    const listed = await expectApi(server, member.token, 'GET', '/tokens', undefined, 200);
    expect(listed.items.map((t: { id: string }) => t.id)).toEqual([member.tokenId]);
    const own = await expectApi(server, member.token, 'GET', '/token-inventory?limit=100', undefined, 200);
    expect(own.items.map((t: { id: string }) => t.id)).toEqual([member.tokenId]);
    // An administrator sees everything in both.
    const all = await expectApi(server, org.managementToken, 'GET', '/token-inventory?limit=100', undefined, 200);
    expect(all.items.length).toBeGreaterThan(2);
  });

  it('gives no role above the caller, and re-enables no service account stronger than the caller', async () => {
    const admin = await userWithPat('admin');
    const promoted = await api(server, admin.token, 'POST', '/users', { username: uniqueName('o'), role: 'owner' });
    expect(promoted.status).toBe(403);
    expect(promoted.body.missing_authority).toEqual(['organization:write']);

    // The automation client of an owner, its account disabled: an admin may not bring it back.
    const account = await createServiceAccount(server, org.managementToken);
    await issue({ type: 'sat', serviceAccountId: account.id, scopes: ORGANIZATION_SCOPES });
    await expectApi(server, admin.token, 'PATCH', `/service-accounts/${account.id}`, { status: 'disabled' }, 200);
    const reenabled = await api(server, admin.token, 'PATCH', `/service-accounts/${account.id}`, { status: 'active' });
    expect(reenabled.status, reenabled.text).toBe(403);
    expect(reenabled.body.missing_authority).toEqual(['organization:write']);
    expect((await expectApi(server, org.managementToken, 'GET', `/service-accounts/${account.id}`, undefined, 200)).status).toBe('disabled');
    await expectApi(server, org.managementToken, 'PATCH', `/service-accounts/${account.id}`, { status: 'active' }, 200);
  });
});
