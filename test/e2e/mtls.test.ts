/**
 * Certificate-bound access tokens (RFC 8705) behind a TLS-terminating proxy (docs/tokens.md,
 * "mTLS behind a proxy"), on every backend: with config `mtls.clientCertificateHeader` set, a
 * client registered with `tls_client_certificate_bound_access_tokens` gets tokens carrying
 * `cnf["x5t#S256"]`, the SHA-256 of the certificate the proxy passed (URL-encoded PEM), and
 * introspection returns it on both paths; without the certificate it gets none. With the option
 * off (the default) the header is not read at all and the client setting is refused.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { ACCESS_TOKEN_TYPE, basic, EXCHANGE_GRANT, EXCHANGER, exchangerClient, ORDERS, postForm, seedWith } from '../helpers/exchange.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';

const HEADER = 'x-ssl-client-cert';
const ORDERS_RS = basic('orders-rs', 'orders-rs-secret-0123456789');
const VIA_KOA = { accept: 'application/json, application/token-introspection+jwt;q=0' };

/** A self-signed client certificate made with the openssl CLI: its PEM and its RFC 8705 §3.1 thumbprint. */
function selfSignedCertificate(cn: string): { pem: string; thumbprint: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-mtls-'));
  try {
    const pem = execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-subj', `/CN=${cn}`, '-days', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const thumbprint = createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
    return { pem, thumbprint };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const backend of backends) {
  describe(`certificate-bound tokens (mTLS behind a proxy) on ${backend.name}`, () => {
    let server: TestServer;
    const cert = selfSignedCertificate('orders-client');
    const other = selfSignedCertificate('someone-else');

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: seedWith(exchangerClient(['orders:read'])), env: { TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: HEADER } });
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    const createBoundClient = async (format: 'jwt' | 'opaque' = 'jwt') => {
      const resource = format === 'jwt' ? ORDERS : 'https://billing.test';
      const scope = format === 'jwt' ? 'orders:read' : 'billing:read';
      const created = await api(server, server.managementToken, 'POST', '/clients', { name: `bound-${format}`, grant_types: ['client_credentials'], scopes: [scope], resources: [resource], tls_client_certificate_bound_access_tokens: true });
      expect(created.status, created.text).toBe(201);
      expect(created.body.tls_client_certificate_bound_access_tokens).toBe(true);
      return { authorization: basic(created.body.client_id, created.body.client_secret), resource, scope };
    };

    it('binds a client-credentials token to the certificate the proxy passed; introspection returns cnf x5t#S256 on both paths', async () => {
      const client = await createBoundClient();
      const issued = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: client.resource, scope: client.scope }, { authorization: client.authorization, [HEADER]: encodeURIComponent(cert.pem) });
      expect(issued.status, JSON.stringify(issued.body)).toBe(200);
      expect(decodeJwt(issued.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
      for (const koa of [false, true]) {
        const answer = await postForm(server.url, '/token/introspection', { token: issued.body.access_token }, { authorization: ORDERS_RS, ...(koa ? VIA_KOA : {}) });
        expect(answer.body).toMatchObject({ active: true, token_type: 'Bearer', cnf: { 'x5t#S256': cert.thumbprint } });
      }
    });

    it('binds opaque tokens too, and refuses a bound client without a certificate', async () => {
      const client = await createBoundClient('opaque');
      const issued = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: client.resource, scope: client.scope }, { authorization: client.authorization, [HEADER]: encodeURIComponent(other.pem) });
      expect(issued.status, JSON.stringify(issued.body)).toBe(200);
      const billingRs = basic('billing-rs', 'billing-rs-secret-0123456789');
      for (const koa of [false, true]) {
        const answer = await postForm(server.url, '/token/introspection', { token: issued.body.access_token }, { authorization: billingRs, ...(koa ? VIA_KOA : {}) });
        expect(answer.body).toMatchObject({ active: true, cnf: { 'x5t#S256': other.thumbprint } });
      }
      const missing = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: client.resource, scope: client.scope }, { authorization: client.authorization });
      expect([missing.status, missing.body.error]).toEqual([400, 'invalid_grant']);
      const garbage = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: client.resource, scope: client.scope }, { authorization: client.authorization, [HEADER]: 'not%20a%20certificate' });
      expect([garbage.status, garbage.body.error]).toEqual([400, 'invalid_grant']);
    });

    it('exchanges a certificate-bound token only with its certificate, and binds the result to it', async () => {
      const client = await createBoundClient();
      const bound = (await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: client.resource, scope: client.scope }, { authorization: client.authorization, [HEADER]: encodeURIComponent(cert.pem) })).body.access_token as string;
      const form = { grant_type: EXCHANGE_GRANT, subject_token: bound, subject_token_type: ACCESS_TOKEN_TYPE, resource: ORDERS, scope: 'orders:read' };
      const exchanger = basic(EXCHANGER.id, EXCHANGER.secret);
      const bare = await postForm(server.url, '/token', form, { authorization: exchanger });
      expect([bare.status, bare.body.error]).toEqual([400, 'invalid_grant']);
      const wrong = await postForm(server.url, '/token', form, { authorization: exchanger, [HEADER]: encodeURIComponent(other.pem) });
      expect([wrong.status, wrong.body.error]).toEqual([400, 'invalid_grant']);
      const right = await postForm(server.url, '/token', form, { authorization: exchanger, [HEADER]: encodeURIComponent(cert.pem) });
      expect(right.status, JSON.stringify(right.body)).toBe(200);
      expect(decodeJwt(right.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
    });

    it('leaves a client not registered for binding unbound, certificate or not; discovery advertises the binding', async () => {
      const issued = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, { authorization: basic('worker', 'worker-secret-0123456789abcdef'), [HEADER]: encodeURIComponent(cert.pem) });
      expect(issued.status).toBe(200);
      expect(decodeJwt(issued.body.access_token).cnf).toBeUndefined();
      const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json();
      expect(discovery.tls_client_certificate_bound_access_tokens).toBe(true);
    });
  });
}

describe('certificate-bound tokens with the option off (the default)', () => {
  let server: TestServer;
  const cert = selfSignedCertificate('ignored');

  beforeAll(async () => {
    server = await startTestServer(backends[0]!.name, { overrides: EXAMPLE_SEED });
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
  });

  it('ignores the certificate header and refuses the client setting', async () => {
    expect(server.config.mtls.clientCertificateHeader).toBeNull();
    const issued = await postForm(server.url, '/token', { grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, { authorization: basic('worker', 'worker-secret-0123456789abcdef'), [HEADER]: encodeURIComponent(cert.pem) });
    expect(issued.status).toBe(200);
    expect(decodeJwt(issued.body.access_token).cnf).toBeUndefined();
    const answer = await postForm(server.url, '/token/introspection', { token: issued.body.access_token }, { authorization: ORDERS_RS, [HEADER]: encodeURIComponent(cert.pem) });
    expect(answer.body.active).toBe(true);
    expect(answer.body.cnf).toBeUndefined();
    const refused = await api(server, server.managementToken, 'POST', '/clients', { name: 'bound', grant_types: ['client_credentials'], scopes: ['orders:read'], resources: [ORDERS], tls_client_certificate_bound_access_tokens: true });
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].field).toBe('tls_client_certificate_bound_access_tokens');
    const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json();
    expect(discovery.tls_client_certificate_bound_access_tokens).toBeUndefined();
  });
});
