/**
 * The CI-sized soak (about a minute; `npm run soak` runs ten) and the bound on caches: the
 * server's heap does not grow with the number of distinct tokens it has introspected.
 */
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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
      `[soak] ${SECONDS} s, ${result.requests} requests, ${result.unexpected.length} unexpected, ${result.distinctTokensIntrospected} distinct tokens; live heap ${result.heapAfterWarmup} → ${result.heapAtEnd} MiB (${result.growthPercent}%): ${result.heap.map(([s, m]) => `${s}:${m}`).join(' ')}; rss ${result.rss.map(([s, m]) => `${s}:${m}`).join(' ')}`,
    );
    expect(result.unexpected).toEqual([]);
    expect(result.requests).toBeGreaterThan(SECONDS * 5);
    // The live heap after a full collection, over the second half of the run: a leak of a few
    // KiB per request, at this rate (about 600 a second), would cross this bound.
    expect(result.growthPercent).toBeLessThan(15);
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

  it('keeps no more than a bounded cache entry per distinct token introspected', async () => {
    const caller = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;
    const worker = `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`;
    const post = (path: string, body: Record<string, string>, authorization: string) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) }).then((r) => r.json());

    /** One batch of tokens never seen before. */
    const batch = async (size: number, kinds: readonly number[] = [0, 0, 3, 3, 4, 4, 4]) => {
      for (let i = 0; i < size; i += 25) {
        await Promise.all(
          Array.from({ length: 25 }, async (_, k) => {
            // Real JWTs and never-issued JWT-shaped and opaque values. PATs/SATs are left out on
            // purpose: their answers are cached by design in a bounded LRU (100,000 entries, 60 s;
            // src/tokens/reference-token-cache.ts), which a run this short cannot fill.
            const kind = kinds[(i + k) % kinds.length]!;
            let token: string;
            if (kind === 0) token = (await post('/token', { grant_type: 'client_credentials', resource: 'https://orders.test', scope: 'orders:read' }, worker)).access_token;
            else if (kind === 3) token = `eyJhbGciOiJFUzI1NiJ9.${randomBytes(60).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
            else token = randomBytes(32).toString('base64url');
            const answer = await post('/token/introspection', { token }, caller);
            if (answer.active !== (kind === 0)) throw new Error(`unexpected introspection answer ${JSON.stringify(answer)}`);
          }),
        );
      }
    };
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const SIZE = 1500;
    // Warm-up past the largest bound on the way (10,000 verified JWTs, src/tokens/introspection.ts)
    // with cheap never-issued JWT-shaped values, so every bounded cache is full before measuring.
    await batch(10_500, [3]);
    await batch(500);
    const start = heap();
    await batch(SIZE);
    const middle = heap();
    await batch(SIZE);
    const end = heap();
    const perToken = (end - middle) / SIZE;
    console.info(`[bounded caches] heap ${(start / 2 ** 20).toFixed(2)} → ${(middle / 2 ** 20).toFixed(2)} → ${(end / 2 ** 20).toFixed(2)} MiB over 2 × ${SIZE} more distinct tokens (${perToken.toFixed(0)} B per token in the last ${SIZE})`);
    // Tessera's caches are bounded by count (verified JWTs 10,000, opaque tokens 10,000, PAT/SAT
    // answers 100,000, usage counters 50,000 until flushed), at a few hundred bytes an entry,
    // so while they fill, each new token may cost that much. A leak that kept a request, a
    // response or a connection per token would cost several KiB; that is what this bound
    // catches in a CI-sized run. The flat RSS of the 10-minute soak shows the caches' ceiling.
    expect(perToken).toBeLessThan(2000);
  }, 180_000);
});
