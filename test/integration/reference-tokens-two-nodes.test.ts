/**
 * Two Tessera processes on one PostgreSQL + Redis: a change made through one node is seen by the
 * other at once (pub/sub invalidation of the in-process caches), and usage counted on both nodes
 * adds up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createEnvelope } from '../../src/keys/envelope.js';
import { openPostgres, openRedis, postgresRedisSkipReason } from '../helpers/backends.js';
import type { OpenedPostgres, OpenedRedis } from '../helpers/backends.js';
import { sharedNodeEnv, spawnNode } from '../helpers/spawn-node.js';
import type { SpawnedNode } from '../helpers/spawn-node.js';
import { createResourceServer, createServiceAccount, TEST_KEK } from '../helpers/token-fixtures.js';
import type { ResourceServerFixture } from '../helpers/token-fixtures.js';

let pg: OpenedPostgres;
let redis: OpenedRedis;
let a: SpawnedNode;
let b: SpawnedNode;
let managementToken: string;
let orders: ResourceServerFixture;
let account: { id: string };

async function api(node: SpawnedNode, method: string, path: string, body?: unknown) {
  const response = await fetch(`${node.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${managementToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function introspect(node: SpawnedNode, token: string): Promise<{ active: boolean }> {
  const response = await fetch(`${node.url}/token/introspection`, {
    method: 'POST',
    headers: { authorization: orders.basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { active: boolean };
}

async function issueSat(node: SpawnedNode) {
  const res = await api(node, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'two-node', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 86400 });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}

/** Polls `node` until the token is inactive; how long that took after `since`, and how many requests. */
async function untilInactive(node: SpawnedNode, token: string, since: number, budgetMs: number): Promise<{ ms: number; polls: number }> {
  for (let polls = 1; ; polls += 1) {
    if (!(await introspect(node, token)).active) return { ms: performance.now() - since, polls };
    if (performance.now() - since > budgetMs) return { ms: Infinity, polls };
  }
}

describe.skipIf(postgresRedisSkipReason !== undefined)('two nodes on one PostgreSQL + Redis', () => {
  beforeAll(async () => {
    [pg, redis] = await Promise.all([openPostgres(), openRedis()]);
    const env = sharedNodeEnv(pg, redis);
    // Started together, as a rolling deploy would: one of them bootstraps, both migrate safely.
    [a, b] = await Promise.all([spawnNode(env, { timeoutMs: 90_000 }), spawnNode(env, { timeoutMs: 90_000 })]);
    managementToken = (a.bootstrapped ?? b.bootstrapped)!.management_token;
    const organizationId = (a.bootstrapped ?? b.bootstrapped)!.organization_id;
    orders = await createResourceServer({ db: pg.db, envelope: createEnvelope(Buffer.from(TEST_KEK, 'base64')) }, organizationId, { scopes: ['orders:read'] });
    account = await createServiceAccount(pg.db, organizationId);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([pg?.close(), redis?.close()]);
  });

  it('a revocation on node A is seen by node B at once: the first request to B after A answers is refused', async () => {
    const samples: { ms: number; polls: number }[] = [];
    for (let i = 0; i < 10; i += 1) {
      const sat = await issueSat(a);
      // B has the token in its in-process cache.
      expect((await introspect(b, sat.token)).active).toBe(true);
      expect((await introspect(b, sat.token)).active).toBe(true);
      const deleted = await api(a, 'DELETE', `/tokens/${sat.id}`);
      expect(deleted.status).toBe(204);
      samples.push(await untilInactive(b, sat.token, performance.now(), 2000));
    }
    // A publishes before it answers, so B normally knows before anyone can ask it. The time
    // itself is a benchmark figure (npm run bench), too load-dependent for a test; the documented
    // bound of 1 s is not.
    expect(samples.filter((s) => s.polls === 1).length).toBeGreaterThanOrEqual(9);
    expect(Math.max(...samples.map((s) => s.ms))).toBeLessThanOrEqual(1000);
  });

  it('a rotation on node A is seen by node B: the new secret works, the old one within its grace', async () => {
    const sat = await issueSat(a);
    expect((await introspect(b, sat.token)).active).toBe(true);
    const rotated = await api(a, 'POST', `/tokens/${sat.id}/rotate`, {});
    expect(rotated.status).toBe(200);
    expect((await introspect(b, rotated.body.token)).active).toBe(true);
    expect((await introspect(b, sat.token)).active).toBe(true);
    expect((await api(b, 'DELETE', `/tokens/${sat.id}`)).status).toBe(204);
    expect((await introspect(a, rotated.body.token)).active).toBe(false);
    expect((await introspect(a, sat.token)).active).toBe(false);
  });

  it('a leak reported to node B stops the token on node A', async () => {
    const sat = await issueSat(a);
    expect((await introspect(a, sat.token)).active).toBe(true);
    const res = await fetch(`${b.url}/api/v1/tokens/leaks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: [sat.token] }) });
    expect(res.status).toBe(202);
    await expect.poll(async () => (await introspect(a, sat.token)).active, { timeout: 2000, interval: 10 }).toBe(false);
  });

  it('usage counted on both nodes adds up in PostgreSQL', async () => {
    const sat = await issueSat(a);
    for (let i = 0; i < 5; i += 1) await introspect(a, sat.token);
    for (let i = 0; i < 7; i += 1) await introspect(b, sat.token);
    await expect.poll(async () => (await api(a, 'GET', `/tokens/${sat.id}`)).body.use_count, { timeout: 5000, interval: 100 }).toBe(12);
  });
});
