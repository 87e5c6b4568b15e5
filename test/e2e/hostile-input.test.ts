/**
 * Hostile input, generated (fast-check): malformed, oversized and mutated requests at the
 * protocol endpoints, the interaction pages and every route the Management API declares
 * (`tessera.management.routes`, so routes added later are covered without touching this file).
 * Whatever arrives: no 5xx, no crash, no stack trace or source path in a body, and every error
 * in the endpoint's own format (OAuth JSON, or problem+json under /api/).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { browserless, CALLBACK, hiddenField } from '../helpers/sign-in.js';

/** Generated cases per endpoint (a quarter of that, at least 10, per Management API route); raise it for a deeper run. */
const RUNS = Number(process.env.HOSTILE_RUNS ?? 80);
const LEAK = /\bat [\w.<>]+ \(|node_modules|\/src\/|\.ts:\d+|\.js:\d+:\d+|Error: .+\n\s+at /;

/** encodeURIComponent, except that a lone surrogate (which it refuses) is sent as its UTF-8 bytes. */
const enc = (value: string) => {
  try {
    return encodeURIComponent(value);
  } catch {
    return [...Buffer.from(value)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
};

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe.skipIf(postgresRedisSkipReason)('hostile input', () => {
  let server: TestServer;
  let tried = 0;
  let samples: { jwt: string; opaque: string; sat: string };

  beforeAll(async () => {
    const webapp = { client_id: 'webapp', grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [CALLBACK], scopes: ['openid', 'offline_access'] };
    server = await startTestServer('postgres+redis', { overrides: { seed: { ...EXAMPLE_SEED.seed, clients: [...EXAMPLE_SEED.seed.clients, webapp] } }, logLevel: 'warn' });
    const issue = async (resource: string, scope: string) =>
      (await (await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization: basic('worker', 'worker-secret-0123456789abcdef'), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }) })).json()).access_token as string;
    samples = { jwt: await issue('https://orders.test', 'orders:read'), opaque: await issue('https://billing.test', 'billing:read'), sat: server.managementToken };
  });

  afterAll(async () => {
    console.info(`[hostile-input] ${tried} generated requests`);
    await server?.stop();
  });

  interface Sent {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
  }

  /** Sends one request and checks the invariants every endpoint keeps. */
  async function send(request: Sent, format: 'oauth' | 'problem' | 'page'): Promise<void> {
    tried += 1;
    let response: Response;
    try {
      response = await fetch(`${server.url}${request.path}`, { method: request.method, headers: request.headers, body: request.body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      // The client library refuses some generated headers or URLs before sending; nothing reached the server.
      if (error instanceof TypeError && !String(error.cause ?? '').includes('ECONN') && !String(error.cause ?? '').includes('closed')) return;
      throw new Error(`${request.method} ${request.path}: ${(error as Error).message} ${String((error as Error).cause ?? '')}`);
    }
    const text = await response.text();
    const where = `${request.method} ${request.path.slice(0, 120)} → ${response.status} ${text.slice(0, 200)}`;
    expect(response.status, where).toBeLessThan(500);
    expect(LEAK.test(text), `stack trace or source path in ${where}`).toBe(false);
    if (response.status < 400) return;
    // Node's own bound on header size (16 KiB, src/main.ts) answers before any route runs.
    if (response.status === 431 && text === '') return;
    // A path no route serves (an engine feature that is off, a page not yet built) is a bare 404.
    if (response.status === 404 && text === 'Not Found' && format !== 'problem') return;
    const type = response.headers.get('content-type') ?? '';
    if (format === 'problem') {
      expect(type, where).toContain('application/problem+json');
      const body = JSON.parse(text);
      expect(body, where).toMatchObject({ status: response.status, title: expect.any(String) });
    } else if (format === 'oauth') {
      if (response.status === 405 && text === '') return;
      expect(type, where).toContain('application/json');
      expect(JSON.parse(text), where).toMatchObject({ error: expect.stringMatching(/^[\x20-\x7e]+$/) });
    } else if (type.includes('json')) {
      expect(JSON.parse(text), where).toMatchObject({ error: expect.any(String) });
    } else if (text.length > 0) {
      expect(type, where).toContain('text/html');
    }
  }

  // ---- generators ------------------------------------------------------------------------

  const nasty = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('', ' ', '%', '%00', '%ff', '..', '../..', '\u0000', '\ud800', '{}', '[]', 'null', '-1', '1e400', '__proto__', 'constructor', '<script>alert(1)</script>', "' OR 1=1 --"),
    fc.integer({ min: 1000, max: 80_000 }).map((n) => 'A'.repeat(n)),
  );
  const mutate = (value: string) =>
    fc.tuple(fc.nat(), fc.constantFrom('flip', 'cut', 'dup', 'prefix')).map(([at, how]) => {
      const i = at % Math.max(1, value.length);
      if (how === 'flip') return value.slice(0, i) + String.fromCharCode((value.charCodeAt(i) ^ 1) || 65) + value.slice(i + 1);
      if (how === 'cut') return value.slice(0, i);
      if (how === 'dup') return value + value.slice(i);
      return `tsr_pat_${value}`;
    });
  const tokenValue = () => fc.oneof(nasty, fc.constantFrom(samples.jwt, samples.opaque, samples.sat).chain(mutate), fc.constantFrom(samples.jwt, samples.opaque, samples.sat));
  const authorization = () =>
    fc.oneof(
      fc.constant(undefined),
      fc.constant(basic('worker', 'worker-secret-0123456789abcdef')),
      fc.constant(basic('orders-rs', 'orders-rs-secret-0123456789')),
      fc.tuple(nasty, nasty).map(([id, secret]) => basic(id, secret)),
      nasty.map((v) => `Basic ${v}`),
      tokenValue().map((v) => `Bearer ${v}`),
    );
  const contentType = fc.constantFrom('application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-16', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', undefined);
  const form = (names: string[]) =>
    fc.dictionary(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 })), fc.oneof(nasty, tokenValue(), fc.constantFrom('client_credentials', 'authorization_code', 'refresh_token', 'https://orders.test', 'orders:read', 'openid', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')), { maxKeys: 8 });
  const rawBody = (names: string[]) => fc.oneof(form(names).map((f) => new URLSearchParams(f).toString()), fc.string({ unit: 'binary', maxLength: 300 }), fc.json(), fc.constant('a=1&a=2&a=3'));

  /** A form POST endpoint in OAuth JSON. */
  const oauthPost = (path: string, names: string[]) =>
    fc.assert(
      fc.asyncProperty(rawBody(names), authorization(), contentType, async (body, auth, type) => {
        await send({ method: 'POST', path, body, headers: { ...(auth ? { authorization: auth } : {}), ...(type ? { 'content-type': type } : {}) } }, 'oauth');
      }),
      { numRuns: RUNS },
    );

  // ---- protocol endpoints ----------------------------------------------------------------

  it('/token', async () => {
    await oauthPost('/token', ['grant_type', 'client_id', 'client_secret', 'scope', 'resource', 'code', 'redirect_uri', 'code_verifier', 'refresh_token', 'client_assertion', 'client_assertion_type']);
  });

  it('/token/introspection', async () => {
    await oauthPost('/token/introspection', ['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type']);
  });

  it('/token/revocation', async () => {
    await oauthPost('/token/revocation', ['token', 'token_type_hint', 'client_id', 'client_secret']);
  });

  it('/reg (RFC 7591/7592)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json(), fc.string({ unit: 'binary', maxLength: 200 })), authorization(), fc.constantFrom('POST', 'GET', 'PUT', 'DELETE'), nasty, async (body, auth, method, id) => {
        const path = method === 'POST' ? '/reg' : `/reg/${enc(id).slice(0, 300)}`;
        await send({ method, path, body: method === 'GET' || method === 'DELETE' ? undefined : body, headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } }, 'oauth');
      }),
      { numRuns: RUNS },
    );
  });

  it('/auth and /request (PAR)', async () => {
    const names = ['client_id', 'response_type', 'redirect_uri', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'response_mode', 'prompt', 'request', 'request_uri', 'resource', 'max_age', 'claims'];
    await fc.assert(
      fc.asyncProperty(form(names), async (query) => {
        await send({ method: 'GET', path: `/auth?${new URLSearchParams(query)}`.slice(0, 8000) }, 'page');
        await send({ method: 'POST', path: '/request', body: new URLSearchParams(query).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('worker', 'worker-secret-0123456789abcdef') } }, 'oauth');
      }),
      { numRuns: RUNS },
    );
  });

  it('a live interaction: its pages with its own cookies and CSRF token, and mutated forms', async () => {
    const names = ['csrf', 'username', 'password', 'decision', 'prompt', 'submit', 'login', 'remember'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/login', '/confirm', '/abort', ''), form(names), fc.boolean(), fc.boolean(), async (tail, fields, withCsrf, withCookies) => {
        // A fresh interaction each time, as a browser has it: reached through /auth, cookies set.
        const b = browserless(server);
        const auth = `/auth?${new URLSearchParams({ client_id: 'webapp', response_type: 'code', redirect_uri: CALLBACK, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`;
        const page = await b.follow(auth);
        const path = new URL(page.url).pathname;
        expect(path).toMatch(/^\/interaction\//);
        const body = new URLSearchParams({ ...fields, ...(withCsrf ? { csrf: hiddenField(page.html!, 'csrf') } : {}) }).toString();
        await send({ method: tail === '' ? 'GET' : 'POST', path: `${path}${tail}`, body: tail === '' ? undefined : body, headers: { ...(withCookies ? { cookie: b.jar.header() } : {}), ...(tail === '' ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) } }, 'page');
      }),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it('the interaction pages', async () => {
    await fc.assert(
      fc.asyncProperty(nasty, fc.constantFrom('', '/login', '/consent', '/abort', '/confirm'), fc.constantFrom('GET', 'POST'), rawBody(['login', 'username', 'password', 'prompt', 'submit']), async (uid, tail, method, body) => {
        await send({ method, path: `/interaction/${enc(uid).slice(0, 300)}${tail}`, body: method === 'POST' ? body : undefined, headers: method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : undefined }, 'page');
      }),
      { numRuns: RUNS },
    );
  });

  // ---- the Management API: every declared route -------------------------------------------

  it('every Management API route', async () => {
    const routes = server.tessera.management.routes;
    expect(routes.length).toBeGreaterThan(3);
    const bearer = () => fc.oneof({ weight: 3, arbitrary: fc.constant(`Bearer ${server.managementToken}`) }, { weight: 1, arbitrary: authorization() });
    const body = fc.oneof(fc.json({ maxDepth: 3 }), fc.object({ maxDepth: 2 }).map((o) => JSON.stringify(o)), fc.string({ unit: 'binary', maxLength: 100 }), fc.integer({ min: 65_000, max: 70_000 }).map((n) => JSON.stringify({ name: 'x'.repeat(n) })));
    const query = fc.dictionary(fc.constantFrom('limit', 'cursor', 'since', 'until', 'actor', 'action', 'target', 'format', 'x'), nasty, { maxKeys: 4 });
    for (const route of routes) {
      await fc.assert(
        fc.asyncProperty(fc.array(nasty, { minLength: 3, maxLength: 3 }), bearer(), body, query, contentType, async (params, auth, json, q, type) => {
          let i = 0;
          const path = route.path.replace(/\{\w+\}/g, () => enc(params[i++]!).slice(0, 500) || 'x');
          const search = new URLSearchParams(q).toString();
          await send(
            {
              method: route.method,
              path: `/api/v1${path}${search ? `?${search}` : ''}`.slice(0, 8000),
              body: route.method === 'GET' || route.method === 'DELETE' ? undefined : json,
              headers: { ...(auth ? { authorization: auth } : {}), ...(type ? { 'content-type': type } : {}) },
            },
            'problem',
          );
        }),
        { numRuns: Math.max(10, Math.ceil(RUNS / 4)) },
      );
    }
    // Unknown paths and methods under /api/ are problem+json too.
    await send({ method: 'PUT', path: '/api/v1/organization', headers: { authorization: `Bearer ${server.managementToken}` } }, 'problem');
    await send({ method: 'GET', path: '/api/v1/%zz/../x' }, 'problem');
  }, 240_000);

  // ---- size limits ------------------------------------------------------------------------

  it('bounds request bodies and headers', async () => {
    const big = 'x'.repeat(200_000);
    const json = await fetch(`${server.url}/api/v1/organizations`, { method: 'POST', headers: { authorization: `Bearer ${server.managementToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: big }) });
    expect(json.status).toBe(413);
    expect(json.headers.get('content-type')).toContain('application/problem+json');
    for (const path of ['/token', '/token/introspection', '/token/revocation']) {
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: basic('orders-rs', 'orders-rs-secret-0123456789'), 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${big}` });
      expect([400, 413], path).toContain(response.status);
      expect((await response.json()).error, path).toBe('invalid_request');
    }
    const header = await fetch(`${server.url}/healthz`, { headers: { 'x-filler': 'y'.repeat(20_000) } });
    expect(header.status).toBe(431);
  });

  it('wrote no unhandled-error log line and is still healthy', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const errors = server.logs.filter((line) => /"level":(50|60)/.test(line));
    expect(errors.slice(0, 3)).toEqual([]);
  });
});
