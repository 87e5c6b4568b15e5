/**
 * One client authentication for every endpoint (src/oidc/client-authenticator.ts): what the
 * engine's /token accepts or refuses, Tessera's introspection and revocation accept or refuse
 * alike — one assertion store, one method rule, one previous-secret grace with its audit event.
 */
import { randomUUID } from 'node:crypto';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sealNewSecret } from '../../src/domain/client-secrets.js';
import { createTestClock } from '../helpers/backends.js';
import { clientCredentials, createClient, createOrganization, createResourceServer, expectApi } from '../helpers/management.js';
import type { CreatedOrganization } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** A JWT-shaped value: Tessera's own endpoints answer it (inactive), so they authenticate the caller themselves. */
const FOREIGN_JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

describe('one client authentication on pglite+memory', () => {
  const clock = createTestClock();
  let server: TestServer;
  let org: CreatedOrganization;
  let rs: any;

  beforeAll(async () => {
    server = await startTestServer('pglite+memory', { clock });
    org = await createOrganization(server, server.managementToken);
    rs = await createResourceServer(server, org.managementToken);
  });
  afterAll(async () => {
    await server?.stop();
  });

  const post = async (path: string, form: Record<string, string>, basic?: [string, string]) => {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (basic) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(basic[0])}:${encodeURIComponent(basic[1])}`).toString('base64')}`;
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers, body: new URLSearchParams(form) });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
  };

  async function keyClient(secret = false) {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const clientId = `pkjwt-${randomUUID().slice(0, 8)}`;
    const sealed = secret ? sealNewSecret(server.tessera.envelope, clientId) : undefined;
    await server.tessera.repos.clients.insert({
      client_id: clientId,
      organization_id: org.id,
      kind: 'oauth',
      name: clientId,
      resource_server_id: null,
      service_account_id: null,
      metadata: { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] } },
      allowed_scopes: ['things:read'],
      allowed_resources: [rs.identifier],
      secret_enc: sealed?.sealed ?? null,
      registration: false,
    });
    return { clientId, privateKey, secret: sealed?.secret };
  }

  const assertionOf = (clientId: string, privateKey: CryptoKey) =>
    new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer(clientId).setSubject(clientId).setAudience(server.url).setJti(randomUUID()).setIssuedAt().setExpirationTime('1m').sign(privateKey);

  it('accepts a client assertion once across /token, introspection and revocation', async () => {
    const { clientId, privateKey } = await keyClient();
    const grant = (assertion: string) => post('/token', { grant_type: 'client_credentials', resource: rs.identifier, scope: 'things:read', client_assertion_type: JWT_BEARER, client_assertion: assertion });
    const introspect = (assertion: string) => post('/token/introspection', { token: FOREIGN_JWT, client_assertion_type: JWT_BEARER, client_assertion: assertion });
    const revoke = (assertion: string) => post('/token/revocation', { token: FOREIGN_JWT, client_assertion_type: JWT_BEARER, client_assertion: assertion });

    // Used at /token first: refused at introspection and revocation.
    const first = await assertionOf(clientId, privateKey);
    expect((await grant(first)).status).toBe(200);
    expect(await introspect(first)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect((await revoke(first)).status).toBe(401);

    // Used at introspection first: refused at /token and revocation.
    const second = await assertionOf(clientId, privateKey);
    expect(await introspect(second)).toEqual({ status: 200, body: { active: false } });
    expect(await grant(second)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect((await revoke(second)).status).toBe(401);
    expect((await introspect(second)).status).toBe(401);
  });

  it('refuses a mechanism of another class than the registered one, at /token and introspection alike', async () => {
    // A private_key_jwt client that also holds a secret: the secret is not how it authenticates.
    const { clientId, secret } = await keyClient(true);
    for (const method of ['basic', 'post'] as const) {
      const token = await clientCredentials(server, clientId, secret!, { resource: rs.identifier, scope: 'things:read' }, method);
      expect(token, `/token ${method}`).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    }
    expect(await post('/token/introspection', { token: FOREIGN_JWT }, [clientId, secret!])).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await post('/token/introspection', { token: FOREIGN_JWT, client_id: clientId, client_secret: secret! })).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect((await post('/token/revocation', { token: FOREIGN_JWT }, [clientId, secret!])).status).toBe(401);

    // The engine lets a client registered for client_secret_post present its secret in the Basic
    // header too (either secret presentation for either secret method): so does introspection.
    const poster = await createClient(server, org.managementToken, { token_endpoint_auth_method: 'client_secret_post', scopes: ['things:read'], resources: [rs.identifier] });
    expect((await clientCredentials(server, poster.client_id, poster.client_secret, { resource: rs.identifier, scope: 'things:read' }, 'basic')).status).toBe(200);
    expect(await post('/token/introspection', { token: FOREIGN_JWT }, [poster.client_id, poster.client_secret])).toEqual({ status: 200, body: { active: false } });
  });

  it('audits every use of a previous secret within its grace, at introspection and revocation too', async () => {
    const rotated = await expectApi(server, org.managementToken, 'POST', `/resource-servers/${rs.id}/credentials`, {}, 200);
    const old: [string, string] = [rs.introspection_client_id, rs.introspection_client_secret];
    expect(await post('/token/introspection', { token: FOREIGN_JWT }, old)).toEqual({ status: 200, body: { active: false } });
    expect(await post('/token/introspection', { token: FOREIGN_JWT, client_id: old[0], client_secret: old[1] })).toEqual({ status: 200, body: { active: false } });
    expect((await post('/token/revocation', { token: FOREIGN_JWT }, old)).status).toBe(200);
    // The current secret is no previous-secret use.
    expect((await post('/token/introspection', { token: FOREIGN_JWT }, [rs.introspection_client_id, rotated.introspection_client_secret])).status).toBe(200);
    await server.tessera.audit.flush();
    const events = await expectApi(server, org.managementToken, 'GET', '/audit-events?action=client.previous_secret_used&limit=100', undefined, 200);
    const uses = (events.items ?? events.data ?? events) as Array<{ actor: { id: string }; details: { method: string } }>;
    expect(uses.filter((e) => e.actor.id === rs.introspection_client_id).map((e) => e.details.method).sort()).toEqual(['client_secret_basic', 'client_secret_basic', 'client_secret_post']);
  });
});
