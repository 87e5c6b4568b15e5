/**
 * Client secret rotation with a grace period, on oidc-provider's /token and Tessera's own
 * introspection: after rotation both secrets work until the organization's
 * client_secret_rotation_grace_seconds have passed, then only the new one; a wrong secret never
 * works; with a grace of 0 the old secret stops at once. Secrets are stored encrypted, never in
 * plain text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backendsByName, createTestClock, postgresRedisSkipReason } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, createResourceServer, expectApi, introspect } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

// One backend (the production one when reachable) keeps this file well under a minute; the
// walkthrough rotates a secret on both.
const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

{
  describe(`client secret rotation on ${backend.name}`, () => {
    const clock = createTestClock();
    let server: TestServer;
    let org: CreatedOrganization;
    let rs: any;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { clock });
      org = await createOrganization(server, server.managementToken);
      rs = await createResourceServer(server, org.managementToken, { token_format: 'opaque' });
    });
    afterAll(async () => {
      await server?.stop();
    });

    const grant = (clientId: string, secret: string, method: 'basic' | 'post') =>
      clientCredentials(server, clientId, secret, { resource: rs.identifier, scope: 'things:read' }, method);

    it('keeps the previous secret valid on /token for the grace period, for basic and post', async () => {
      const client = await createClient(server, org.managementToken, { scopes: ['things:read'], resources: [rs.identifier] });
      const rotated = await expectApi(server, org.managementToken, 'POST', `/clients/${client.client_id}/secret`, {}, 200);
      expect(rotated.client_secret).not.toBe(client.client_secret);
      expect(Date.parse(rotated.previous_secret_expires_at) - clock.now()).toBe(86400 * 1000);

      for (const method of ['basic', 'post'] as const) {
        expect((await grant(client.client_id, client.client_secret, method)).status, `old secret, ${method}`).toBe(200);
        expect((await grant(client.client_id, rotated.client_secret, method)).status, `new secret, ${method}`).toBe(200);
        const wrong = await grant(client.client_id, `${client.client_secret}x`, method);
        expect(wrong.status).toBe(401);
        expect(wrong.body.error).toBe('invalid_client');
      }
      // The token obtained with the old secret is an ordinary token of the client.
      const viaOld = await grant(client.client_id, client.client_secret, 'post');
      expect((await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, viaOld.body.access_token)).body).toMatchObject({ active: true, client_id: client.client_id });

      clock.advance(86400 * 1000 + 1000);
      for (const method of ['basic', 'post'] as const) {
        expect((await grant(client.client_id, client.client_secret, method)).status, `old secret after grace, ${method}`).toBe(401);
        expect((await grant(client.client_id, rotated.client_secret, method)).status).toBe(200);
      }
      // Rotating again gives a grace period to the secret in use, not to the long-dead one.
      const again = await expectApi(server, org.managementToken, 'POST', `/clients/${client.client_id}/secret`, {}, 200);
      expect((await grant(client.client_id, client.client_secret, 'basic')).status).toBe(401);
      expect((await grant(client.client_id, rotated.client_secret, 'basic')).status).toBe(200);
      expect((await grant(client.client_id, again.client_secret, 'basic')).status).toBe(200);
    });

    it('ends the old secret at once when the organization\'s grace is 0', async () => {
      const other = await createOrganization(server, server.managementToken);
      await expectApi(server, other.managementToken, 'PATCH', '/organization', { policy: { client_secret_rotation_grace_seconds: 0 } }, 200);
      const otherRs = await createResourceServer(server, other.managementToken);
      const client = await createClient(server, other.managementToken, { scopes: ['things:read'], resources: [otherRs.identifier] });
      const rotated = await expectApi(server, other.managementToken, 'POST', `/clients/${client.client_id}/secret`, {}, 200);
      expect(rotated.previous_secret_expires_at).toBeNull();
      const old = await clientCredentials(server, client.client_id, client.client_secret, { resource: otherRs.identifier });
      expect(old.status).toBe(401);
      expect((await clientCredentials(server, client.client_id, rotated.client_secret, { resource: otherRs.identifier })).status).toBe(200);
    });

    it('rotates introspection credentials with the same grace, and refuses rotation for clients without a secret', async () => {
      // The engine stamps tokens with the real time while this server's clock has moved on, so
      // authentication is checked on its own: 200 (an answer) versus 401 (invalid_client).
      const token = 'not-a-token-of-this-server';
      const rotated = await expectApi(server, org.managementToken, 'POST', `/resource-servers/${rs.id}/credentials`, {}, 200);
      expect(rotated.introspection_client_id).toBe(rs.introspection_client_id);
      expect((await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, token)).status).toBe(200);
      expect((await introspect(server, rs.introspection_client_id, rotated.introspection_client_secret, token)).status).toBe(200);
      expect((await introspect(server, rs.introspection_client_id, 'wrong-secret', token)).status).toBe(401);
      clock.advance(86400 * 1000 + 1000);
      expect((await introspect(server, rs.introspection_client_id, rs.introspection_client_secret, token)).status).toBe(401);
      expect((await introspect(server, rs.introspection_client_id, rotated.introspection_client_secret, token)).status).toBe(200);
      const client = await createClient(server, org.managementToken, { scopes: ['things:read'], resources: [rs.identifier] });
      rs.introspection_client_secret = rotated.introspection_client_secret;

      const publicClient = await createClient(server, org.managementToken, {
        grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1/callback'], scopes: ['openid'],
      });
      expect(publicClient.client_secret).toBeUndefined();
      expect((await api(server, org.managementToken, 'POST', `/clients/${publicClient.client_id}/secret`, {})).status).toBe(409);
      // Rotation takes an empty body and nothing else.
      expect((await api(server, org.managementToken, 'POST', `/clients/${client.client_id}/secret`, { grace: 5 })).status).toBe(422);
    });

    it('stores secrets encrypted, never in plain text', async () => {
      const client = await createClient(server, org.managementToken, { scopes: ['things:read'], resources: [rs.identifier] });
      await expectApi(server, org.managementToken, 'POST', `/clients/${client.client_id}/secret`, {}, 200);
      const { rows } = await server.tessera.db.query<Record<string, unknown>>('SELECT * FROM clients WHERE client_id = $1', [client.client_id]);
      const stored = JSON.stringify(rows[0]);
      expect(rows[0]!.secret_enc).toEqual(expect.any(String));
      expect(rows[0]!.previous_secret_enc).toEqual(expect.any(String));
      expect(stored).not.toContain(client.client_secret);
    });
  });
}
