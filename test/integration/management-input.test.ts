/**
 * Bad input on every Management API route that takes a body: malformed JSON, wrong types,
 * unknown fields, oversized strings, invalid URIs and duplicates are 400/409/413/422
 * problem+json naming the field, never a 500, and leave nothing half-written. Also: the OpenAPI
 * document covers every route of the router.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Route } from '../../src/management/route.js';
import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import { createClient, createOrganization, createResourceServer, createServiceAccount, expectApi, uniqueName } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const PROBLEM = 'application/problem+json';

// On the production backend when reachable: that is where a value PostgreSQL refuses would
// surface as a 500. The embedded backend runs the same routes in the walkthrough.
const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

{
  describe(`Management API input on ${backend.name}`, () => {
    let server: TestServer;
    let org: CreatedOrganization;
    let ids: Record<string, string>;
    let rs: any;

    beforeAll(async () => {
      server = await startTestServer(backend.name);
      org = await createOrganization(server, server.managementToken);
      rs = await createResourceServer(server, org.managementToken);
      const account = await createServiceAccount(server, org.managementToken);
      const client = await createClient(server, org.managementToken, { scopes: ['things:read'], resources: [rs.identifier] });
      ids = { '/users': org.owner.id, '/service-accounts': account.id, '/resource-servers': rs.id, '/clients': client.client_id, '/initial-access-tokens': 'iat_x' };
    });
    afterAll(async () => {
      await server?.stop();
    });

    const bodyRoutes = () => server.tessera.management.routes.filter((r: Route) => r.body && r.auth !== 'none');
    const pathOf = (route: Route) => {
      const collection = Object.keys(ids).find((prefix) => route.path.startsWith(prefix));
      return route.path.replace('{id}', collection ? ids[collection]! : 'x');
    };
    const raw = (route: Route, body: string, type = 'application/json') =>
      fetch(`${server.url}/api/v1${pathOf(route)}`, { method: route.method, headers: { authorization: `Bearer ${server.managementToken}`, 'content-type': type }, body });

    it('answers malformed JSON with 400, a wrong media type with 415, and an oversized body with 413, on every route', async () => {
      const routes = bodyRoutes();
      expect(routes.length).toBeGreaterThanOrEqual(12);
      for (const route of routes) {
        const label = `${route.method} ${route.path}`;
        const malformed = await raw(route, '{"name": "x",');
        expect(malformed.status, label).toBe(400);
        expect(malformed.headers.get('content-type'), label).toContain(PROBLEM);
        expect((await raw(route, 'name=x', 'application/x-www-form-urlencoded')).status, label).toBe(415);
        expect((await raw(route, JSON.stringify({ name: 'x'.repeat(70 * 1024) }))).status, label).toBe(413);
      }
    });

    it('names an unknown field and refuses non-object bodies with 422 on every route, never a 500', async () => {
      for (const route of bodyRoutes()) {
        const label = `${route.method} ${route.path}`;
        const unknown = await api(server, server.managementToken, route.method, pathOf(route), { surprise_field: 1 });
        expect(unknown.status, `${label}: ${unknown.text}`).toBe(422);
        expect(unknown.headers.get('content-type')).toContain(PROBLEM);
        expect(JSON.stringify(unknown.body.errors), label).toContain('surprise_field');
        for (const body of [null, [], 'text', 42, { name: null }, { name: { deeply: { nested: [1, 2, 3] } } }, { name: '\u0000' }]) {
          const response = await api(server, server.managementToken, route.method, pathOf(route), body);
          expect(response.status, `${label} with ${JSON.stringify(body)}: ${response.text}`).toBeGreaterThanOrEqual(400);
          expect(response.status, `${label} with ${JSON.stringify(body)}: ${response.text}`).toBeLessThan(500);
        }
      }
    });

    /** [method, path, body, field named in the answer] */
    const cases = (): [string, string, unknown, string][] => [
      ['POST', '/users', { username: 5, role: 'member' }, 'username'],
      ['POST', '/users', { username: 'u'.repeat(101), role: 'member' }, 'username'],
      ['POST', '/users', { username: 'ok', role: 'superuser' }, 'role'],
      ['POST', '/users', { username: 'ok', role: 'member', password: 'short' }, 'password'],
      ['POST', '/users', { username: 'ok', role: 'member', email: 'not-an-email' }, 'email'],
      ['PATCH', `/users/${ids['/users']}`, { role: 'owner', status: 'gone' }, 'status'],
      ['PUT', `/users/${ids['/users']}/password`, { password: 'x'.repeat(2000) }, 'password'],
      ['POST', '/service-accounts', { name: '' }, 'name'],
      ['POST', '/service-accounts', { name: 'x'.repeat(101) }, 'name'],
      ['PATCH', `/service-accounts/${ids['/service-accounts']}`, { status: 'paused' }, 'status'],
      ['POST', '/resource-servers', { identifier: 'not a uri', scopes: [] }, 'identifier'],
      ['POST', '/resource-servers', { identifier: 'https://api.example.test/#frag', scopes: [] }, 'identifier'],
      ['POST', '/resource-servers', { identifier: 'urn:tessera:management', scopes: [] }, 'identifier'],
      ['POST', '/resource-servers', { identifier: 'ftp://files.example.test', scopes: [] }, 'identifier'],
      ['POST', '/resource-servers', { identifier: `https://${'a'.repeat(3000)}.test`, scopes: [] }, 'identifier'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: ['a b'] }, 'scopes.0'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: ['a', { name: 'a' }] }, 'scopes.1'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: ['openid'] }, 'scopes.0'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: [], token_format: 'paseto' }, 'token_format'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: [], access_token_ttl: '600' }, 'access_token_ttl'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test', scopes: [], access_token_ttl: 10 ** 9 }, 'access_token_ttl'],
      ['POST', '/resource-servers', { identifier: 'https://x.example.test' }, 'scopes'],
      ['PATCH', `/resource-servers/${ids['/resource-servers']}`, { identifier: 'https://moved.example.test' }, 'identifier'],
      ['POST', '/clients', { name: 'c', grant_types: ['password'] }, 'grant_types.0'],
      ['POST', '/clients', { name: 'c', grant_types: 'client_credentials' }, 'grant_types'],
      ['POST', '/clients', { name: 'c', grant_types: ['authorization_code'], redirect_uris: ['http://example.test/cb'] }, 'redirect_uris.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['authorization_code'], redirect_uris: ['https://example.test/cb#x'] }, 'redirect_uris.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['authorization_code'], redirect_uris: ['javascript:alert(1)'] }, 'redirect_uris.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['authorization_code'] }, 'redirect_uris'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }, 'grant_types'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt' }, 'jwks'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, 'jwks.keys.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://keys.example.test' }, 'jwks_uri'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], scopes: ['things:read'], resources: ['not a uri'] }, 'resources.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], scopes: ['unknown:scope'] }, 'scopes.0'],
      ['POST', '/clients', { name: 'c', grant_types: ['client_credentials'], scopes: ['openid', 'openid'] }, 'scopes.1'],
      ['POST', '/clients', { name: 'x'.repeat(201), grant_types: ['client_credentials'] }, 'name'],
      ['PATCH', `/clients/${ids['/clients']}`, { token_endpoint_auth_method: 'none' }, 'token_endpoint_auth_method'],
      ['POST', '/initial-access-tokens', { expires_in: 5 }, 'expires_in'],
      ['POST', '/initial-access-tokens', { resources: ['urn:tessera:management'] }, 'resources.0'],
      ['POST', '/initial-access-tokens', { scopes: ['things:read'] }, 'scopes.0'],
    ];

    it('names the field of wrong types, oversized strings and invalid URIs (422)', async () => {
      for (const [method, path, body, field] of cases()) {
        const response = await api(server, org.managementToken, method, path, body);
        const label = `${method} ${path} ${JSON.stringify(body).slice(0, 120)}`;
        expect(response.status, `${label}: ${response.text.slice(0, 300)}`).toBe(422);
        expect(response.headers.get('content-type')).toContain(PROBLEM);
        expect(response.body.errors.map((e: { field: string }) => e.field), label).toContain(field);
      }
    });

    it('answers duplicates with 409 naming the field, and writes nothing half', async () => {
      // Every new organization brings its built-in tessera-cli and console clients; count the others.
      const count = async () => (await server.tessera.db.query<{ n: number }>("SELECT count(*)::int AS n FROM clients WHERE kind NOT IN ('cli', 'console')")).rows[0]!.n;
      const before = await count();
      const dupRs = await api(server, org.managementToken, 'POST', '/resource-servers', { identifier: rs.identifier, scopes: ['a'] });
      expect(dupRs.status).toBe(409);
      expect(dupRs.body.errors).toEqual([{ field: 'identifier', message: 'already registered' }]);
      // Installation-wide: another organization cannot take the identifier either.
      const other = await createOrganization(server, server.managementToken);
      expect((await api(server, other.managementToken, 'POST', '/resource-servers', { identifier: rs.identifier, scopes: ['a'] })).status).toBe(409);
      // A failed API registration leaves no introspection credentials behind.
      expect(await count()).toBe(before);

      const name = uniqueName('robot');
      await expectApi(server, org.managementToken, 'POST', '/service-accounts', { name }, 201);
      const dupSa = await api(server, org.managementToken, 'POST', '/service-accounts', { name });
      expect(dupSa.status).toBe(409);
      expect(dupSa.body.errors[0].field).toBe('name');
      const dupUser = await api(server, org.managementToken, 'POST', '/users', { username: org.owner.username, role: 'member', password: 'long-enough-password' });
      expect(dupUser.status).toBe(409);
      expect(dupUser.body.errors[0].field).toBe('username');

      // Invalid clients are refused whole: nothing is stored.
      const clientsBefore = await count();
      expect((await api(server, org.managementToken, 'POST', '/clients', { name: 'c', grant_types: ['authorization_code'], redirect_uris: ['http://evil.example.test/cb'] })).status).toBe(422);
      expect(await count()).toBe(clientsBefore);
    });

    it('paginates every list with a cursor, and refuses a cursor of another organization', async () => {
      for (let i = 0; i < 3; i += 1) await createServiceAccount(server, org.managementToken);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
        const pageOf: any = await expectApi(server, org.managementToken, 'GET', `/service-accounts${query}`, undefined, 200);
        expect(pageOf.items.length).toBeLessThanOrEqual(2);
        seen.push(...pageOf.items.map((a: { id: string }) => a.id));
        cursor = pageOf.next_cursor;
      } while (cursor);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen.length).toBeGreaterThanOrEqual(4);
      const first = await expectApi(server, org.managementToken, 'GET', '/service-accounts?limit=1', undefined, 200);
      const other = await createOrganization(server, server.managementToken);
      const foreign = await api(server, other.managementToken, 'GET', `/service-accounts?limit=1&cursor=${first.next_cursor}`);
      expect(foreign.status).toBe(400);
      for (const path of ['/users', '/clients', '/resource-servers', '/initial-access-tokens']) {
        expect((await api(server, org.managementToken, 'GET', `${path}?limit=0`)).status, path).toBe(422);
        expect((await expectApi(server, org.managementToken, 'GET', `${path}?limit=1`, undefined, 200)).items.length, path).toBeLessThanOrEqual(1);
      }
    });

    it('documents every route of the router in GET /api/v1/openapi.json', async () => {
      const response = await fetch(`${server.url}/api/v1/openapi.json`);
      expect(response.status).toBe(200);
      const document = await response.json();
      expect(document.openapi).toBe('3.1.0');
      const routes: Route[] = server.tessera.management.routes;
      expect(routes.length).toBeGreaterThanOrEqual(25);
      for (const route of routes) {
        const operation = document.paths[`/api/v1${route.path}`]?.[route.method.toLowerCase()];
        expect(operation, `${route.method} ${route.path} is missing from the OpenAPI document`).toBeDefined();
        if (route.body) expect(operation.requestBody, `${route.method} ${route.path}`).toBeDefined();
        if (route.scope) expect(operation.security, `${route.method} ${route.path}`).toEqual([{ bearer: [route.scope] }]);
      }
      const create = document.paths['/api/v1/clients'].post;
      expect(Object.keys(create.requestBody.content['application/json'].schema.properties)).toEqual(
        expect.arrayContaining(['name', 'grant_types', 'redirect_uris', 'token_endpoint_auth_method', 'scopes', 'resources', 'service_account_id']),
      );
    });
  });
}
