/**
 * Faults injected while a load generator runs against two `tessera serve` processes:
 * Redis killed and started again (a Redis server of this test's own), every PostgreSQL
 * connection of this installation killed (pg_terminate_backend, by application_name), and a
 * node sent SIGTERM with a request in flight. Each answer must be right or a fast 503
 * `temporarily_unavailable`; never a hang, never "active" for a token whose state could not be
 * checked. Tessera recovers without a restart, and nothing committed is lost.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { CREDENTIALS, introspect, issueToken, prepareInstallation, revoke, startNode, startOwnRedis } from '../helpers/cluster.js';
import type { Installation, OwnRedis, Reply, TesseraNode } from '../helpers/cluster.js';

/** Longest any answer may take while a dependency is down (docs/operations.md: Redis 1 s, PostgreSQL connect 3 s). */
const ANSWER_BOUND_MS = 5000;
/** Longest recovery we accept once the dependency is back. */
const RECOVERY_BOUND_MS = 15_000;

interface Prefault {
  jwt: string;
  opaque: string;
  revokedJwt: string;
  revokedOpaque: string;
  sat: string;
}

describe.skipIf(postgresRedisSkipReason)('faults under load', () => {
  let redis: OwnRedis;
  let installation: Installation;
  let nodes: TesseraNode[] = [];
  let before: Prefault;
  let load: ReturnType<typeof loadGenerator>;
  const figures: Record<string, string> = {};

  beforeAll(async () => {
    redis = await startOwnRedis();
    installation = await prepareInstallation({ redisUrl: redis.url });
    nodes = await Promise.all(['a', 'b'].map((name) => startNode(installation, name)));
    const [a, b] = nodes as [TesseraNode, TesseraNode];
    before = {
      jwt: (await issueToken(a.url, 'https://orders.test')).body.access_token,
      opaque: (await issueToken(b.url, 'https://billing.test')).body.access_token,
      revokedJwt: (await issueToken(a.url, 'https://orders.test')).body.access_token,
      revokedOpaque: (await issueToken(a.url, 'https://billing.test')).body.access_token,
      sat: installation.ordersSat,
    };
    expect((await revoke(b.url, before.revokedJwt)).status).toBe(200);
    expect((await revoke(b.url, before.revokedOpaque, 'billing')).status).toBe(200);
    load = loadGenerator(nodes, before);
  }, 150_000);

  afterAll(async () => {
    // A node that died on its own is the finding: show why.
    for (const node of nodes) if (node.child.exitCode !== null && node.child.exitCode !== 0) console.error(`[faults] node ${node.name} exited with ${node.child.exitCode}:\n${node.output().slice(-4000)}`);
    await load?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await installation?.close();
    await redis?.close();
    console.info(`[faults] ${Object.entries(figures).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  });

  /** Every pre-fault token still has its pre-fault state, on every node. */
  async function expectPrefaultState() {
    for (const node of nodes.filter((n) => n.child.exitCode === null)) {
      expect((await introspect(node.url, before.jwt)).body).toMatchObject({ active: true });
      expect((await introspect(node.url, before.opaque, 'billing')).body).toMatchObject({ active: true });
      expect((await introspect(node.url, before.sat)).body).toMatchObject({ active: true, token_kind: 'sat' });
      expect((await introspect(node.url, before.revokedJwt)).body).toEqual({ active: false });
      expect((await introspect(node.url, before.revokedOpaque, 'billing')).body).toEqual({ active: false });
    }
  }

  /** Polls until a full probe (issue, introspect every kind, revoke) succeeds on every node; returns the ms it took. */
  async function timeToRecover(from: number): Promise<number> {
    for (;;) {
      const results = await Promise.all(nodes.filter((n) => n.child.exitCode === null).map(probe));
      if (results.every(Boolean)) return performance.now() - from;
      if (performance.now() - from > RECOVERY_BOUND_MS) throw new Error('no recovery within the bound');
      await sleep(50);
    }
  }
  async function probe(node: TesseraNode): Promise<boolean> {
    const issued = await issueToken(node.url, 'https://orders.test');
    if (issued.status !== 200) return false;
    const answers = await Promise.all([
      introspect(node.url, issued.body.access_token),
      introspect(node.url, before.opaque, 'billing'),
      introspect(node.url, before.sat),
    ]);
    if (!answers.every((a) => a.status === 200 && a.body.active === true)) return false;
    return (await revoke(node.url, issued.body.access_token)).status === 200;
  }

  it('serves the baseline load without an error', async () => {
    for (let waited = 0; load.peek() < 20 && waited < 15_000; waited += 250) await sleep(250);
    const phase = load.take();
    expect(phase.replies.length).toBeGreaterThanOrEqual(20);
    expect(phase.violations).toEqual([]);
    expect(phase.replies.filter((r) => r.status !== 200)).toEqual([]);
    await expectPrefaultState();
  });

  it('fails fast with 503 temporarily_unavailable while Redis is down, and recovers when it is back', async () => {
    await redis.kill();
    await sleep(2500);
    const ready = await fetch(`${nodes[0]!.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ cache: 'unavailable', database: 'ok' });
    const down = load.take();
    expect(down.violations).toEqual([]);
    // Tokens whose state lives in Redis cannot be checked: the answer is a 503, not a guess.
    expect(down.replies.some((r) => r.status === 503)).toBe(true);
    figures['answers while Redis was down'] = `${down.replies.length} (${down.replies.filter((r) => r.status === 503).length} × 503, max ${Math.max(...down.replies.map((r) => r.ms)).toFixed(0)} ms)`;

    await redis.start();
    const recovered = await timeToRecover(performance.now());
    figures['recovery after Redis restart'] = `${recovered.toFixed(0)} ms`;
    expect(load.take().violations).toEqual([]);
    await expectPrefaultState();
  }, 60_000);

  it('fails fast while its PostgreSQL connections are killed, and recovers without a restart', async () => {
    let killed = 0;
    let last = 0;
    for (let round = 0; round < 5; round += 1) {
      const { rows } = await installation.postgres.db.query<{ killed: boolean }>(
        'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()',
        [installation.applicationName],
      );
      killed += rows.filter((r) => r.killed).length;
      last = performance.now();
      await sleep(300);
    }
    expect(killed).toBeGreaterThan(0);
    const recovered = await timeToRecover(last);
    figures['PostgreSQL backends killed'] = String(killed);
    figures['recovery after connection kill'] = `${recovered.toFixed(0)} ms`;
    const phase = load.take();
    expect(phase.violations).toEqual([]);
    await expectPrefaultState();
  }, 60_000);

  it('drains a request in flight on SIGTERM, exits cleanly, and loses no audit event', async () => {
    const [a, b] = nodes as [TesseraNode, TesseraNode];
    load.only(b);
    await sleep(300);
    load.take();
    // A request whose body is half sent is in flight for certain when the signal arrives.
    const body = new URLSearchParams({ token: before.jwt }).toString();
    const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${a.url}/token/introspection`, {
        method: 'POST',
        agent: false,
        headers: { authorization: CREDENTIALS.orders, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 800);
    });
    await sleep(200);
    const signalled = performance.now();
    a.child.kill('SIGTERM');
    await sleep(300);
    // Draining: no new connections, the one in flight goes on.
    const refused = await fetch(`${a.url}/healthz`, { signal: AbortSignal.timeout(1000) }).then(() => false, () => true);
    expect(refused).toBe(true);
    const answer = await reply;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ active: true });
    expect(await a.exited).toBe(0);
    figures['SIGTERM to exit with a request in flight'] = `${(performance.now() - signalled).toFixed(0)} ms`;

    const phase = load.take();
    expect(phase.violations).toEqual([]);
    expect(phase.replies.filter((r) => r.status !== 200)).toEqual([]);

    // Every revocation that was answered 200 has its audit row (node a flushed on shutdown;
    // node b writes within its 1 s batch window).
    await load.stop();
    await sleep(2500);
    const { rows } = await installation.postgres.db.query<{ target_id: string }>("SELECT target_id FROM audit_events WHERE action = 'token.revoked'");
    const audited = new Set(rows.map((r) => r.target_id));
    const missing = load.revokedJtis.filter((jti) => !audited.has(jti));
    figures['revocations answered 200 / audited'] = `${load.revokedJtis.length} / ${load.revokedJtis.length - missing.length}`;
    expect(load.revokedJtis.length).toBeGreaterThan(3);
    expect(missing).toEqual([]);
  }, 60_000);
});

/**
 * Four loops, each: issue a JWT on one node, introspect it and a pre-fault token on another,
 * revoke every other one. Every reply is checked as it arrives; `take()` hands over what arrived
 * since the last call.
 */
function loadGenerator(all: TesseraNode[], before: Prefault) {
  let targets = all;
  let running = true;
  let replies: (Reply & { what: string })[] = [];
  let violations: string[] = [];
  const revokedJtis: string[] = [];
  const revokedTokens = new Set<string>([before.revokedJwt, before.revokedOpaque]);

  const check = (what: string, reply: Reply, expectActive?: boolean) => {
    replies.push({ ...reply, what });
    if (reply.ms > ANSWER_BOUND_MS) violations.push(`${what}: took ${reply.ms.toFixed(0)} ms`);
    if (reply.status === 503) {
      if (reply.body?.error !== 'temporarily_unavailable') violations.push(`${what}: 503 ${JSON.stringify(reply.body)}`);
      return false;
    }
    if (reply.status !== 200) {
      violations.push(`${what}: ${reply.status} ${JSON.stringify(reply.body)}`);
      return false;
    }
    if (expectActive === false && reply.body.active !== false) violations.push(`${what}: a revoked token answered ${JSON.stringify(reply.body)}`);
    if (expectActive === true && reply.body.active !== true) violations.push(`${what}: a live token answered ${JSON.stringify(reply.body)}`);
    return true;
  };

  const loop = async (offset: number) => {
    for (let i = offset; running; i += 4) {
      const node = targets[i % targets.length]!;
      const other = targets[(i + 1) % targets.length]!;
      const issued = await issueToken(node.url, 'https://orders.test');
      if (!check('token', issued)) {
        await sleep(20);
        continue;
      }
      const token = issued.body.access_token as string;
      check('introspect fresh', await introspect(other.url, token), true);
      const pick = [before.jwt, before.revokedJwt, before.sat][i % 3]!;
      check('introspect pre-fault', await introspect(other.url, pick), !revokedTokens.has(pick));
      check('introspect revoked opaque', await introspect(node.url, before.revokedOpaque, 'billing'), false);
      if ((i >> 2) % 2 === 0) {
        const revoked = await revoke(node.url, token);
        if (check('revoke', revoked)) {
          revokedJtis.push(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti);
          check('introspect after revoke', await introspect(other.url, token), false);
        }
      }
    }
  };
  const loops = [0, 1, 2, 3].map(loop);
  return {
    revokedJtis,
    only(node: TesseraNode) {
      targets = [node];
    },
    /** Replies since the last take(). */
    peek: () => replies.length,
    take() {
      const out = { replies, violations };
      replies = [];
      violations = [];
      return out;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}
