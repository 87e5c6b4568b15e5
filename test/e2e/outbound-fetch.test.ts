/**
 * Outbound fetch protection (src/outbound): a URL Tessera fetches for a client (jwks_uri,
 * sector_identifier_uri) may not point into the installation's own networks. Refused when it is
 * set, through the Management API (422 naming the field) and RFC 7591 registration
 * (invalid_client_metadata); and again when the engine fetches it, so a URL stored before, or a
 * name whose DNS answer changed since, never opens a connection. An operator allows internal
 * hosts with TESSERA_OUTBOUND_ALLOWED_HOSTS.
 *
 * A plain TCP listener on 127.0.0.1 stands in for an internal service: it counts connections,
 * which is what a blind SSRF needs to succeed. Storage-independent, so on one backend (the
 * production one when reachable).
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backendsByName, postgresRedisSkipReason } from '../helpers/backends.js';
import { createOrganization, expectApi, uniqueName } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { newId } from '../../src/storage/ids.js';

const backend = backendsByName[postgresRedisSkipReason ? 'pglite+memory' : 'postgres+redis'];

interface Listener {
  port: number;
  connections: number;
  close(): Promise<void>;
}

/** A TCP listener that only counts connections and closes them. */
async function listen(): Promise<Listener> {
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get connections() {
      return state.connections;
    },
    close: () => new Promise<void>((resolve) => {
      sockets.forEach((s) => s.destroy());
      server.close(() => resolve());
    }),
  };
}

async function keyPair() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' } };
}

/** An RFC 7523 client assertion for /token. */
async function assertion(server: TestServer, clientId: string, privateKey: CryptoKey) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(server.url)
    .setJti(uniqueName('jti'))
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(privateKey);
}

