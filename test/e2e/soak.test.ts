/**
 * The CI-sized soak (about a minute; `npm run soak` runs ten) and the bound on caches: the
 * server's heap does not grow with the number of distinct tokens it has introspected.
 */
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateToken } from '../../src/tokens/format.js';
import { postgresRedisSkipReason } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { runSoak } from '../soak/soak.js';

const SECONDS = Number(process.env.SOAK_CI_SECONDS ?? 45);

describe.skipIf(postgresRedisSkipReason)('soak', () => {
  it(`serves ${SECONDS} s of mixed load with no unexpected answer and memory that levels off`, async () => {
    const result = await runSoak({ durationMs: SECONDS * 1000, concurrency: 4 });
    console.info(
      `[soak] ${SECONDS} s, ${result.requests} requests, ${result.unexpected.length} unexpected, ${result.distinctTokensIntrospected} distinct tokens; rss ${result.rssAfterWarmup} → ${result.rssAtEnd} MiB (${result.growthPercent}%): ${result.rss.map(([s, m]) => `${s}:${m}`).join(' ')}`,
    );
    expect(result.unexpected).toEqual([]);
    expect(result.requests).toBeGreaterThan(SECONDS * 5);
    // A short run is noisy (the JIT and pools still settle): a generous bound that a leak of
    // a few KiB per request, at this rate, would still cross.
    expect(result.growthPercent).toBeLessThan(25);
  }, (SECONDS + 90) * 1000);
});

describe.skipIf(postgresRedisSkipReason)('bounded caches', () => {
  let server: TestServer;
  let gc: () => void;
  beforeAll(async () => {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
    server = await startTestServer('postgres+redis', { overrides: EXAMPLE_SEED, logLevel: 'silent' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('does not grow the heap with the number of distinct tokens introspected', async () => {
    const caller = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;
    const worker = `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`;
    const post = (path: string, body: Record<string, string>, authorization: string) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) }).then((r) => r.json());
    const org = server.bootstrap.organization_id;
    const serviceAccount = ((await server.tessera.referenceTokenLookup.resolve(server.managementToken)) as { ok: true; token: { ownerId: string } }).token.ownerId;

    /** One batch: real JWTs, real SATs and garbage of every shape, all never seen before. */
    const batch = async (size: number) => {
      for (let i = 0; i < size; i += 25) {
        await Promise.all(
          Array.from({ length: 25 }, async (_, k) => {
            // One in ten a real JWT, one in ten a real SAT, the rest never-issued values of
            // every shape (a well-formed SAT that storage does not know, a JWT, an opaque value).
            const kind = [0, 1, 2, 2, 3, 3, 4, 4, 4, 4][(i + k) % 10]!;
            let token: string;
            if (kind === 0) token = (await post('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }, worker)).access_token;
            else if (kind === 1) token = (await server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'sat', name: 'probe', serviceAccountId: serviceAccount, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 600, createdBy: 'test' })).token;
            else if (kind === 2) token = generateToken('sat');
            else if (kind === 3) token = `eyJhbGciOiJFUzI1NiJ9.${randomBytes(60).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
            else token = randomBytes(32).toString('base64url');
            const answer = await post('/token/introspection', { token }, caller);
            if (answer.active !== (kind < 2)) throw new Error(`unexpected introspection answer ${JSON.stringify(answer)}`);
          }),
        );
      }
    };
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const SIZE = 1000;
    await batch(1000); // warm-up: JIT, pools, and the first entries of every bounded cache
    const start = heap();
    await batch(SIZE);
    const middle = heap();
    await batch(SIZE);
    const end = heap();
    const perToken = (end - middle) / SIZE;
    console.info(`[bounded caches] heap ${(start / 2 ** 20).toFixed(2)} → ${(middle / 2 ** 20).toFixed(2)} → ${(end / 2 ** 20).toFixed(2)} MiB over 2 × ${SIZE} more distinct tokens (${perToken.toFixed(0)} B per token in the last ${SIZE})`);
    // Anything kept per token (a JWT alone is about 600 B, a cache entry with its answer well
    // over 1 KiB) would cross the bound; what is left is the noise of a heap measured after GC.
    expect(perToken).toBeLessThan(400);
  }, 180_000);
});
