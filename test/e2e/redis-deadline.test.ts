/**
 * While Redis does not answer (frozen, so connections stay open and every command waits for its
 * timeout), each answer that needs Redis is a 503 `temporarily_unavailable` within the bound
 * docs/operations.md promises: 1 s for the whole answer, however many Redis commands the request
 * would have sent one after the other (src/storage/request-deadline.ts). A client-credentials
 * grant for an opaque token asks Redis twice in series (the rate limit, then the token itself):
 * with a bound per command it took two timeouts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { startOwnRedis } from '../helpers/cluster.js';
import type { OwnRedis } from '../helpers/cluster.js';
import { WORKER } from '../helpers/keys.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';

/** docs/operations.md, "Failure behaviour": a request that needs an unreachable Redis gets its 503 within 1 s. */
const PROMISED_MS = 1000;

describe.skipIf(postgresRedisSkipReason)('one deadline per request while Redis does not answer', () => {
  let redis: OwnRedis;
  let server: TestServer;

  beforeAll(async () => {
    redis = await startOwnRedis();
    const web = { client_id: 'web', grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['https://app.test/cb'], scopes: ['openid'] };
    server = await startTestServer('postgres+redis', { overrides: { seed: { ...EXAMPLE_SEED.seed, clients: [...EXAMPLE_SEED.seed.clients, web] } }, env: { REDIS_URL: redis.url } });
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    redis?.resume();
    await server?.stop();
    await redis?.close();
  });

  const clientCredentials = (resource: string, scope: string) =>
    fetch(`${server.url}/token`, { method: 'POST', headers: { authorization: WORKER, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }) });
  const authorize = () =>
    fetch(`${server.url}/auth?${new URLSearchParams({ client_id: 'web', response_type: 'code', redirect_uri: 'https://app.test/cb', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`, { redirect: 'manual' });

  /**
   * The answer's time, and its status as a 503: at the authorization endpoint RFC 6749 §4.1.2.1
   * sends `temporarily_unavailable` back to the client's redirect URI instead.
   */
  async function timed(send: () => Promise<Response>): Promise<{ status: number; ms: number; body: string }> {
    const started = performance.now();
    const response = await send();
    const body = await response.text();
    const redirected = new URL(response.headers.get('location') ?? 'about:blank').searchParams.get('error') === 'temporarily_unavailable';
    return { status: redirected ? 503 : response.status, ms: performance.now() - started, body };
  }

  it('answers 503 within the promised second, each request alone and several at once, and recovers', async () => {
    expect((await clientCredentials('https://billing.test', 'billing:read')).status).toBe(200);
    // The promise bounds the time spent waiting on Redis; a machine too busy to run the test
    // promptly slows every answer, Redis or not. What the same requests take with Redis healthy,
    // several at once, is allowed on top (tens of milliseconds on a quiet machine). Two Redis
    // timeouts in series, the defect this guards against, still cost a whole extra budget.
    const healthy = await Promise.all(Array.from({ length: 7 }, () => timed(() => clientCredentials('https://billing.test', 'billing:read'))));
    const slack = Math.max(...healthy.map((answer) => answer.ms));
    const bound = PROMISED_MS + slack;
    redis.pause();
    try {
      const requests: [string, () => Promise<Response>][] = [
        ['opaque client-credentials token (rate limit, then the token: two Redis commands in series)', () => clientCredentials('https://billing.test', 'billing:read')],
        ['authorization request (session, then interaction; the error goes back to the client)', authorize],
        ['readiness', () => fetch(`${server.url}/readyz`)],
      ];
      for (const [name, send] of requests) {
        const alone = await timed(send);
        expect(alone.status, `${name}: ${alone.body}`).toBe(503);
        expect(alone.ms, name).toBeLessThan(bound);
        const together = await Promise.all(Array.from({ length: 6 }, () => timed(send)));
        for (const answer of together) {
          expect(answer.status, `${name}: ${answer.body}`).toBe(503);
          expect(answer.ms, name).toBeLessThan(bound);
        }
      }
      const token = await timed(() => clientCredentials('https://billing.test', 'billing:read'));
      expect(JSON.parse(token.body)).toMatchObject({ error: 'temporarily_unavailable' });
    } finally {
      redis.resume();
    }
    // Work a request left behind is not cut short by its spent deadline, and the next requests get a fresh one.
    for (let attempt = 0; ; attempt += 1) {
      const response = await clientCredentials('https://billing.test', 'billing:read');
      if (response.status === 200) break;
      expect(attempt).toBeLessThan(50);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 60_000);
});
