/**
 * /metrics behind TESSERA_METRICS_TOKEN: a scraper presenting the token as a Bearer credential
 * reads the metrics; anyone else gets 401 with WWW-Authenticate and no metric text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const TOKEN = 'metrics-scraper-token-0123456789abcdef';

describe.skipIf(postgresRedisSkipReason)('/metrics with TESSERA_METRICS_TOKEN', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('postgres+redis', { env: { TESSERA_METRICS_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers the scraper that presents the token', async () => {
    const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/^tessera_/m);
  });

  it('refuses a missing, wrong or differently-schemed credential with 401 and nothing else', async () => {
    for (const authorization of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`]) {
      const response = await fetch(`${server.url}/metrics`, { headers: authorization ? { authorization } : {} });
      expect(response.status, String(authorization)).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      const text = await response.text();
      expect(text).not.toContain('tessera_');
      expect(JSON.parse(text)).toMatchObject({ error: 'invalid_token' });
    }
  });

  it('leaves the health endpoints open for the load balancer', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
