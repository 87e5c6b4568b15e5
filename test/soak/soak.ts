/**
 * The soak: mixed load against a `tessera serve` process on PostgreSQL and Redis for a set
 * time, counting every answer that is not the one expected, and sampling the process's
 * live heap (after a full collection) and resident memory. Used by `npm run soak` (10 minutes by default) and by the CI test (1 minute).
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { connectLiveHeap, inspectorUrl } from './live-heap.js';
import { introspect, issueToken, postForm, prepareInstallation, revoke, startNode } from '../helpers/cluster.js';

export interface SoakResult {
  durationMs: number;
  requests: number;
  unexpected: string[];
  /** [seconds since start, resident set size in MiB] every sample, for the record. */
  rss: [number, number][];
  /** [seconds since start, live heap in MiB after a full collection] every sample. */
  heap: [number, number][];
  /** Live heap at the warm-up mark (2 minutes, or half of a short run) and at the end, in MiB. */
  heapAfterWarmup: number;
  heapAtEnd: number;
  /** Growth of the live heap from the warm-up mark to the end: the leak measure. */
  growthPercent: number;
  distinctTokensIntrospected: number;
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

export async function runSoak(options: { durationMs: number; concurrency?: number; log?: (line: string) => void }): Promise<SoakResult> {
  const log = options.log ?? (() => {});
  const installation = await prepareInstallation();
  const node = await startNode(installation, 'soak', { NODE_OPTIONS: '--inspect=127.0.0.1:0' });
  const pid = node.child.pid!;
  const inspector = inspectorUrl(node.output());
  if (!inspector) throw new Error(`the soak node printed no inspector address:\n${node.output()}`);
  const liveHeap = await connectLiveHeap(inspector);
  const unexpected: string[] = [];
  let requests = 0;
  let distinct = 0;
  const rss: [number, number][] = [];
  const heap: [number, number][] = [];
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const note = (what: string, status: number, body: unknown) => {
    if (unexpected.length < 50) unexpected.push(`${what}: ${status} ${JSON.stringify(body).slice(0, 200)}`);
    else unexpected.push(what);
  };

  const sample = async () => {
    const seconds = Math.round(elapsed() / 1000);
    rss.push([seconds, Math.round(rssMiB(pid) * 10) / 10]);
    heap.push([seconds, await liveHeap.sample()]);
  };
  const sampler = (async () => {
    while (elapsed() < options.durationMs) {
      await sample();
      if (rss.length % 6 === 0) log(`[soak] ${rss.at(-1)![0]} s: heap ${heap.at(-1)![1]} MiB, rss ${rss.at(-1)![1]} MiB, ${requests} requests, ${unexpected.length} unexpected`);
      await sleep(5000);
    }
  })();

  /** One round of the mix: every token is new, so the node sees an endless stream of distinct tokens. */
  const round = async (i: number) => {
    const opaque = i % 2 === 1;
    const issued = await issueToken(node.url, opaque ? 'https://billing.test' : 'https://orders.test');
    requests += 1;
    if (issued.status !== 200) return note('token', issued.status, issued.body);
    const token = issued.body.access_token as string;
    const caller = opaque ? 'billing' : 'orders';
    const answers = await Promise.all([
      introspect(node.url, token, caller),
      introspect(node.url, installation.ordersSat),
      // Garbage of every shape: a fresh value each time, none of which may be remembered.
      introspect(node.url, `tsr_sat_${randomBytes(32).toString('base64url').replace(/[-_]/g, 'a').slice(0, 43)}_000000`),
      introspect(node.url, randomBytes(32).toString('base64url')),
      introspect(node.url, token, opaque ? 'orders' : 'billing'),
    ]);
    requests += answers.length;
    distinct += 3;
    const expected = [true, true, false, false, false];
    answers.forEach((answer, k) => {
      if (answer.status !== 200 || answer.body.active !== expected[k]) note(`introspection #${k}`, answer.status, answer.body);
    });
    if (i % 5 === 0) {
      const revoked = await revoke(node.url, token, caller);
      const after = await introspect(node.url, token, caller);
      requests += 2;
      if (revoked.status !== 200) note('revocation', revoked.status, revoked.body);
      if (after.status !== 200 || after.body.active !== false) note('introspection after revocation', after.status, after.body);
    }
    if (i % 7 === 0) {
      const [badClient, discovery, jwks, management] = await Promise.all([
        postForm(node.url, '/token', { grant_type: 'client_credentials' }, 'Basic ' + Buffer.from('worker:wrong').toString('base64')),
        fetch(`${node.url}/.well-known/openid-configuration`).then((r) => r.status),
        fetch(`${node.url}/jwks`).then((r) => r.status),
        fetch(`${node.url}/api/v1/organization`, { headers: { authorization: `Bearer ${installation.bootstrap.management_token}` } }).then((r) => r.status),
      ]);
      requests += 4;
      if (badClient.status !== 401) note('wrong secret', badClient.status, badClient.body);
      if (discovery !== 200 || jwks !== 200 || management !== 200) note('reads', 0, { discovery, jwks, management });
    }
  };

  try {
    await Promise.all(
      Array.from({ length: options.concurrency ?? 4 }, async (_, worker) => {
        for (let i = worker; elapsed() < options.durationMs; i += options.concurrency ?? 4) await round(i);
      }),
    );
    await sampler;
    await sample();
  } finally {
    liveHeap.close();
    const code = await node.stop();
    if (code !== 0) unexpected.push(`node exited with ${code}`);
    await installation.close();
  }

  // The first half of a short run (at most 2 minutes) is warm-up: compiled code, connection
  // pools, the bounded caches and the revocation list (revoked ids live until their tokens
  // would have expired) reach their working size.
  const warmupSeconds = Math.min(120, options.durationMs / 2000);
  const afterWarmup = heap.find(([s]) => s >= warmupSeconds)?.[1] ?? heap[0]![1];
  const atEnd = heap.at(-1)![1];
  return {
    durationMs: elapsed(),
    requests,
    unexpected,
    rss,
    heap,
    heapAfterWarmup: afterWarmup,
    heapAtEnd: atEnd,
    growthPercent: Math.round(((atEnd - afterWarmup) / afterWarmup) * 1000) / 10,
    distinctTokensIntrospected: distinct,
  };
}
