/**
 * `npm run soak`: the long soak on demand. SOAK_MINUTES (default 10) of mixed load against a
 * `tessera serve` process on PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL); prints
 * the memory curve and fails (exit 1) on any unexpected answer or on memory that keeps growing.
 */
import { runSoak } from './soak.js';

const minutes = Number(process.env.SOAK_MINUTES ?? 10);
/** The live heap may grow this much from minute 2 to the end before the soak fails. */
const MAX_GROWTH_PERCENT = 15;

const result = await runSoak({ durationMs: minutes * 60_000, concurrency: Number(process.env.SOAK_CONCURRENCY ?? 4), log: (line) => console.log(line) });
console.log(JSON.stringify({ ...result, rss: undefined, heap: undefined }, null, 2));
console.log(`live heap samples (s, MiB): ${result.heap.map(([s, m]) => `${s}:${m}`).join(' ')}`);
console.log(`rss samples (s, MiB): ${result.rss.map(([s, m]) => `${s}:${m}`).join(' ')}`);
console.log(`[soak] ${minutes} min, ${result.requests} requests, ${result.unexpected.length} unexpected, ${result.distinctTokensIntrospected} distinct tokens introspected; live heap ${result.heapAfterWarmup} MiB after warm-up → ${result.heapAtEnd} MiB at the end (${result.growthPercent}%)`);
process.exit(result.unexpected.length === 0 && result.growthPercent <= MAX_GROWTH_PERCENT ? 0 : 1);
