/**
 * Token exchange across nodes: two `tessera serve` processes on one PostgreSQL schema and one
 * Redis prefix. A token exchanged on one node from a SAT is honoured on the other, and revoking
 * the SAT, rotating it past its grace period, or disabling its service account on one node ends
 * every token exchanged from it on the other within the documented staleness bound (1 s,
 * docs/operations.md "Staleness windows"), for a JWT and an opaque child alike.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { introspect, managementCall, postForm, prepareInstallation, startNode } from '../helpers/cluster.js';
import type { Installation, TesseraNode } from '../helpers/cluster.js';
import { ACCESS_TOKEN_TYPE as ACCESS_TOKEN, basic, EXCHANGE_GRANT as EXCHANGE, EXCHANGER as EXCHANGER_CLIENT, exchangerClient, proof, proofKey, seedWith } from '../helpers/exchange.js';

const EXCHANGER = basic(EXCHANGER_CLIENT.id, EXCHANGER_CLIENT.secret);
/** The documented bound, plus the time one introspection round trip may take on a busy 2-core machine. */
const STALENESS_MS = 1000;

describe.skipIf(postgresRedisSkipReason)('token exchange on two nodes', () => {
  let installation: Installation;
  let a: TesseraNode;
  let b: TesseraNode;

  const management = (node: TesseraNode, method: string, path: string, body?: unknown) => managementCall(installation, node, method, path, body);
  const exchange = async (node: TesseraNode, subject: string, resource: string) => {
    const answer = await postForm(node.url, '/token', { grant_type: EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN, resource }, EXCHANGER);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body.access_token as string;
  };
  /** A SAT of a new service account for both APIs, and one JWT and one opaque child exchanged from it on node a. */
  const family = async () => {
    const account = await management(a, 'POST', '/service-accounts', { name: `robot-${Math.random().toString(36).slice(2, 8)}` });
    const issued = await management(a, 'POST', '/tokens', { type: 'sat', service_account_id: account.body.id, name: 'exchange across nodes', scopes: ['orders:read', 'billing:read'], resources: ['https://orders.test', 'https://billing.test'], expires_in: 3600 });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    const jwt = await exchange(a, issued.body.token, 'https://orders.test');
    const opaque = await exchange(a, issued.body.token, 'https://billing.test');
    // Node b has seen both children active (and cached what it caches) before the change.
    expect((await introspect(b.url, jwt)).body).toMatchObject({ active: true, sub: account.body.id, client_id: 'exchanger' });
    expect((await introspect(b.url, opaque, 'billing')).body).toMatchObject({ active: true, sub: account.body.id });
    return { accountId: account.body.id as string, tokenId: issued.body.id as string, sat: issued.body.token as string, jwt, opaque };
  };
  /** Waits until node b answers both children inactive; returns how long after `since` that was. */
  const inactiveOnB = async (children: { jwt: string; opaque: string }, since: number) => {
    for (;;) {
      const [jwt, opaque] = await Promise.all([introspect(b.url, children.jwt), introspect(b.url, children.opaque, 'billing')]);
      if (jwt.body.active === false && opaque.body.active === false) return performance.now() - since;
      expect(performance.now() - since, 'node b still answers a child active').toBeLessThan(STALENESS_MS);
      await sleep(20);
    }
  };

  beforeAll(async () => {
    installation = await prepareInstallation({
      overrides: seedWith(exchangerClient(['orders:read', 'billing:read'])),
    });
    [a, b] = await Promise.all([startNode(installation, 'a'), startNode(installation, 'b')]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await installation?.close();
  });

  it('revoking the SAT on node a ends its children on node b within the staleness bound', async () => {
    const children = await family();
    expect((await management(a, 'DELETE', `/tokens/${children.tokenId}`)).status).toBe(204);
    const delay = await inactiveOnB(children, performance.now());
    console.info(`[exchange scale-out] SAT revoked on a → children inactive on b after ${delay.toFixed(1)} ms`);
  });

  it('disabling the owner on node a ends the children on node b', async () => {
    const children = await family();
    expect((await management(a, 'PATCH', `/service-accounts/${children.accountId}`, { status: 'disabled' })).status).toBe(200);
    await inactiveOnB(children, performance.now());
  });

  it('rotating the SAT on node a keeps the children through the grace period only', async () => {
    expect((await management(a, 'PATCH', '/organization', { policy: { token_rotation_grace_seconds: 2 } })).status).toBe(200);
    const children = await family();
    expect((await management(a, 'POST', `/tokens/${children.tokenId}/rotate`)).status).toBe(200);
    expect((await introspect(b.url, children.jwt)).body.active).toBe(true);
    expect((await introspect(b.url, children.opaque, 'billing')).body.active).toBe(true);
    // The grace ends two seconds after the rotation; the clock is the same on both nodes.
    await sleep(2000);
    await inactiveOnB(children, performance.now());
  }, 30_000);

  it('accepts a DPoP proof once across the nodes: the same proof on the other node is a replay', async () => {
    // Both nodes behind one name, as behind a load balancer: the proof's htu is the issuer's token endpoint.
    const host = new URL(installation.issuer).host;
    const grant = (node: TesseraNode, dpop: string) =>
      new Promise<{ status: number; body: Record<string, any> }>((resolve, reject) => {
        const body = new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }).toString();
        const req = request(`${node.url}/token`, { method: 'POST', headers: { host, 'content-type': 'application/x-www-form-urlencoded', authorization: basic('worker', 'worker-secret-0123456789abcdef'), dpop } }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const once = await proof(await proofKey(), { htu: `${installation.issuer}/token` });
    const first = await grant(a, once);
    expect([first.status, first.body.token_type]).toEqual([200, 'DPoP']);
    const replay = await grant(b, once);
    expect([replay.status, replay.body.error]).toEqual([400, 'invalid_grant']);
  });
});
