/**
 * Abuse controls a client can observe: the per-client /token limit (shared by every node
 * through Redis, per node in memory without it), its 429 in OAuth JSON with Retry-After, the
 * failure limit per source address that keeps anyone from locking a client out by naming it,
 * the limiter factory's fallback while Redis is unreachable, constant-time secret comparison,
 * and the security headers of token, API and HTML responses.
 */
import { request } from 'node:http';

import { Redis } from 'ioredis';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliClientId } from '../../src/domain/cli-client.js';
import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { createRateLimiter } from '../../src/http/rate-limit.js';
import { secretsEqual } from '../../src/oidc/client-authenticator.js';
import { createMemoryCache } from '../../src/storage/memory-cache.js';
import type { CacheStore } from '../../src/storage/cache.js';
import { systemClock } from '../../src/clock.js';
import { backends, openRedis } from '../helpers/backends.js';
import type { OpenedRedis } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { freePort, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, SERVER_START_TIMEOUT_MS, signIn } from '../helpers/sign-in.js';

const LIMIT = 5;
const overrides = { ...EXAMPLE_SEED, rateLimits: { token: { points: LIMIT, durationSeconds: 60 } } };
const worker = `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`;

const tokenRequest = (url: string, authorization = worker) =>
  fetch(`${url}/token`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }),
  });

