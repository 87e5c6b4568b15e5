/**
 * A large audit export: 100,000 events streamed as JSON Lines from a real running Tessera,
 * consumed as they arrive, while the heap of this process (server and client both live in
 * it) is sampled. Holding the export in memory would take several times the bound.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const EVENTS = 100_000;
/** Live heap growth allowed while the whole export (~55 MB of JSON) streams through. */
const HEAP_BOUND = 24 * 1024 * 1024;

// Measure what is retained, not garbage waiting for a collection: a full GC before each sample.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const liveHeap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

/** Starting storage (PGlite initializes a fresh data directory in WASM) is slow on a busy two-core machine. */
const START_TIMEOUT_MS = 180_000;

/**
 * On PostgreSQL when it is there (CI), else on PGlite. PGlite serves one query at a time from
 * WASM, which makes this export take a minute on two cores; the streaming code is the same on
 * both (one SQL contract), and e2e/audit-trail exercises JSON Lines on PGlite as well.
 */
const backend = backends.find((b) => b.name === 'postgres+redis') ?? backends[0]!;
/** Rows per INSERT: each statement stays well inside the pool's statement timeout. */
const INSERT_CHUNK = 20_000;

{
  describe(`audit export on ${backend.name}`, () => {
    let server: TestServer;
    let org: string;

    beforeAll(async () => {
      server = await startTestServer(backend.name);
      org = server.bootstrap.organization_id;
      const { db, audit, auditRepository } = server.tessera;
      await audit.flush();
      const head = Number((await auditRepository.head(org))?.seq ?? 0);
      // Bulk rows in one statement. Their hashes are placeholders: this file tests the export,
      // not the chain (integration/audit-chain does).
      for (let offset = 0; offset < EVENTS; offset += INSERT_CHUNK) {
      await db.query(
        `INSERT INTO audit_events (organization_id, seq, occurred_at, actor_type, actor_id, actor_name, action, target_type, target_id,
                                   outcome, request_id, ip, user_agent, details, prev_hash, hash)
         SELECT $1, $2::bigint + g, now() - interval '1 hour' + g * interval '1 millisecond', 'client', 'bulk-client', 'Bulk client',
                'token.issued', 'client', 'bulk-client', 'success', 'req-' || g, '127.0.0.1', 'bulk-exporter/1.0',
                jsonb_build_object('grant_type', 'client_credentials', 'client_id', 'bulk-client', 'scope', 'orders:read orders:write',
                                   'audience', 'https://orders.test', 'token_format', 'jwt', 'n', g),
                md5(g::text) || md5(g::text), md5((g + 1)::text) || md5((g + 1)::text)
           FROM generate_series(${offset + 1}, ${offset + INSERT_CHUNK}) AS g`,
        [org, head],
      );
      }
      await db.query('INSERT INTO audit_chain_heads (organization_id, seq, hash) VALUES ($1, $2, $3) ON CONFLICT (organization_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash', [org, head + EVENTS, 'bulk']);
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it(`streams ${EVENTS.toLocaleString('en')} events as JSON Lines with a bounded heap`, { timeout: 120_000 }, async () => {
      // Before the request: a server that built the export before answering would count too.
      const baseline = liveHeap();
      const response = await fetch(`${server.url}/api/v1/audit-events?format=jsonl&actor=bulk-client`, { headers: { authorization: `Bearer ${server.managementToken}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/x-ndjson');

      let nextSample = 0;
      let peak = 0;
      let lines = 0;
      let bytes = 0;
      let partial = '';
      let first: any;
      let lastSeq = 0;
      let ordered = true;
      const decoder = new TextDecoder();
      for await (const chunk of response.body!) {
        bytes += chunk.byteLength;
        const text = partial + decoder.decode(chunk, { stream: true });
        const parts = text.split('\n');
        partial = parts.pop()!;
        for (const line of parts) {
          lines += 1;
          // Parse a sample only: the point is the server's memory, not the client's CPU.
          if (lines === 1 || lines % 997 === 0) {
            const event = JSON.parse(line);
            first ??= event;
            if (event.seq < lastSeq) ordered = false;
            lastSeq = event.seq;
          }
        }
        if (lines >= nextSample) {
          peak = Math.max(peak, liveHeap() - baseline);
          nextSample += EVENTS / 20;
        }
      }

      expect(partial).toBe('');
      expect(lines).toBe(EVENTS);
      expect(ordered).toBe(true);
      expect(first).toMatchObject({ action: 'token.issued', actor: { id: 'bulk-client' }, details: { n: 1 } });
      expect(bytes).toBeGreaterThan(HEAP_BOUND);
      expect(peak, `heap grew by ${(peak / 1048576).toFixed(1)} MB while ${(bytes / 1048576).toFixed(1)} MB streamed`).toBeLessThan(HEAP_BOUND);
    });
  });
}
