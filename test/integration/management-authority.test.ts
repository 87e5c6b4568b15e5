/**
 * Authorization by token (docs/design.md, "Separation of authority", separation of authority; RFC 6750 §3.1), roles, and
 * lifecycle: only tokens for urn:tessera:management reach the Management API, whatever scopes
 * they carry; each route needs its scope; a client never holds more Management power than whoever
 * created it; only owners manage owners and the last owner stays; deactivating a user or
 * disabling a service account stops their tokens at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE, ROLE_SCOPES } from '../../src/domain/types.js';
import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, createResourceServer, createServiceAccount, expectApi, introspect, uniqueName } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

// Authorization is storage-independent; one backend (the production one when reachable) keeps
// this file well under a minute. Storage-dependent paths run on both in the walkthrough.
const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

{
  describe(`Management API authority on ${backend.name}`, () => {
    let server: TestServer;
    let org: CreatedOrganization;

    /** A client-credentials JWT for the Management API with exactly `scopes`. */
    async function managementToken(scopes: string[], creator = org.managementToken, extra: Record<string, unknown> = {}) {
      const client = await createClient(server, creator, { scopes, resources: [MANAGEMENT_AUDIENCE], ...extra });
      const tokens = await clientCredentials(server, client.client_id, client.client_secret, { resource: MANAGEMENT_AUDIENCE, scope: scopes.join(' ') });
      expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
      return { client, token: tokens.body.access_token as string };
    }

    beforeAll(async () => {
      server = await startTestServer(backend.name);
      org = await createOrganization(server, server.managementToken);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('answers a call without a token with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
      const response = await fetch(`${server.url}/api/v1/users`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+"$/);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
    });

    it('refuses tokens for any other audience, even with scopes named like Management scopes', async () => {
      // An API that (unwisely) names its scopes like the Management API's.
      for (const format of ['jwt', 'opaque']) {
        const rs = await createResourceServer(server, org.managementToken, { scopes: ['clients:write', 'users:write'], token_format: format });
        const client = await createClient(server, org.managementToken, { scopes: ['clients:write', 'users:write'], resources: [rs.identifier] });
        const tokens = await clientCredentials(server, client.client_id, client.client_secret, { resource: rs.identifier, scope: 'clients:write users:write' });
        expect(tokens.status).toBe(200);
        expect(tokens.body.scope).toBe('clients:write users:write');
        const response = await api(server, tokens.body.access_token, 'POST', '/service-accounts', { name: uniqueName('sa') });
        expect(response.status, response.text).toBe(401);
        expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      }
      // A SAT for another API, carrying every organization scope by name.
      const rs = await createResourceServer(server, org.managementToken);
      const account = await createServiceAccount(server, org.managementToken);
      const { token: foreignSat } = await server.tessera.referenceTokenIssuer.issue({
        organizationId: org.id, type: 'sat', name: 'connector', serviceAccountId: account.id, scopes: ['users:read', 'clients:write'], resources: [rs.identifier], expiresInSeconds: 3600, createdBy: 'test',
      });
      const viaSat = await api(server, foreignSat, 'GET', '/users');
      expect(viaSat.status).toBe(401);
      expect(viaSat.headers.get('www-authenticate')).toContain('error="invalid_token"');
      const garbage = await api(server, 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', 'GET', '/users');
      expect(garbage.status).toBe(401);
      expect(garbage.headers.get('www-authenticate')).toContain('error="invalid_token"');
      // A real management JWT with one flipped signature byte.
      const { token } = await managementToken(['users:read']);
      const tampered = `${token.slice(0, -4)}${token.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
      expect((await api(server, tampered, 'GET', '/users')).status).toBe(401);
      expect((await api(server, token, 'GET', '/users')).status).toBe(200);
    });

    it('needs the route\'s scope: 403 insufficient_scope naming it', async () => {
      const { token } = await managementToken(['clients:read']);
      expect((await api(server, token, 'GET', '/clients')).status).toBe(200);
      const denied = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'] });
      expect(denied.status).toBe(403);
      expect(denied.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(denied.headers.get('www-authenticate')).toContain('scope="clients:write"');
      expect(denied.body.required_scope).toBe('clients:write');
      for (const [method, path] of [['GET', '/users'], ['POST', '/resource-servers'], ['GET', '/service-accounts'], ['POST', '/initial-access-tokens']]) {
        expect((await api(server, token, method!, path!, method === 'POST' ? {} : undefined)).status, path).toBe(403);
      }
    });

    it('gives a client no Management scope its creator lacks, and organizations:admin to none', async () => {
      const { token } = await managementToken(['clients:read', 'clients:write']);
      const wider = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['clients:read', 'users:write'], resources: [MANAGEMENT_AUDIENCE] });
      // An authority refusal (src/domain/authority.ts): 403 naming what the caller lacks.
      expect(wider.status).toBe(403);
      expect(wider.body.missing_authority).toEqual(['users:write']);
      const same = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['clients:read'], resources: [MANAGEMENT_AUDIENCE] });
      expect(same.status).toBe(201);
      // Management scopes only with the Management API among the resources.
      const noAudience = await api(server, org.managementToken, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['users:read'] });
      expect(noAudience.status).toBe(422);
      // Not even the platform administrator can hand out organizations:admin.
      const platform = await api(server, server.managementToken, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['organizations:admin'], resources: [MANAGEMENT_AUDIENCE] });
      expect(platform.status).toBe(422);
      expect(platform.body.errors[0].field).toBe('scopes.0');
      // Widening an existing client is checked the same way.
      const widened = await api(server, token, 'PATCH', `/clients/${same.body.client_id}`, { scopes: ['clients:read', 'audit:read'] });
      expect(widened.status).toBe(403);
      expect(widened.body.missing_authority).toEqual(['audit:read']);
    });

    it('lets only owners manage owners, and keeps the last active owner', async () => {
      // Every admin scope, without organization:write: admin authority.
      const { token: adminToken } = await managementToken([...ROLE_SCOPES.admin]);
      // A token with users:write alone gives no role at all: each role holds scopes it lacks.
      const { token: narrow } = await managementToken(['users:read', 'users:write']);
      const refused = await api(server, narrow, 'POST', '/users', { username: uniqueName('m'), role: 'member' });
      expect(refused.status).toBe(403);
      expect(refused.body.missing_authority).toEqual(['tokens:read', 'tokens:write']);
      expect((await api(server, adminToken, 'POST', '/users', { username: uniqueName('o'), role: 'owner' })).status).toBe(403);
      const member = await expectApi(server, adminToken, 'POST', '/users', { username: uniqueName('m'), role: 'member' }, 201);
      expect(member.password).toEqual(expect.any(String));
      expect((await api(server, adminToken, 'PATCH', `/users/${member.id}`, { role: 'owner' })).status).toBe(403);
      expect((await api(server, adminToken, 'PATCH', `/users/${org.owner.id}`, { name: 'Changed' })).status).toBe(403);
      expect((await api(server, adminToken, 'DELETE', `/users/${org.owner.id}`)).status).toBe(403);
      expect((await api(server, adminToken, 'PUT', `/users/${org.owner.id}/password`, { password: 'taken-over-by-admin' })).status).toBe(403);
      expect((await api(server, adminToken, 'PATCH', `/users/${member.id}`, { role: 'admin' })).status).toBe(200);

      // The organization's automation token has owner authority; the first owner is the last one.
      for (const change of [{ role: 'admin' }, { status: 'deactivated' }]) {
        const refused = await api(server, org.managementToken, 'PATCH', `/users/${org.owner.id}`, change);
        expect(refused.status, refused.text).toBe(409);
      }
      expect((await api(server, org.managementToken, 'DELETE', `/users/${org.owner.id}`)).status).toBe(409);
      const second = await expectApi(server, org.managementToken, 'POST', '/users', { username: uniqueName('o2'), role: 'owner', password: 'second-owner-password' }, 201);
      expect((await api(server, org.managementToken, 'PATCH', `/users/${org.owner.id}`, { role: 'admin' })).status).toBe(200);
      expect((await api(server, org.managementToken, 'DELETE', `/users/${second.id}`)).status).toBe(409);
      expect((await api(server, org.managementToken, 'PATCH', `/users/${org.owner.id}`, { role: 'owner' })).status).toBe(200);
      expect((await api(server, org.managementToken, 'DELETE', `/users/${second.id}`)).status).toBe(204);

      // Two owners demoting each other at the same moment: the owners are locked, so one wins.
      const third = await expectApi(server, org.managementToken, 'POST', '/users', { username: uniqueName('o3'), role: 'owner', password: 'third-owner-password' }, 201);
      const race = await Promise.all([
        api(server, org.managementToken, 'PATCH', `/users/${org.owner.id}`, { role: 'admin' }),
        api(server, org.managementToken, 'PATCH', `/users/${third.id}`, { status: 'deactivated' }),
      ]);
      expect(race.map((r) => r.status).sort()).toEqual([200, 409]);
      const owners = await expectApi(server, org.managementToken, 'GET', '/users?role=owner&status=active', undefined, 200);
      expect(owners.items).toHaveLength(1);
      const survivor = owners.items[0].id as string;
      await expectApi(server, org.managementToken, 'PATCH', `/users/${org.owner.id}`, { role: 'owner', status: 'active' }, 200);
      if (survivor !== third.id) await expectApi(server, org.managementToken, 'PATCH', `/users/${third.id}`, { status: 'active' }, 200);

      // Nobody is listed with a password hash.
      const listing = await api(server, org.managementToken, 'GET', '/users?limit=1000');
      expect(listing.status).toBe(200);
      expect(listing.text).not.toMatch(/scrypt|password/);
    });

    it('stops a deactivated user\'s tokens at once, and lets them work again when reactivated', async () => {
      const user = await expectApi(server, org.managementToken, 'POST', '/users', { username: uniqueName('u'), role: 'admin', password: 'a-long-enough-password' }, 201);
      const { token } = await server.tessera.referenceTokenIssuer.issue({
        organizationId: org.id, type: 'pat', name: 'test', userId: user.id, scopes: ['users:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 3600, createdBy: 'test',
      });
      expect((await api(server, token, 'GET', '/users')).status).toBe(200);
      await expectApi(server, org.managementToken, 'PATCH', `/users/${user.id}`, { status: 'deactivated' }, 200);
      expect((await api(server, token, 'GET', '/users')).status).toBe(401);
      await expectApi(server, org.managementToken, 'PATCH', `/users/${user.id}`, { status: 'active' }, 200);
      expect((await api(server, token, 'GET', '/users')).status).toBe(200);
    });

    it('stops a disabled service account\'s SATs and clients at once', async () => {
      const account = await createServiceAccount(server, org.managementToken);
      const { client, token: jwt } = await managementToken(['service-accounts:read'], org.managementToken, { service_account_id: account.id });
      const { token: sat } = await server.tessera.referenceTokenIssuer.issue({
        organizationId: org.id, type: 'sat', name: 'test', serviceAccountId: account.id, scopes: ['service-accounts:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 3600, createdBy: 'test',
      });
      expect((await api(server, jwt, 'GET', '/service-accounts')).status).toBe(200);
      expect((await api(server, sat, 'GET', '/service-accounts')).status).toBe(200);
      // A token the account's client holds for an ordinary API, JWT and opaque alike.
      const apis = [await createResourceServer(server, org.managementToken), await createResourceServer(server, org.managementToken, { token_format: 'opaque' })];
      const worker = await createClient(server, org.managementToken, { scopes: ['things:read'], resources: apis.map((r) => r.identifier), service_account_id: account.id });
      const apiTokens: string[] = [];
      for (const rs of apis) {
        const grantForApi = await clientCredentials(server, worker.client_id, worker.client_secret, { resource: rs.identifier, scope: 'things:read' });
        apiTokens.push(grantForApi.body.access_token);
        expect((await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, grantForApi.body.access_token)).body.active).toBe(true);
      }
      await expectApi(server, org.managementToken, 'PATCH', `/service-accounts/${account.id}`, { status: 'disabled' }, 200);
      for (const [i, rs] of apis.entries()) {
        expect((await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, apiTokens[i]!)).body, rs.token_format).toEqual({ active: false });
      }
      expect((await api(server, jwt, 'GET', '/service-accounts')).status).toBe(401);
      expect((await api(server, sat, 'GET', '/service-accounts')).status).toBe(401);
      const grant = await clientCredentials(server, client.client_id, client.client_secret, { resource: MANAGEMENT_AUDIENCE, scope: 'service-accounts:read' });
      expect(grant.status).toBe(401);
      expect(grant.body.error).toBe('invalid_client');
      // Deleting an account that still owns clients is refused; deleting the client first works.
      expect((await api(server, org.managementToken, 'DELETE', `/service-accounts/${account.id}`)).status).toBe(409);
      await expectApi(server, org.managementToken, 'PATCH', `/service-accounts/${account.id}`, { status: 'active' }, 200);
      expect((await api(server, jwt, 'GET', '/service-accounts')).status).toBe(200);
      expect((await introspect(server, apis[0].introspection_client_id, apis[0].introspection_client_secret, apiTokens[0]!)).body.active).toBe(true);
      await expectApi(server, org.managementToken, 'DELETE', `/clients/${worker.client_id}`, undefined, 204);
      expect((await introspect(server, apis[0].introspection_client_id, apis[0].introspection_client_secret, apiTokens[0]!)).body).toEqual({ active: false });
      await expectApi(server, org.managementToken, 'DELETE', `/clients/${client.client_id}`, undefined, 204);
      // A deleted client's tokens stop too.
      expect((await api(server, jwt, 'GET', '/service-accounts')).status).toBe(401);
      await expectApi(server, org.managementToken, 'DELETE', `/service-accounts/${account.id}`, undefined, 204);
      expect((await api(server, sat, 'GET', '/service-accounts')).status).toBe(401);
    });
  });
}
