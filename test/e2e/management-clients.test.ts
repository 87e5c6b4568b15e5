/**
 * Client kinds for real deployments (private_key_jwt with inline keys, public clients with
 * PKCE), the audit trail of Management API changes, and the operator CLI. Storage-independent,
 * so on one backend (the production one when reachable); the walkthrough covers both.
 */
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { verifyPassword } from '../../src/domain/passwords.js';
import { organizationsCommand, usersCommand } from '../../src/operator-commands.js';
import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import { createOrganization, expectApi, uniqueName } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

describe(`clients, audit and CLI on ${backend.name}`, () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(backend.name);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('authenticates a private_key_jwt client with its inline JWKS, and requires PKCE of public clients', async () => {
    const org = await createOrganization(server, server.managementToken);
    const identifier = `https://${uniqueName('keys')}.example.test`;
    await expectApi(server, org.managementToken, 'POST', '/resource-servers', { identifier, scopes: ['jobs:run'] }, 201);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const created = await expectApi(server, org.managementToken, 'POST', '/clients', {
      name: 'Signed', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] }, scopes: ['jobs:run'], resources: [identifier],
    }, 201);
    expect(created.client_secret).toBeUndefined();
    const config = await oidc.discovery(new URL(server.url), created.client_id, undefined, oidc.PrivateKeyJwt({ key: privateKey, kid: 'k1' }), { execute: [oidc.allowInsecureRequests] });
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'jobs:run', resource: identifier });
    expect(tokens.scope).toBe('jobs:run');

    const spa = await expectApi(server, org.managementToken, 'POST', '/clients', {
      name: 'CLI', grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1:8765/callback'], scopes: ['openid', 'offline_access'],
    }, 201);
    expect(spa.client_secret).toBeUndefined();
    const authorize = (extra: Record<string, string>) =>
      fetch(`${server.url}/auth?${new URLSearchParams({ client_id: spa.client_id, response_type: 'code', redirect_uri: 'http://127.0.0.1:8765/callback', scope: 'openid', ...extra })}`, { redirect: 'manual' });
    const withoutPkce = await authorize({});
    const location = new URL(withoutPkce.headers.get('location') ?? '', server.url);
    expect(location.origin + location.pathname).toBe('http://127.0.0.1:8765/callback');
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
    const withPkce = await authorize({ code_challenge: oidc.randomPKCECodeVerifier().slice(0, 43), code_challenge_method: 'S256' });
    expect(new URL(withPkce.headers.get('location') ?? '', server.url).searchParams.get('error')).toBeNull();
  });

  it('audits every change with a before/after diff and no secret', async () => {
    const org = await createOrganization(server, server.managementToken);
    const rs = await expectApi(server, org.managementToken, 'POST', '/resource-servers', { identifier: `https://${uniqueName('audited')}.example.test`, scopes: ['a:b'] }, 201);
    const created = await expectApi(server, org.managementToken, 'POST', '/clients', { name: 'Audited', grant_types: ['client_credentials'], scopes: ['a:b'], resources: [rs.identifier] }, 201);
    await expectApi(server, org.managementToken, 'PATCH', `/clients/${created.client_id}`, { name: 'Audited 2' }, 200);
    const rotated = await expectApi(server, org.managementToken, 'POST', `/clients/${created.client_id}/secret`, {}, 200);
    await server.tessera.audit.flush();
    const events = await expectApi(server, org.managementToken, 'GET', '/audit-events?limit=100', undefined, 200);
    const actions = events.items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['resource_server.created', 'client.created', 'client.updated', 'client.secret_rotated']));
    const update = events.items.find((e: { action: string }) => e.action === 'client.updated');
    expect(update.details.changes.name).toEqual({ before: 'Audited', after: 'Audited 2' });
    expect(update.target).toEqual({ type: 'client', id: created.client_id });
    const trail = JSON.stringify(events);
    for (const secret of [created.client_secret, rotated.client_secret, rs.introspection_client_secret]) expect(trail).not.toContain(secret);
  });

  it('lets an operator create an organization and users, and reset a password, from the command line', async () => {
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t), readStdin: async () => 'a-password-from-stdin\n' };
    const name = uniqueName('cli-org');
    expect(await organizationsCommand(server.tessera, ['create', name, '--owner', 'root', '--json'], io)).toBe(0);
    const created = JSON.parse(lines.join(''));
    expect(created).toMatchObject({ name, owner: { username: 'root', password: expect.any(String) }, management_token: expect.stringMatching(/^tsr_sat_/) });
    expect((await api(server, created.management_token, 'GET', '/organization')).body.name).toBe(name);
    lines.length = 0;
    expect(await usersCommand(server.tessera, ['create', 'dana', '--organization', name, '--role', 'admin', '--json'], io)).toBe(0);
    const dana = JSON.parse(lines.join(''));
    expect(dana).toMatchObject({ username: 'dana', role: 'admin', password: expect.any(String) });
    expect(await usersCommand(server.tessera, ['reset-password', 'dana', '--organization', created.id, '--password-stdin'], io)).toBe(0);
    const stored = await server.tessera.repos.users.findById(dana.id);
    expect(await verifyPassword('a-password-from-stdin', stored!.password_hash)).toBe(true);
    expect(await verifyPassword(dana.password, stored!.password_hash)).toBe(false);
    await expect(usersCommand(server.tessera, ['create', 'dana', '--organization', name], io)).rejects.toThrow(/exists already/);
    expect(await usersCommand(server.tessera, ['create', 'eve'], io)).toBe(2);
  });
});