async function tokenWithAssertion(server: TestServer, clientId: string, privateKey: CryptoKey, resource: string) {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion(server, clientId, privateKey),
      resource,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe(`outbound fetch protection on ${backend.name}`, () => {
  let server: TestServer;
  let allowing: TestServer;
  let internal: Listener;

  beforeAll(async () => {
    internal = await listen();
    server = await startTestServer(backend.name);
    allowing = await startTestServer(backend.name, { env: { TESSERA_OUTBOUND_ALLOWED_HOSTS: 'localhost' } });
  });
  afterAll(async () => {
    await server?.stop();
    await allowing?.stop();
    await internal?.close();
  });

  async function organizationWithApi(target: TestServer) {
    const org = await createOrganization(target, target.managementToken);
    const identifier = `https://${uniqueName('jobs')}.example.test`;
    await expectApi(target, org.managementToken, 'POST', '/resource-servers', { identifier, scopes: ['jobs:run'] }, 201);
    return { org, identifier };
  }

  it('refuses a jwks_uri on a loopback, private, link-local or metadata address at the Management API, in every spelling', async () => {
    const { org, identifier } = await organizationWithApi(server);
    const base = { name: 'Keys elsewhere', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', scopes: ['jobs:run'], resources: [identifier] };
    const internalUris = [
      `https://127.0.0.1:${internal.port}/jwks`,
      // A name that resolves to loopback (/etc/hosts), not only a literal address.
      `https://localhost:${internal.port}/jwks`,
      `https://[::1]:${internal.port}/jwks`,
      `https://[::ffff:127.0.0.1]:${internal.port}/jwks`,
      `https://0x7f000001:${internal.port}/jwks`,
      `https://2130706433:${internal.port}/jwks`,
      `https://127.1:${internal.port}/jwks`,
      'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'https://10.0.0.8/jwks',
      'https://[fd00::1]/jwks',
    ];
    for (const jwks_uri of internalUris) {
      const refused = await api(server, org.managementToken, 'POST', '/clients', { ...base, jwks_uri });
      expect(refused.status, jwks_uri).toBe(422);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refused.body.errors, jwks_uri).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'jwks_uri', message: expect.stringMatching(/internal|loopback|private/) })]));
    }

    // PATCH cannot move an existing client's keys there either.
    const { jwk } = await keyPair();
    const created = await expectApi(server, org.managementToken, 'POST', '/clients', { ...base, jwks: { keys: [jwk] } }, 201);
    const patched = await api(server, org.managementToken, 'PATCH', `/clients/${created.client_id}`, { jwks_uri: `https://localhost:${internal.port}/jwks` });
    expect(patched.status).toBe(422);
    expect(patched.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'jwks_uri' })]));
    expect(internal.connections).toBe(0);
  });

  it('refuses internal jwks_uri and sector_identifier_uri at RFC 7591 registration without connecting', async () => {
    const { org, identifier } = await organizationWithApi(server);
    const iat = await expectApi(server, org.managementToken, 'POST', '/initial-access-tokens', { expires_in: 600, scopes: ['jobs:run'], resources: [identifier] }, 201);
    const register = (body: Record<string, unknown>) =>
      fetch(`${server.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${iat.token}` }, body: JSON.stringify(body) });

    const jwksUri = await register({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://169.254.169.254/latest/meta-data/' });
    expect(jwksUri.status).toBe(400);
    const jwksError = await jwksUri.json();
    expect(jwksError.error).toBe('invalid_client_metadata');
    expect(jwksError.error_description).toMatch(/^jwks_uri: /);

    const sector = await register({
      grant_types: ['authorization_code'], redirect_uris: ['https://rp.example.test/cb'], sector_identifier_uri: `https://localhost:${internal.port}/sector.json`,
    });
    expect(sector.status).toBe(400);
    const sectorError = await sector.json();
    expect(sectorError.error).toBe('invalid_client_metadata');
    expect(sectorError.error_description).toMatch(/^sector_identifier_uri: /);
    expect(internal.connections).toBe(0);
  });

  it('never connects to an internal jwks_uri stored before (or whose name now resolves inside): /token answers invalid_client', async () => {
    const { org, identifier } = await organizationWithApi(server);
    const { privateKey } = await keyPair();
    // As if it had been registered before this check existed, or its name had since moved.
    const clientId = newId('cl');
    await server.tessera.repos.clients.insert({
      client_id: clientId,
      organization_id: org.id,
      kind: 'oauth',
      name: 'Stored before',
      resource_server_id: null,
      service_account_id: null,
      metadata: { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `https://localhost:${internal.port}/jwks` },
      allowed_scopes: ['jobs:run'],
      allowed_resources: [identifier],
      secret_enc: null,
      registration: false,
    });
    const before = internal.connections;
    const answer = await tokenWithAssertion(server, clientId, privateKey, identifier);
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
    expect(internal.connections - before).toBe(0);
  });

  it('lets an operator allow an internal host explicitly: accepted at create, and fetched from', async () => {
    const { org, identifier } = await organizationWithApi(allowing);
    const { privateKey } = await keyPair();
    const created = await expectApi(allowing, org.managementToken, 'POST', '/clients', {
      name: 'Internal keys', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', scopes: ['jobs:run'], resources: [identifier],
      jwks_uri: `https://localhost:${internal.port}/jwks`,
    }, 201);
    expect(created.jwks_uri).toBe(`https://localhost:${internal.port}/jwks`);
    // Only the host named: the same address under another spelling is still refused.
    const literal = await api(allowing, org.managementToken, 'POST', '/clients', {
      name: 'Literal', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', scopes: ['jobs:run'], resources: [identifier],
      jwks_uri: `https://127.0.0.1:${internal.port}/jwks`,
    });
    expect(literal.status).toBe(422);

    // The engine does fetch from it (the listener is no TLS server, so the key set cannot be read
    // and the client is refused; what matters is that the connection was allowed).
    const before = internal.connections;
    const answer = await tokenWithAssertion(allowing, created.client_id, privateKey, identifier);
    expect(answer.body.error).toBe('invalid_client');
    expect(internal.connections - before).toBeGreaterThan(0);
  });
});
