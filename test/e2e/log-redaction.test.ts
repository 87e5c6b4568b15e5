/**
 * docs/design.md, "No secret at rest, none in a log": requests full of secrets — in headers, cookies, form bodies, query strings and
 * URL paths — are logged, and no log line carries any of those secrets.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateToken } from '../../src/tokens/format.js';
import { backends } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const WORKER_SECRET = 'worker-secret-0123456789abcdef';
const ORDERS_RS_SECRET = 'orders-rs-secret-0123456789';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const random = (label: string) => `${label}${randomBytes(12).toString('hex')}`;

// Storage plays no part in what gets logged: one backend is enough (PostgreSQL when reachable).
const backend = backends[backends.length - 1]!;

describe(`log redaction on ${backend.name}`, () => {
  let server: TestServer;
  /** Every secret value a request below carries; none may appear in any log line. */
  const secrets: string[] = [];
  const keep = <T extends string>(value: T): T => {
    secrets.push(value);
    return value;
  };

  beforeAll(async () => {
    server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED, logLevel: 'trace' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('logs every request without any secret it carried', async () => {
    const send = async (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => {
      const response = await fetch(`${server.url}${path}`, init);
      await response.arrayBuffer();
      return response.status;
    };
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
    const formHeaders = (extra: Record<string, string> = {}) => ({ 'content-type': 'application/x-www-form-urlencoded', ...extra });

    keep(WORKER_SECRET);
    keep(ORDERS_RS_SECRET);
    keep(server.bootstrap.admin.password);
    const management = keep(server.managementToken);
    const cookie = `_session=${keep(random('cookie'))}; _interaction=${keep(random('cookie'))}`;
    const wrongSecret = keep(random('wrongsecret'));
    const password = keep(random('password'));
    const code = keep(random('code'));
    const refresh = keep(random('refresh'));
    const pat = keep(generateToken('pat'));
    const rotationKey = keep(generateToken('rk'));
    const bearer = keep(random('bearer'));

    // A real JWT access token, then used everywhere a token can be put.
    const issued = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: formHeaders({ authorization: basic('worker', WORKER_SECRET), cookie }),
      body: form({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'https://orders.test' }),
    });
    expect(issued.status).toBe(200);
    const jwt = keep(((await issued.json()) as { access_token: string }).access_token);
    const assertion = keep(`eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ iss: 'worker', sub: 'worker', jti: random('') })).toString('base64url')}.${keep(random('sig'))}`);
    const basicHeaders = [basic('worker', WORKER_SECRET), basic('worker', wrongSecret), basic('orders-rs', ORDERS_RS_SECRET)];
    for (const header of basicHeaders) keep(header.slice('Basic '.length));

    const query = `?${form({ client_secret: wrongSecret, password, code, token: pat, access_token: jwt, refresh_token: refresh })}`;
    const statuses: Record<string, number> = {};

    // Token endpoint: wrong secret in Basic, secrets in the body and the query string.
    statuses.tokenBasic = await send(`/token${query}`, {
      method: 'POST',
      headers: formHeaders({ authorization: basic('worker', wrongSecret), cookie }),
      body: form({ grant_type: 'client_credentials', password, code, refresh_token: refresh }),
    });
    statuses.tokenPost = await send('/token', {
      method: 'POST',
      headers: formHeaders({ cookie }),
      body: form({ grant_type: 'authorization_code', client_id: 'worker', client_secret: wrongSecret, code, code_verifier: code }),
    });
    statuses.tokenAssertion = await send('/token', {
      method: 'POST',
      headers: formHeaders(),
      body: form({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
    });
    statuses.tokenPassword = await send('/token', {
      method: 'POST',
      headers: formHeaders({ authorization: basic('worker', WORKER_SECRET) }),
      body: form({ grant_type: 'password', username: 'admin', password }),
    });

    // Introspection and revocation: good and bad callers, every token kind.
    for (const token of [jwt, pat, rotationKey, bearer, management]) {
      statuses[`introspect:${token.slice(0, 8)}`] = await send(`/token/introspection${query}`, {
        method: 'POST',
        headers: formHeaders({ authorization: basic('orders-rs', ORDERS_RS_SECRET), cookie }),
        body: form({ token }),
      });
    }
    statuses.introspectBadCaller = await send('/token/introspection', {
      method: 'POST',
      headers: formHeaders(),
      body: form({ token: jwt, client_id: 'orders-rs', client_secret: wrongSecret }),
    });
    statuses.introspectAssertion = await send('/token/introspection', {
      method: 'POST',
      headers: formHeaders(),
      body: form({ token: pat, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
    });
    statuses.revoke = await send('/token/revocation', {
      method: 'POST',
      headers: formHeaders({ authorization: basic('orders-rs', wrongSecret) }),
      body: form({ token: pat, token_type_hint: 'access_token' }),
    });

    // Management API: bad bodies that quote secrets, bad Bearer tokens, tokens in the path.
    statuses.apiBadBody = await send(`/api/v1/organizations${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${management}`, 'content-type': 'application/json', cookie },
      body: JSON.stringify({ name: 7, owner: { username: '', password }, client_secret: wrongSecret }),
    });
    statuses.apiMalformed = await send('/api/v1/organizations', {
      method: 'POST',
      headers: { authorization: `Bearer ${management}`, 'content-type': 'application/json' },
      body: `{"owner":{"password":"${password}"`,
    });
    statuses.apiBadBearer = await send('/api/v1/organization', { headers: { authorization: `Bearer ${bearer}`, 'x-api-key': bearer } });
    statuses.apiJwtBearer = await send('/api/v1/organization', { headers: { authorization: `Bearer ${jwt}` } });
    statuses.apiTokenInPath = await send(`/api/v1/tokens/${pat}${query}`, { method: 'DELETE', headers: { authorization: `Bearer ${management}` } });

    // Unknown routes with tokens in the path.
    statuses.unknownPat = await send(`/nowhere/${pat}${query}`, { headers: { authorization: `Bearer ${bearer}`, cookie } });
    statuses.unknownJwt = await send(`/nowhere/${jwt}/${rotationKey}`, { method: 'POST', headers: formHeaders({ authorization: basic('worker', wrongSecret) }), body: form({ password }) });

    for (const [name, status] of Object.entries(statuses)) expect(status, name).toBeLessThan(500);
    expect(statuses.tokenBasic).toBe(401);
    expect(statuses.apiBadBody).toBe(422);
    expect(statuses.apiMalformed).toBe(400);

    // Let the audit writer and any late log line flush.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const logs = server.logs;
    const requestLines = logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'request');
    // Each request was logged (one access line per request), with its status and a redacted path.
    expect(requestLines.length).toBeGreaterThanOrEqual(Object.keys(statuses).length + 1);
    expect(requestLines).toContainEqual(expect.objectContaining({ method: 'POST', path: '/token', status: 401 }));
    expect(requestLines).toContainEqual(expect.objectContaining({ method: 'POST', path: '/api/v1/organizations', status: 422 }));
    expect(requestLines).toContainEqual(expect.objectContaining({ method: 'DELETE', path: expect.stringMatching(/^\/api\/v1\/tokens\/tsr_pat_\[REDACTED\]$/) }));
    expect(requestLines).toContainEqual(expect.objectContaining({ method: 'POST', path: expect.stringMatching(/^\/nowhere\/\[REDACTED-JWT\]\/tsr_rk_\[REDACTED\]$/) }));

    const all = logs.join('\n');
    for (const secret of new Set(secrets)) {
      for (const form of new Set([secret, encodeURIComponent(secret)])) {
        expect(all.includes(form), `a log line contains the secret ${form.slice(0, 12)}…`).toBe(false);
      }
    }
    // Nor a recognisable piece of one: the JWT's signature, a reference token's secret part.
    expect(all).not.toContain(jwt.split('.')[2]);
    expect(all).not.toContain(pat.split('_')[2]);
  });
});
