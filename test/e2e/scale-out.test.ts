/**
 * Scale-out: three `tessera serve` processes on one PostgreSQL schema and one Redis prefix, as
 * behind a load balancer, under a background mix of token, introspection and revocation
 * requests. What one node issues, revokes or rotates, every node honours.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { introspect, issueToken, managementCall, percentile, postForm, prepareInstallation, revoke, runCli, startNode } from '../helpers/cluster.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { freePort } from '../helpers/server.js';
import { browserless, CALLBACK, signIn } from '../helpers/sign-in.js';

const WEBAPP = { id: 'webapp', secret: 'webapp-secret-0123456789abcdef' };
const webappBasic = `Basic ${Buffer.from(`${WEBAPP.id}:${WEBAPP.secret}`).toString('base64')}`;
import type { Installation, TesseraNode } from '../helpers/cluster.js';

describe.skipIf(postgresRedisSkipReason)('several nodes on one PostgreSQL and one Redis', () => {
  let installation: Installation;
  let nodes: TesseraNode[] = [];
  let load: { stop(): Promise<{ requests: number; unexpected: string[] }> } | undefined;

  beforeAll(async () => {
    // The issuer is node a's address, so the engine's sign-in redirects lead somewhere real.
    const portA = await freePort();
    installation = await prepareInstallation({
      issuer: `http://127.0.0.1:${portA}`,
      overrides: {
        seed: {
          resourceServers: EXAMPLE_SEED.seed.resourceServers,
          clients: [
            ...EXAMPLE_SEED.seed.clients,
            { client_id: WEBAPP.id, client_secret: WEBAPP.secret, grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'client_secret_basic', redirect_uris: [CALLBACK], scopes: ['openid', 'offline_access'] },
          ],
        },
      },
    });
    nodes = await Promise.all(['a', 'b', 'c'].map((name) => startNode(installation, name, {}, name === 'a' ? portA : undefined)));
    load = backgroundLoad(nodes);
  }, 150_000);

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await installation?.close();
  });

  it('introspects a token issued on any node as active on every node, for every token kind', async () => {
    for (const issuer of nodes) {
      const jwt = (await issueToken(issuer.url, 'https://orders.test')).body.access_token as string;
      const opaque = (await issueToken(issuer.url, 'https://billing.test')).body.access_token as string;
      for (const node of nodes) {
        expect((await introspect(node.url, jwt)).body, `JWT from ${issuer.name} on ${node.name}`).toMatchObject({ active: true, sub: 'worker' });
        expect((await introspect(node.url, opaque, 'billing')).body, `opaque from ${issuer.name} on ${node.name}`).toMatchObject({ active: true, sub: 'worker' });
        expect((await introspect(node.url, installation.ordersSat)).body).toMatchObject({ active: true, token_kind: 'sat' });
      }
    }
  });

  it('honours a revocation made on one node on every other node from the next request on (README: staleness windows)', async () => {
    const delays: number[] = [];
    for (let i = 0; i < 12; i += 1) {
      const origin = nodes[i % nodes.length]!;
      const others = nodes.filter((n) => n !== origin);
      const opaqueRound = i % 3 === 2;
      const token = (await issueToken(nodes[(i + 1) % nodes.length]!.url, opaqueRound ? 'https://billing.test' : 'https://orders.test')).body.access_token as string;
      const caller = opaqueRound ? 'billing' : 'orders';
      // Every node has seen it active (and cached whatever it caches) before the revocation.
      for (const node of nodes) expect((await introspect(node.url, token, caller)).body.active).toBe(true);
      expect((await revoke(origin.url, token, caller)).status).toBe(200);
      const revokedAt = performance.now();
      // While Redis is up the window is zero: the first answer after the revocation, on every
      // other node, is already inactive. The delay recorded is that answer's arrival.
      await Promise.all(
        others.map(async (node) => {
          const answer = await introspect(node.url, token, caller);
          expect(answer.status, `node ${node.name}`).toBe(200);
          expect(answer.body, `node ${node.name} right after the revocation on ${origin.name}`).toEqual({ active: false });
          delays.push(performance.now() - revokedAt);
        }),
      );
    }
    const p99 = percentile(delays, 99);
    console.info(`[scale-out] revocation to a confirmed inactive answer on another node, over ${delays.length} checks: p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...delays).toFixed(1)} ms`);
  });

  it('honours a SAT revocation made on one node on every node', async () => {
    // Revoked last in this file: the SAT is used by the other tests.
    expect((await revoke(nodes[1]!.url, installation.ordersSat)).status).toBe(200);
    const revokedAt = performance.now();
    // Documented bound (docs/operations.md, staleness windows): 1 s on the other nodes, which cache PAT/SAT answers.
    for (const node of nodes) {
      for (;;) {
        const answer = await introspect(node.url, installation.ordersSat);
        if (answer.body.active === false) break;
        expect(performance.now() - revokedAt, `node ${node.name} still answers active`).toBeLessThan(1000);
        await sleep(20);
      }
    }
  });

  it('publishes a staged signing key on every node before any node signs with it', async () => {
    const kidsOf = async (node: TesseraNode) => ((await (await fetch(`${node.url}/jwks`)).json()) as { keys: { kid: string; alg: string }[] }).keys;
    const signingKid = async (node: TesseraNode) => decodeProtectedHeader((await issueToken(node.url, 'https://orders.test')).body.access_token).kid!;
    const before = new Set((await kidsOf(nodes[0]!)).map((k) => k.kid));
    const oldKid = await signingKid(nodes[0]!);

    const staged = await runCli(installation, ['keys', 'rotate']);
    expect(staged.code, staged.output).toBe(0);
    const started = performance.now();
    let newKid: string | undefined;
    for (const node of nodes) {
      for (;;) {
        const fresh = (await kidsOf(node)).find((k) => k.alg === 'ES256' && !before.has(k.kid));
        if (fresh) {
          newKid = fresh.kid;
          break;
        }
        if (performance.now() - started > 10_000) throw new Error(`node ${node.name} never published the staged key`);
        await new Promise((r) => setTimeout(r, 25));
      }
      // Published, but not signing: a verifier that fetched /jwks now already knows the next key.
      expect(await signingKid(node)).toBe(oldKid);
    }
    console.info(`[scale-out] staged key on every node's JWKS after ${(performance.now() - started).toFixed(0)} ms`);

    const oldToken = (await issueToken(nodes[2]!.url, 'https://orders.test')).body.access_token as string;
    const promoted = await runCli(installation, ['keys', 'rotate', '--force']);
    expect(promoted.code, promoted.output).toBe(0);
    for (const node of nodes) {
      const deadline = performance.now() + 10_000;
      while ((await signingKid(node)) !== newKid) {
        if (performance.now() > deadline) throw new Error(`node ${node.name} never signed with the promoted key`);
        await new Promise((r) => setTimeout(r, 25));
      }
      const fresh = (await issueToken(node.url, 'https://orders.test')).body.access_token as string;
      // A token signed with the new key verifies on every node, and the retired key's tokens still do.
      for (const other of nodes) {
        expect((await introspect(other.url, fresh)).body.active).toBe(true);
        expect((await introspect(other.url, oldToken)).body.active).toBe(true);
      }
    }
  }, 180_000);

  it('served the background load without an unexpected answer', async () => {
    const result = await load!.stop();
    load = undefined;
    expect(result.requests).toBeGreaterThan(50);
    expect(result.unexpected).toEqual([]);
  });

  it('replays a refresh inside the reuse grace on any node, and revokes the family on every node after it', async () => {
    const [a, b, c] = nodes as [TesseraNode, TesseraNode, TesseraNode];
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const authorization = `${a.url}/auth?${new URLSearchParams({ client_id: WEBAPP.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid offline_access', prompt: 'consent', code_challenge: challenge, code_challenge_method: 'S256' })}`;
    const { callback } = await signIn(browserless({ url: a.url }), authorization, 'admin', installation.bootstrap.admin.password!);
    const refresh = (node: TesseraNode, token: string) => postForm(node.url, '/token', { grant_type: 'refresh_token', refresh_token: token }, webappBasic);

    const exchanged = await postForm(b.url, '/token', { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: CALLBACK, code_verifier: verifier }, webappBasic);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const first = exchanged.body.refresh_token as string;
    expect(first).toBeTruthy();
    const rotated = await refresh(c, first);
    expect(rotated.status).toBe(200);
    const second = rotated.body.refresh_token as string;
    expect(second).not.toBe(first);
    // Inside the grace window (5 s by default) the old token gets the same answer on any node.
    for (const node of [a, b]) {
      const again = await refresh(node, first);
      expect(again.status, `node ${node.name}`).toBe(200);
      expect(again.body.refresh_token, `node ${node.name}`).toBe(second);
    }
    await sleep(6000);
    // After it, reuse on one node is theft: the whole family ends, on every node.
    expect((await refresh(b, first)).body.error).toBe('invalid_grant');
    for (const node of nodes) expect((await refresh(node, second)).body.error, `node ${node.name}`).toBe('invalid_grant');
  }, 60_000);
  it('accepts a rotated SAT’s previous secret on every node during the grace period, and after it revokes the family on every node', async () => {
    const [a, b] = nodes as [TesseraNode, TesseraNode];
    const management = (node: TesseraNode, method: string, path: string, body?: unknown) => managementCall(installation, node, method, path, body);
    const activeEverywhere = async (token: string) => Promise.all(nodes.map(async (node) => (await introspect(node.url, token)).body.active as boolean));
    // A short grace, so the test can outlive it (policy token_rotation_grace_seconds, default 24 h).
    expect((await management(a, 'PATCH', '/organization', { policy: { token_rotation_grace_seconds: 2 } })).status).toBe(200);
    const accounts = await management(a, 'GET', '/service-accounts');
    const account = (accounts.body.items as { id: string; name: string }[]).find((item) => item.name === 'bootstrap')!;
    const issued = await management(a, 'POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'rotation across nodes', scopes: ['orders:read'], resources: ['https://orders.test'], expires_in: 3600 });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    const old = issued.body.token as string;
    // Every node has the old secret cached before the rotation.
    expect(await activeEverywhere(old)).toEqual([true, true, true]);
    const rotated = await management(a, 'POST', `/tokens/${issued.body.id}/rotate`);
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const current = rotated.body.token as string;
    expect(await activeEverywhere(old)).toEqual([true, true, true]);
    expect(await activeEverywhere(current)).toEqual([true, true, true]);
    await sleep(2500);
    // The grace is over: the new secret works everywhere, the old one nowhere.
    expect(await activeEverywhere(current)).toEqual([true, true, true]);
    expect((await introspect(b.url, old)).body).toEqual({ active: false });
    // Presenting the replaced secret after its grace is reuse: the whole token ends, on every
    // node within the documented staleness bound (1 s).
    const since = performance.now();
    while ((await activeEverywhere(current)).some(Boolean)) {
      expect(performance.now() - since, 'the family is still active somewhere').toBeLessThan(1000);
      await sleep(20);
    }
    expect(await activeEverywhere(old)).toEqual([false, false, false]);
  }, 30_000);
});

/** Two loops of issue → introspect (on another node) → sometimes revoke, round-robin over the nodes. */
function backgroundLoad(nodes: TesseraNode[]) {
  let running = true;
  let requests = 0;
  const unexpected: string[] = [];
  const loop = async (offset: number) => {
    for (let i = offset; running; i += 1) {
      const node = nodes[i % nodes.length]!;
      const other = nodes[(i + 1) % nodes.length]!;
      const issued = await issueToken(node.url, i % 2 ? 'https://orders.test' : 'https://billing.test');
      requests += 1;
      if (issued.status !== 200) {
        unexpected.push(`token ${issued.status} ${JSON.stringify(issued.body)}`);
        continue;
      }
      const caller = i % 2 ? 'orders' : 'billing';
      const answer = await introspect(other.url, issued.body.access_token, caller);
      requests += 1;
      if (answer.status !== 200 || answer.body.active !== true) unexpected.push(`introspection ${answer.status} ${JSON.stringify(answer.body)}`);
      if (i % 5 === 0) {
        const revoked = await revoke(other.url, issued.body.access_token, caller);
        requests += 1;
        if (revoked.status !== 200) unexpected.push(`revocation ${revoked.status}`);
      }
    }
  };
  const loops = [0, 1].map(loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { requests, unexpected };
    },
  };
}
