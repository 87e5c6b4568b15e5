/**
 * Tenant isolation (docs/design.md, "Least privilege per tenant"), as a matrix: two organizations, each with one object of every
 * kind; then every route of the Management API router is called with organization A's token on
 * organization B's objects. Nothing of B may be returned, changed, or even confirmed to exist:
 * id routes answer 404 exactly as for an id that never existed, lists hold none of B's ids, and
 * creating objects that reference B's is refused as if B's objects did not exist. Finally B's
 * objects are read back with B's token, unchanged. The walk covers the router's own route table,
 * so a route added later is exercised (and must be mapped here to a real object of B).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Route } from '../../src/management/route.js';
import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import type { BackendName } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, createResourceServer, createServiceAccount, expectApi, introspect, uniqueName } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const backend: BackendName = postgresRedisSkipReason ? 'pglite+memory' : backendsByName['postgres+redis'].name;

interface Tenant {
  org: CreatedOrganization;
  user: any;
  account: any;
  rs: any;
  client: any;
  iat: any;
  sat: any;
  webhook: any;
}

describe(`tenant isolation matrix on ${backend}`, () => {
  let server: TestServer;
  let a: Tenant;
  let b: Tenant;

  async function tenant(): Promise<Tenant> {
    const org = await createOrganization(server, server.managementToken);
    const token = org.managementToken;
    const user = await expectApi(server, token, 'POST', '/users', { username: uniqueName('user'), password: 'correct-horse-battery', role: 'member' }, 201);
    const account = await createServiceAccount(server, token);
    const rs = await createResourceServer(server, token);
    const client = await createClient(server, token, { scopes: ['things:read'], resources: [rs.identifier], service_account_id: account.id });
    const iat = await expectApi(server, token, 'POST', '/initial-access-tokens', { resources: [rs.identifier] }, 201);
    const sat = await expectApi(server, token, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: uniqueName('sat'), scopes: ['things:read'], resources: [rs.identifier], expires_in: 86400 }, 201);
    const webhook = await expectApi(server, token, 'POST', '/webhooks', { url: 'https://hooks.example.com/tessera', events: ['token.revoked'] }, 201);
    return { org, user, account, rs, client, iat, sat, webhook };
  }

  /** A snapshot of B as B sees it. */
  async function snapshot(t: Tenant) {
    const token = t.org.managementToken;
    return {
      user: await expectApi(server, token, 'GET', `/users/${t.user.id}`, undefined, 200),
      account: await expectApi(server, token, 'GET', `/service-accounts/${t.account.id}`, undefined, 200),
      rs: await expectApi(server, token, 'GET', `/resource-servers/${t.rs.id}`, undefined, 200),
      client: await expectApi(server, token, 'GET', `/clients/${t.client.client_id}`, undefined, 200),
      organization: await expectApi(server, token, 'GET', '/organization', undefined, 200),
      iats: await expectApi(server, token, 'GET', '/initial-access-tokens', undefined, 200),
      sat: await expectApi(server, token, 'GET', `/tokens/${t.sat.id}`, undefined, 200),
      webhook: await expectApi(server, token, 'GET', `/webhooks/${t.webhook.id}`, undefined, 200),
    };
  }

  beforeAll(async () => {
    server = await startTestServer(backend);
    a = await tenant();
    b = await tenant();
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** B's object for each id route, by the collection it belongs to. */
  const objectOf = (t: Tenant): Record<string, string> => ({
    '/users': t.user.id,
    '/service-accounts': t.account.id,
    '/resource-servers': t.rs.id,
    '/clients': t.client.client_id,
    '/initial-access-tokens': t.iat.id,
    '/tokens': t.sat.id,
    '/webhooks': t.webhook.id,
  });

  /** A body the route accepts, so that validation cannot answer before the ownership check. */
  const validBody: Record<string, unknown> = {
    'PATCH /users/{id}': { name: 'Renamed by A' },
    'PUT /users/{id}/password': { password: 'set-by-another-organization' },
    'PATCH /service-accounts/{id}': { status: 'disabled' },
    'PATCH /resource-servers/{id}': { name: 'Renamed by A', sensitive: true },
    'POST /resource-servers/{id}/credentials': {},
    'PATCH /clients/{id}': { name: 'Renamed by A' },
    'POST /clients/{id}/secret': {},
    'PATCH /webhooks/{id}': { url: 'https://attacker.example.com/hook' },
    'POST /webhooks/{id}/secret': {},
  };

  it('answers every id route with 404 for the other organization\'s objects, as for ids that never existed', async () => {
    const before = await snapshot(b);
    const routes: Route[] = server.tessera.management.routes.filter((r: Route) => r.path.includes('{id}'));
    expect(routes.length).toBeGreaterThanOrEqual(15);
    const targets = objectOf(b);
    const tried: string[] = [];
    for (const route of routes) {
      const collection = Object.keys(targets).find((prefix) => route.path.startsWith(`${prefix}/`));
      expect(collection, `add ${route.method} ${route.path} to the isolation matrix`).toBeDefined();
      const key = `${route.method} ${route.path}`;
      const body = route.method === 'GET' || route.method === 'DELETE' ? undefined : validBody[key] ?? {};
      const theirs = await api(server, a.org.managementToken, route.method, route.path.replace('{id}', encodeURIComponent(targets[collection!]!)), body);
      const nobody = await api(server, a.org.managementToken, route.method, route.path.replace('{id}', `${targets[collection!]!.split('_')[0]}_doesnotexist`), body);
      expect(theirs.status, `${key}: ${theirs.text}`).toBe(404);
      expect(theirs.headers.get('content-type')).toContain('application/problem+json');
      // Indistinguishable from an id that does not exist: same status, same document.
      expect(theirs.body, key).toEqual(nobody.body);
      tried.push(key);
    }
    expect(tried).toEqual(expect.arrayContaining(['DELETE /users/{id}', 'DELETE /clients/{id}', 'POST /clients/{id}/secret', 'DELETE /resource-servers/{id}', 'POST /resource-servers/{id}/credentials']));
    // Nothing of B changed.
    expect(await snapshot(b)).toEqual(before);
    // B's client still authenticates with the secret it had (A's rotation attempt did nothing).
    const tokens = await clientCredentials(server, b.client.client_id, b.client.client_secret, { resource: b.rs.identifier, scope: 'things:read' });
    expect(tokens.status).toBe(200);
    expect((await introspect(server, b.rs.introspection_client_id, b.rs.introspection_client_secret, tokens.body.access_token)).body.active).toBe(true);
  });

  it('lists none of the other organization\'s objects on any list route', async () => {
    const routes: Route[] = server.tessera.management.routes.filter((r: Route) => r.method === 'GET' && !r.path.includes('{') && r.scope !== null && r.scope !== 'organizations:admin');
    expect(routes.map((r) => r.path)).toEqual(expect.arrayContaining(['/users', '/service-accounts', '/resource-servers', '/clients', '/initial-access-tokens', '/organization']));
    const secretsOfB = [b.org.id, b.user.id, b.account.id, b.rs.id, b.rs.identifier, b.client.client_id, b.iat.id, b.rs.introspection_client_id];
    for (const route of routes) {
      const mine = await api(server, a.org.managementToken, 'GET', route.path);
      expect(mine.status, `${route.path}: ${mine.text}`).toBe(200);
      for (const value of secretsOfB) expect(mine.text, `${route.path} reveals ${value}`).not.toContain(value);
      // The same listing shows A's own objects, so this is not vacuously empty.
      if (route.path !== '/audit-events') expect(mine.text.length).toBeGreaterThan(20);
    }
    const users = await expectApi(server, a.org.managementToken, 'GET', '/users', undefined, 200);
    expect(users.items.map((u: any) => u.id)).toContain(a.user.id);
  });

  it('refuses to create objects that reference the other organization\'s objects, as if they did not exist', async () => {
    const token = a.org.managementToken;
    const viaResource = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['things:read'], resources: [b.rs.identifier] });
    const viaUnknown = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], scopes: ['things:read'], resources: ['https://never-registered.example.test'] });
    expect(viaResource.status).toBe(422);
    expect(viaResource.body.errors).toEqual(viaUnknown.body.errors);
    const viaAccount = await api(server, token, 'POST', '/clients', { name: 'x', grant_types: ['client_credentials'], service_account_id: b.account.id });
    expect(viaAccount.status).toBe(422);
    expect(viaAccount.body.errors[0]).toEqual({ field: 'service_account_id', message: 'no such service account in this organization' });
    const iat = await api(server, token, 'POST', '/initial-access-tokens', { resources: [b.rs.identifier] });
    expect(iat.status).toBe(422);
    const patch = await api(server, token, 'PATCH', `/clients/${a.client.client_id}`, { resources: [a.rs.identifier, b.rs.identifier] });
    expect(patch.status).toBe(422);
    expect(patch.body.errors[0].field).toBe('resources.1');
  });

  it('never lets a token of one organization reach the other\'s APIs or introspection', async () => {
    // A's client asking for B's API is refused like an unknown API.
    const cross = await clientCredentials(server, a.client.client_id, a.client.client_secret, { resource: b.rs.identifier, scope: 'things:read' });
    expect(cross.status).toBe(400);
    expect(cross.body.error).toBe('invalid_target');
    // A token of A, introspected by B's API, is inactive and says nothing more.
    const tokens = await clientCredentials(server, a.client.client_id, a.client.client_secret, { resource: a.rs.identifier, scope: 'things:read' });
    expect(tokens.status).toBe(200);
    expect((await introspect(server, b.rs.introspection_client_id, b.rs.introspection_client_secret, tokens.body.access_token)).body).toEqual({ active: false });
    // Dynamic registration with B's initial access token lands in B, whatever the body claims.
    const reg = await fetch(`${server.url}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${b.iat.token}` },
      body: JSON.stringify({ grant_types: ['client_credentials'], tessera_organization_id: a.org.id, resources: [a.rs.identifier] }),
    });
    expect(reg.status).toBe(400);
    expect((await reg.json()).error).toBe('invalid_client_metadata');
  });

  it('refuses a platform call from an organization\'s own management token', async () => {
    const response = await api(server, a.org.managementToken, 'GET', '/organizations');
    expect(response.status).toBe(403);
  });
});
