/**
 * Tamper evidence and retention of the audit trail, on every backend: the batched writer
 * builds one hash chain per organization; a row edited (or removed) with SQL is caught and
 * named, by `verifyChain` and, on PostgreSQL, by the operator's `tessera audit verify`; the
 * retention job removes old rows in bounded batches under the organization's policy, and
 * what remains verifies from its new start. A planted secret never reaches a row.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AuditEvent } from '../../src/audit/audit-event.js';
import { createAuditWriter } from '../../src/audit/audit-writer.js';
import { auditRetentionJob } from '../../src/audit/retention.js';
import { verifyChain } from '../../src/audit/verify-chain.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/http/logger.js';
import { createScheduler } from '../../src/jobs/scheduler.js';
import { createAuditRepository } from '../../src/storage/audit-repository.js';
import { createOrganizationRepository } from '../../src/storage/organization-repository.js';
import { backends, createTestClock } from '../helpers/backends.js';
import type { OpenedBackend } from '../helpers/backends.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY = 86_400_000;
const quiet = createLogger({ level: 'silent' });

/** Starting storage (PGlite initializes a fresh data directory in WASM) is slow on a busy two-core machine. */
const START_TIMEOUT_MS = 180_000;

for (const backend of backends) {
  describe(`audit hash chain and retention on ${backend.name}`, () => {
    let opened: OpenedBackend;
    const clock = createTestClock(Date.UTC(2026, 0, 1));
    let repository: ReturnType<typeof createAuditRepository>;
    let writer: ReturnType<typeof createAuditWriter>;
    const lost: number[] = [];
    const written: number[] = [];

    const event = (organizationId: string, action: string, details: Record<string, unknown> = {}): AuditEvent => ({
      organizationId,
      actor: { type: 'service_account', id: 'sa_1', name: 'automation' },
      action,
      target: { type: 'client', id: 'worker' },
      outcome: 'success',
      requestId: 'req-1',
      ip: '127.0.0.1',
      userAgent: 'test',
      details,
    });

    beforeAll(async () => {
      opened = await backend.open(clock);
      repository = createAuditRepository(opened.db);
      writer = createAuditWriter({
        db: opened.db,
        repository,
        clock,
        logger: quiet,
        intervalMs: 60_000,
        batchSize: 4,
        metrics: { batchWritten: (n) => written.push(n), rowsDropped: (n) => lost.push(n), batchFailed: () => {} },
      });
      await createOrganizationRepository(opened.db).insert({ id: 'org_a', name: 'a', policy: {} });
      await createOrganizationRepository(opened.db).insert({ id: 'org_b', name: 'b', policy: { audit_retention_days: 30 } });
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await writer?.close();
      await opened?.close();
    });

    it('chains each organization\'s events separately, in batches, and scrubs secrets from details', async () => {
      for (let i = 0; i < 10; i += 1) {
        writer.record(event('org_a', 'client.updated', { i, changes: { name: { before: 'x', after: 'y' } }, client_secret: 'sekrit-value-123', note: 'Bearer abc.def.ghi' }));
        writer.record(event('org_b', 'token.issued', { i }));
      }
      await writer.flush();
      expect(writer.pending()).toBe(0);
      expect(written.reduce((a, b) => a + b, 0)).toBe(20);
      expect(written.every((n) => n <= 4)).toBe(true);
      expect(lost).toEqual([]);
      for (const org of ['org_a', 'org_b']) {
        const report = await verifyChain(repository, org);
        expect(report).toMatchObject({ rows: 10, firstSeq: 1, lastSeq: 10, broken: undefined });
      }
      const { rows } = await opened.db.query<{ details: unknown }>("SELECT details FROM audit_events WHERE organization_id = 'org_a'");
      expect(JSON.stringify(rows)).not.toContain('sekrit-value-123');
      expect(JSON.stringify(rows)).not.toContain('abc.def');
      expect(rows[0]!.details).toMatchObject({ changes: { name: { before: 'x', after: 'y' } } });
    });

    it('stores text PostgreSQL cannot hold (NUL, an unpaired surrogate) as U+FFFD, and the chain still verifies', async () => {
      await createOrganizationRepository(opened.db).insert({ id: 'org_c', name: 'c', policy: {} });
      writer.record({ ...event('org_c', 'client.updated', { note: 'a\u0000b', label: 'x\ud800y', pair: '\ud83d\ude00' }), actor: { type: 'user', id: 'u\u0000', name: 'name\udc00' } });
      await writer.flush();
      expect(writer.pending()).toBe(0);
      expect(await verifyChain(repository, 'org_c')).toMatchObject({ rows: 1, broken: undefined });
      const { rows } = await opened.db.query<{ actor_id: string; actor_name: string; details: Record<string, string> }>("SELECT actor_id, actor_name, details FROM audit_events WHERE organization_id = 'org_c'");
      expect(rows[0]).toMatchObject({ actor_id: 'u\ufffd', actor_name: 'name\ufffd', details: { note: 'a\ufffdb', label: 'x\ufffdy', pair: '\ud83d\ude00' } });
    });

    it('names the first row edited with SQL', async () => {
      await opened.db.query(`UPDATE audit_events SET actor_id = 'someone-else' WHERE organization_id = 'org_a' AND seq = 4`);
      await opened.db.query(`UPDATE audit_events SET outcome = 'failure' WHERE organization_id = 'org_a' AND seq = 7`);
      const report = await verifyChain(repository, 'org_a', 3);
      expect(report.broken).toMatchObject({ organizationId: 'org_a', seq: 4 });
      expect(report.broken!.reason).toContain('edited');
      // The other organization's chain is untouched.
      expect((await verifyChain(repository, 'org_b')).broken).toBeUndefined();

      if (opened.databaseUrl) {
        // `tessera audit verify`, a separate process against the same PostgreSQL schema.
        const url = new URL(opened.databaseUrl);
        url.searchParams.set('options', `-c search_path=${opened.schema}`);
        const dataDir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
        try {
          const env = {
            PATH: process.env.PATH,
            NODE_ENV: 'test',
            LOG_LEVEL: 'silent',
            DATABASE_URL: url.toString(),
            TESSERA_DATA_DIR: dataDir,
            TESSERA_KEK: randomBytes(32).toString('base64'),
            TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
          };
          const cli = (args: string[]) =>
            run(resolve(ROOT, 'node_modules/.bin/tsx'), ['src/cli.ts', ...args], { cwd: ROOT, env, timeout: 60_000 }).then(
              ({ stdout }) => ({ code: 0, stdout }),
              (error: { code: number; stdout: string; stderr: string }) => error,
            );
          const result = await cli(['audit', 'verify']);
          expect(result.code).toBe(3);
          expect(result.stdout).toContain('org_a: BROKEN at seq 4');
          expect(result.stdout).toMatch(/org_b: ok, 10 events/);
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      }

      await opened.db.query(`UPDATE audit_events SET actor_id = 'sa_1' WHERE organization_id = 'org_a' AND seq = 4`);
      expect((await verifyChain(repository, 'org_a')).broken).toMatchObject({ seq: 7 });
      await opened.db.query(`UPDATE audit_events SET outcome = 'success' WHERE organization_id = 'org_a' AND seq = 7`);
      expect((await verifyChain(repository, 'org_a')).broken).toBeUndefined();
    });

    it('catches rows removed from the middle or the end of a chain', async () => {
      const { rows } = await opened.db.query<Record<string, unknown>>("SELECT * FROM audit_events WHERE organization_id = 'org_a' AND seq IN (5, 10) ORDER BY seq");
      await opened.db.query("DELETE FROM audit_events WHERE organization_id = 'org_a' AND seq = 5");
      expect((await verifyChain(repository, 'org_a')).broken).toMatchObject({ seq: 6 });
      await restore(rows[0]!);
      await opened.db.query("DELETE FROM audit_events WHERE organization_id = 'org_a' AND seq = 10");
      expect((await verifyChain(repository, 'org_a')).broken).toMatchObject({ seq: 10 });
      await restore(rows[1]!);
      expect((await verifyChain(repository, 'org_a')).broken).toBeUndefined();
    });

    it('removes rows past the organization\'s retention in bounded batches; the chain verifies from its new start and goes on', async () => {
      // org_b keeps 30 days by policy, org_a the default (400).
      clock.advance(31 * DAY);
      for (let i = 0; i < 3; i += 1) writer.record(event('org_b', 'token.issued', { late: i }));
      writer.record(event('org_a', 'token.issued', { late: true }));
      await writer.flush();

      const config = loadConfig({ NODE_ENV: 'test' });
      expect(config.policyDefaults.audit_retention_days).toBe(400);
      const organizations = createOrganizationRepository(opened.db);
      const job = auditRetentionJob({ audit: repository, organizations, policyDefaults: config.policyDefaults, clock, logger: quiet, batchSize: 3, maxBatchesPerRun: 2 });
      const scheduler = createScheduler({ db: opened.db, logger: quiet });
      const count = async (org: string) => Number((await opened.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events WHERE organization_id = $1', [org])).rows[0]!.n);

      expect(await scheduler.runOnce(job)).toBe(true);
      // One run removes at most batchSize × maxBatchesPerRun = 6 rows of an organization.
      expect(await count('org_b')).toBe(13 - 6);
      expect(await count('org_a')).toBe(11);
      expect(await scheduler.runOnce(job)).toBe(true);
      expect(await scheduler.runOnce(job)).toBe(true);
      expect(await count('org_b')).toBe(3);

      const report = await verifyChain(repository, 'org_b');
      expect(report).toMatchObject({ rows: 3, firstSeq: 11, lastSeq: 13, broken: undefined });
      writer.record(event('org_b', 'token.issued', { after: true }));
      await writer.flush();
      expect(await verifyChain(repository, 'org_b')).toMatchObject({ rows: 4, lastSeq: 14, broken: undefined });
      // An edit after retention is still caught.
      await opened.db.query("UPDATE audit_events SET details = '{}'::jsonb WHERE organization_id = 'org_b' AND seq = 12");
      expect((await verifyChain(repository, 'org_b')).broken).toMatchObject({ seq: 12 });
      await scheduler.stop();
    });

    async function restore(row: Record<string, unknown>) {
      const columns = Object.keys(row);
      await opened.db.query(
        `INSERT INTO audit_events (${columns.join(', ')}) VALUES (${columns.map((_c, i) => `$${i + 1}`).join(', ')})`,
        columns.map((c) => (c === 'details' ? JSON.stringify(row[c]) : row[c])),
      );
    }
  });
}
