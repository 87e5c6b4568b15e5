/**
 * The walkthrough of docs/management-api.md, through HTTP only, on every backend: from the bootstrap token of a
 * fresh install, create an organization, its API, a service account and a confidential client;
 * get a client-credentials token with openid-client; introspect it with the API's credentials.
 * Then a client registered dynamically with an initial access token does the same.
 */
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { clientCredentials, createOrganization, expectApi, introspect, uniqueName } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

for (const backend of backends) {
  describe(`Management API walkthrough on ${backend.name}`, () => {
    let server: TestServer;

    // A cold embedded start (WASM compile, migrations, key generation, password hashing) has
    // been measured at over a minute on a loaded two-core machine; it is not what is tested here.
    beforeAll(async () => {
      server = await startTestServer(backend.name);
    }, 150_000);
    afterAll(async () => {
      await server?.stop();
    });

    const discover = (clientId: string, secret: string) =>
      oidc.discovery(new URL(server.url), clientId, undefined, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] });

    it('creates an organization, API, service account and client, then issues and introspects a token', async () => {
      const org = await createOrganization(server, server.managementToken);
      const token = org.managementToken;
      const identifier = `https://${uniqueName('orders')}.example.test`;
      const rs = await expectApi(server, token, 'POST', '/resource-servers', {
        identifier,
        name: 'Orders',
        scopes: ['orders:read', { name: 'orders:write', description: 'Place orders' }],
        token_format: 'jwt',
        access_token_ttl: 300,
        sensitive: false,
      }, 201);
      expect(rs).toMatchObject({ identifier, token_format: 'jwt', access_token_ttl: 300, sensitive: false });
      expect(rs.scopes).toEqual([{ name: 'orders:read' }, { name: 'orders:write', description: 'Place orders' }]);
      expect(rs.introspection_client_secret).toEqual(expect.any(String));

      const account = await expectApi(server, token, 'POST', '/service-accounts', { name: 'order-sync' }, 201);
      expect(account).toMatchObject({ name: 'order-sync', status: 'active' });

      const created = await expectApi(server, token, 'POST', '/clients', {
        name: 'Order sync',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
        scopes: ['orders:read'],
        resources: [identifier],
        service_account_id: account.id,
      }, 201);
      expect(created.client_secret).toEqual(expect.any(String));
      // The secret is shown once: reading the client back never returns it.
      const read = await expectApi(server, token, 'GET', `/clients/${created.client_id}`, undefined, 200);
      expect(read.client_secret).toBeUndefined();
      expect(JSON.stringify(read)).not.toContain(created.client_secret);

      const config = await discover(created.client_id, created.client_secret);
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource: identifier });
      expect(tokens.scope).toBe('orders:read');
      expect(tokens.expires_in).toBeLessThanOrEqual(300);

      const answer = await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, tokens.access_token);
      expect(answer.body).toMatchObject({ active: true, aud: identifier, scope: 'orders:read', sub: created.client_id, client_id: created.client_id, org_id: org.id });

      // Rotation: the new secret works at once, the old one through the grace period.
      const rotated = await expectApi(server, token, 'POST', `/clients/${created.client_id}/secret`, {}, 200);
      expect((await clientCredentials(server, created.client_id, rotated.client_secret, { resource: identifier })).status).toBe(200);
      expect((await clientCredentials(server, created.client_id, created.client_secret, { resource: identifier }, 'post')).status).toBe(200);
      expect((await clientCredentials(server, created.client_id, 'not-the-secret', { resource: identifier })).status).toBe(401);

      // A scope the client was not given is not granted.
      const denied = await clientCredentials(server, created.client_id, created.client_secret, { scope: 'orders:write', resource: identifier });
      const deniedAnswer = await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, denied.body.access_token ?? 'none');
      expect(String(deniedAnswer.body.scope ?? '')).not.toContain('orders:write');
    });

    it('registers a client dynamically with an initial access token; it gets at most the token\'s scopes and completes client credentials', async () => {
      const org = await createOrganization(server, server.managementToken);
      const identifier = `https://${uniqueName('billing')}.example.test`;
      const rs = await expectApi(server, org.managementToken, 'POST', '/resource-servers', { identifier, scopes: ['billing:read', 'billing:write'], token_format: 'opaque' }, 201);
      const iat = await expectApi(server, org.managementToken, 'POST', '/initial-access-tokens', { expires_in: 600, scopes: ['billing:read'], resources: [identifier] }, 201);
      expect(iat.token).toMatch(/^tsr_iat_/);
      expect(Date.parse(iat.expires_at)).toBeGreaterThan(Date.now());

      const register = (body: unknown, bearer = iat.token) =>
        fetch(`${server.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` }, body: JSON.stringify(body) });

      // Asking for more than the token allows is refused.
      const wider = await register({ grant_types: ['client_credentials'], scope: 'billing:read billing:write', resources: [identifier] });
      expect(wider.status).toBe(400);
      expect((await wider.json()).error).toBe('invalid_client_metadata');
      // Without a valid initial access token, nothing is registered.
      const anonymous = await register({ grant_types: ['client_credentials'] }, 'tsr_iat_not-a-real-token');
      expect(anonymous.status).toBe(401);
      // Tessera's own members cannot be set by the registrant.
      const response = await register({
        client_name: 'Billing agent',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_post',
        resources: [identifier],
        tessera_organization_id: 'org_someone_else',
      });
      expect(response.status).toBe(201);
      const registered = await response.json();
      expect(registered).toMatchObject({ client_name: 'Billing agent', scope: 'billing:read', resources: [identifier] });
      expect(Object.keys(registered).some((k) => k.startsWith('tessera_'))).toBe(false);
      expect(registered.registration_access_token).toEqual(expect.any(String));

      // It landed in the organization of the initial access token.
      const listed = await expectApi(server, org.managementToken, 'GET', `/clients/${registered.client_id}`, undefined, 200);
      expect(listed).toMatchObject({ dynamically_registered: true, scopes: ['billing:read'], resources: [identifier] });

      const config = await oidc.discovery(new URL(server.url), registered.client_id, undefined, oidc.ClientSecretPost(registered.client_secret), { execute: [oidc.allowInsecureRequests] });
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'billing:read', resource: identifier });
      const answer = await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, tokens.access_token);
      expect(answer.body).toMatchObject({ active: true, aud: identifier, scope: 'billing:read', client_id: registered.client_id });

      // RFC 7592: read, then update within the limits (the access token rotates), then delete.
      const rat = registered.registration_access_token as string;
      const readBack = await fetch(registered.registration_client_uri, { headers: { authorization: `Bearer ${rat}` } });
      expect(readBack.status).toBe(200);
      const update = await fetch(registered.registration_client_uri, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${rat}` },
        body: JSON.stringify({ client_id: registered.client_id, client_name: 'Billing agent 2', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post', scope: 'billing:read billing:write', resources: [identifier] }),
      });
      expect(update.status).toBe(400);
      const okUpdate = await fetch(registered.registration_client_uri, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${rat}` },
        body: JSON.stringify({ client_id: registered.client_id, client_name: 'Billing agent 2', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post', resources: [identifier] }),
      });
      expect(okUpdate.status).toBe(200);
      const updated = await okUpdate.json();
      expect(updated).toMatchObject({ client_name: 'Billing agent 2', scope: 'billing:read' });
      expect(updated.registration_access_token).not.toBe(rat);
      const removed = await fetch(registered.registration_client_uri, { method: 'DELETE', headers: { authorization: `Bearer ${updated.registration_access_token}` } });
      expect(removed.status).toBe(204);
      await expectApi(server, org.managementToken, 'GET', `/clients/${registered.client_id}`, undefined, 404);
    });

  });
}