// The server-level checks run where deployments run (PostgreSQL + Redis); the in-process
// limiter that the embedded default uses is covered by the factory tests below.
for (const backend of backends.filter((b) => b.name === 'postgres+redis')) {
  describe(`abuse controls on ${backend.name}`, () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('limits /token per client with a 429 in OAuth JSON and Retry-After, and leaves other clients alone', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT; i += 1) statuses.push((await tokenRequest(server.url)).status);
      expect(statuses).toEqual(Array(LIMIT).fill(200));
      const limited = await tokenRequest(server.url);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toContain('application/json');
      expect(limited.headers.get('cache-control')).toBe('no-store');
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(await limited.json()).toEqual({ error: 'too_many_requests', error_description: 'too many requests, retry later' });
      // Another client id (here a wrong one) has its own budget: it gets the engine's answer.
      const other = await tokenRequest(server.url, `Basic ${Buffer.from('someone-else:x').toString('base64')}`);
      expect(other.status).toBe(401);
      // A client_id in the form counts against the same client as Basic.
      const viaForm = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'worker', client_secret: 'worker-secret-0123456789abcdef' }),
      });
      expect(viaForm.status).toBe(429);
    });

    if (backend.name === 'postgres+redis') {
      it('shares the count with every node of the installation', async () => {
        // A second node on the same schema and Redis prefix: the budget is already spent there.
        const { createTessera } = await import('../../src/app.js');
        const { createLogger } = await import('../../src/http/logger.js');
        const { createServer } = await import('node:http');
        const second = await createTessera({ config: { ...server.config, seed: null }, logger: createLogger({ level: 'silent' }), clock: systemClock, schema: server.tessera.config.databaseSchema ?? (await schemaOf(server)), redisPrefix: server.redisPrefix });
        const http = createServer(second.handler);
        await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
        try {
          const address = http.address() as { port: number };
          const response = await tokenRequest(`http://127.0.0.1:${address.port}`);
          expect(response.status).toBe(429);
        } finally {
          await new Promise((resolve) => http.close(resolve));
          await second.close();
        }
      });
    }

    it('marks token and introspection responses no-store, and sets the baseline headers', async () => {
      const ok = await tokenRequest(server.url, `Basic ${Buffer.from('orders-rs:nope').toString('base64')}`);
      expect(ok.headers.get('cache-control')).toBe('no-store');
      const introspection = await fetch(`${server.url}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'token=abc',
      });
      expect(introspection.status).toBe(200);
      expect(introspection.headers.get('cache-control')).toBe('no-store');
      for (const response of [ok, introspection, await fetch(`${server.url}/api/v1/organization`)]) {
        expect(response.headers.get('x-content-type-options')).toBe('nosniff');
        expect(response.headers.get('x-frame-options')).toBe('DENY');
        // Served over plain HTTP here: HSTS would be ignored by browsers and is not sent.
        expect(response.headers.get('strict-transport-security')).toBeNull();
      }
      const page = await fetch(`${server.url}/auth?client_id=nobody&response_type=code`);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*frame-ancestors 'none'/);
    });
  });
}

/**
 * A form POST sent from `from`, one of the loopback addresses (127.0.0.0/8 all reach this
 * host), so one test can be several clients on several addresses: the test configuration does
 * not trust X-Forwarded-For (only production does, behind its proxy).
 */
function postFrom(from: string, url: string, path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const body = new URLSearchParams(form).toString();
  return new Promise<{ status: number; retryAfter: string | undefined; json: any }>((resolve, reject) => {
    const req = request(`${url}${path}`, {
      method: 'POST',
      localAddress: from,
      agent: false,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode!, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, json: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
const WORKER_SECRET = 'worker-secret-0123456789abcdef';
const ATTACKER = '127.0.0.2';
const NEIGHBOUR = '127.0.0.3';

// Issue 11, defect 6: the per-client limit used to count every request that named a client, so
// anyone could spend a client's budget: `tessera-cli.<organization id>` is predictable, and a
// few requests a second blocked every CLI sign-in and refresh of an organization.
for (const backend of backends) {
  describe(`nobody locks a client out of /token on ${backend.name}`, () => {
    const CLIENT_BUDGET = 8;
    const FAILURE_BUDGET = 5;
    const FLOOD = 3 * CLIENT_BUDGET;
    let server: TestServer;
    let cli: string;
    let refreshToken: string;

    beforeAll(async () => {
      server = await startTestServer(backend.name, {
        overrides: { ...EXAMPLE_SEED, rateLimits: { token: { points: CLIENT_BUDGET, durationSeconds: 60 }, tokenFailures: { points: FAILURE_BUDGET, durationSeconds: 60 } } },
      });
      cli = cliClientId(server.bootstrap.organization_id);
      // A user signs in through the organization's CLI client and holds a refresh token.
      const password = 'correct horse battery staple';
      await addUser(server, { username: 'mel', password });
      const config = await client.discovery(new URL(server.url), cli, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const verifier = client.randomPKCECodeVerifier();
      const redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid offline_access tokens:read',
        resource: MANAGEMENT_AUDIENCE,
        prompt: 'consent',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const { callback } = await signIn(browserless(server), url.href, 'mel', password);
      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier }, { resource: MANAGEMENT_AUDIENCE });
      refreshToken = tokens.refresh_token!;
      expect(refreshToken).toBeTruthy();
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    const workerGrant = (from: string, secret: string) =>
      postFrom(from, server.url, '/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }, basic('worker', secret));
    const cliRefresh = (from: string, token: string) =>
      postFrom(from, server.url, '/token', { grant_type: 'refresh_token', client_id: cli, refresh_token: token, resource: MANAGEMENT_AUDIENCE });

    it('refuses a flooding address after its failure budget, and still serves the clients it named from elsewhere', async () => {
      // Wrong secrets for a confidential client: counted before they are answered, so exactly the budget gets through.
      const wrong: { status: number; retryAfter: string | undefined; json: any }[] = [];
      for (let i = 0; i < FLOOD; i += 1) wrong.push(await workerGrant(ATTACKER, `guess-${i}`));
      expect(wrong.slice(0, FAILURE_BUDGET).map((r) => r.status)).toEqual(Array(FAILURE_BUDGET).fill(401));
      expect(wrong.slice(FAILURE_BUDGET).map((r) => r.status)).toEqual(Array(FLOOD - FAILURE_BUDGET).fill(429));
      const refused = wrong.at(-1)!;
      expect(refused.json).toEqual({ error: 'too_many_requests', error_description: 'too many requests, retry later' });
      expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);

      // Bogus refresh tokens for the organization's public CLI client: the engine judges them,
      // so each is counted once answered; the refusals start at the budget (or, when a count is
      // still on its way as the next request arrives, a request or two after it).
      const bogus: number[] = [];
      for (let i = 0; i < FLOOD; i += 1) bogus.push((await cliRefresh(ATTACKER, `bogus-refresh-token-${i}`)).status);
      const answered = bogus.filter((status) => status === 400).length;
      expect(answered).toBeGreaterThanOrEqual(FAILURE_BUDGET);
      expect(answered).toBeLessThanOrEqual(FAILURE_BUDGET + 2);
      expect(bogus.slice(answered)).toEqual(Array(FLOOD - answered).fill(429));

      // The flooding address is refused even with the right credentials: a 429 that depended
      // on the credential would tell a guesser which guess was right.
      expect((await workerGrant(ATTACKER, WORKER_SECRET)).status).toBe(429);
      expect((await cliRefresh(ATTACKER, refreshToken)).status).toBe(429);

      // From another address, both clients work: the flood spent neither client's budget.
      const grant = await workerGrant(NEIGHBOUR, WORKER_SECRET);
      expect(grant.status, JSON.stringify(grant.json)).toBe(200);
      expect(grant.json.access_token).toBeTruthy();
      const refreshed = await cliRefresh(NEIGHBOUR, refreshToken);
      expect(refreshed.status, JSON.stringify(refreshed.json)).toBe(200);
      expect(refreshed.json.refresh_token).toBeTruthy();
      // So does the default address of this test, over the client-credentials fast path and Koa's path alike.
      expect((await workerGrant('127.0.0.1', WORKER_SECRET)).status).toBe(200);
      const viaForm = await postFrom('127.0.0.1', server.url, '/token', { grant_type: 'client_credentials', client_id: 'worker', client_secret: WORKER_SECRET, resource: 'https://orders.test', scope: 'orders:read' });
      expect(viaForm.status).toBe(200);
    });

    it('counts only requests that authenticated against the client\'s budget', async () => {
      // Three grants above succeeded; the budget allows the rest and refuses the one after.
      const statuses: number[] = [];
      for (let i = 0; i < CLIENT_BUDGET - 3 + 1; i += 1) statuses.push((await workerGrant(NEIGHBOUR, WORKER_SECRET)).status);
      expect(statuses).toEqual([...Array(CLIENT_BUDGET - 3).fill(200), 429]);
    });

    it('limits failed client authentication at introspection and revocation per address too', async () => {
      const introspectAs = (from: string, secret: string) => postFrom(from, server.url, '/token/introspection', { token: 'tsr_sat_unknownTokenValue0123456789abcdefghijklmnopq_0AbCdE' }, basic('orders-rs', secret));
      const statuses: number[] = [];
      for (let i = 0; i < FAILURE_BUDGET + 3; i += 1) statuses.push((await introspectAs(ATTACKER, `guess-${i}`)).status);
      expect(statuses).toEqual([...Array(FAILURE_BUDGET).fill(401), 429, 429, 429]);
      // Revocation shares the budget (the same claimed client, the same address).
      const revocation = await postFrom(ATTACKER, server.url, '/token/revocation', { token: 'whatever' }, basic('orders-rs', 'guess'));
      expect(revocation.status).toBe(429);
      expect(revocation.json).toMatchObject({ error: 'too_many_requests' });
      // The right secret from the flooding address: refused; from elsewhere: answered.
      expect((await introspectAs(ATTACKER, 'orders-rs-secret-0123456789')).status).toBe(429);
      const answered = await introspectAs(NEIGHBOUR, 'orders-rs-secret-0123456789');
      expect(answered.status).toBe(200);
      expect(answered.json).toEqual({ active: false });
    });
  });
}

async function schemaOf(server: TestServer): Promise<string> {
  const { rows } = await server.tessera.db.query<{ schema: string }>('SELECT current_schema() AS schema');
  return rows[0]!.schema;
}

describe('HSTS behind TLS', () => {
  it('is sent when the issuer is https', async () => {
    const { securityHeaders } = await import('../../src/http/middleware.js');
    const headers: Record<string, string> = {};
    const ctx = { path: '/token', set: (k: string, v: string) => (headers[k] = v) } as never;
    await securityHeaders({ hsts: true })(ctx, async () => {});
    expect(headers['strict-transport-security']).toMatch(/max-age=\d{7,}/);
  });
});

describe('the rate limiter factory', () => {
  it('keeps limiting in memory while Redis is unreachable, instead of failing requests', async () => {
    // A client that never connects: every Redis call is refused at once (offline queue off).
    const client = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    client.on('error', () => {});
    const cache = { ...createMemoryCache({ clock: systemClock }), kind: 'redis', client, prefix: 'unreachable:' } as unknown as CacheStore;
    const limiter = createRateLimiter({ cache, keyPrefix: 'probe:', points: 2, durationSeconds: 60 });
    const waits = [await limiter.consume('k'), await limiter.consume('k'), await limiter.consume('k')];
    expect(waits.slice(0, 2)).toEqual([undefined, undefined]);
    expect(waits[2]).toBeGreaterThanOrEqual(1);
    client.disconnect();
  });

  it('counts keys independently in the in-process store', async () => {
    const limiter = createRateLimiter({ cache: createMemoryCache({ clock: systemClock }), keyPrefix: 'probe:', points: 1, durationSeconds: 60 });
    expect(await limiter.consume('a')).toBeUndefined();
    expect(await limiter.consume('a')).toBeGreaterThanOrEqual(1);
    expect(await limiter.consume('b')).toBeUndefined();
    await limiter.reset('a');
    expect(await limiter.consume('a')).toBeUndefined();
  });
});

// The /token limit coalesces a client's concurrent requests into one Redis call (RateLimitSync
// `coalesced`): what a client can observe must stay that of one call per request — exactly the
// budget is allowed however the requests interleave, on one node or several.
for (const backend of backends.filter((b) => b.name === 'postgres+redis')) {
  describe(`the coalesced rate limiter on ${backend.name}`, () => {
    let redis: OpenedRedis;
    beforeAll(async () => {
      redis = await openRedis();
    });
    afterAll(async () => {
      await redis?.close();
    });
    const coalesced = (points: number, keyPrefix: string) => createRateLimiter({ cache: redis.cache, keyPrefix, points, durationSeconds: 60, sync: { mode: 'coalesced' } });

    it('allows exactly the budget to concurrent requests, and answers the rest with Retry-After', async () => {
      const limiter = coalesced(10, 'concurrent:');
      const waits = await Promise.all(Array.from({ length: 25 }, () => limiter.consume('client')));
      expect(waits.filter((w) => w === undefined)).toHaveLength(10);
      for (const wait of waits.filter((w) => w !== undefined)) {
        expect(wait).toBeGreaterThanOrEqual(1);
        expect(wait).toBeLessThanOrEqual(60);
      }
      // The first ten in arrival order are the ones allowed.
      expect(waits.slice(0, 10)).toEqual(Array(10).fill(undefined));
      expect(await limiter.consume('other client')).toBeUndefined();
    });

    it('shares the budget with the other nodes, request by request', async () => {
      const a = coalesced(10, 'shared:');
      const b = coalesced(10, 'shared:');
      const waits = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).consume('client')));
      expect(waits.filter((w) => w === undefined)).toHaveLength(10);
      expect(await a.consume('client')).toBeGreaterThanOrEqual(1);
      expect(await b.consume('client')).toBeGreaterThanOrEqual(1);
    });

    it('counts in the same Redis counter as the exact limiter', async () => {
      const a = coalesced(100, 'counter:');
      await Promise.all(Array.from({ length: 30 }, () => a.consume('client')));
      // An exact limiter on the same counter sees all 30: its budget of 31 allows one more.
      const exact = createRateLimiter({ cache: redis.cache, keyPrefix: 'counter:', points: 31, durationSeconds: 60 });
      expect(await exact.consume('client')).toBeUndefined();
      expect(await exact.consume('client')).toBeGreaterThanOrEqual(1);
    });

    it('starts over after reset', async () => {
      const limiter = coalesced(2, 'reset:');
      await limiter.consume('client');
      await limiter.consume('client');
      expect(await limiter.consume('client')).toBeGreaterThanOrEqual(1);
      await limiter.reset('client');
      expect(await limiter.consume('client')).toBeUndefined();
    });
  });
}

describe('constant-time secret comparison', () => {
  it('compares digests, so secrets of any length compare without throwing', () => {
    expect(secretsEqual('s3cret', 's3cret')).toBe(true);
    expect(secretsEqual('s3cret', 's3cret-longer')).toBe(false);
    expect(secretsEqual('', 'x')).toBe(false);
  });
});
