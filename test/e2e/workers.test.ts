/**
 * `tessera serve --workers 2` (src/main.ts): two processes share the port under one primary that
 * opens no storage; both answer, a first start bootstraps once, a revocation made through one is
 * honoured by the other (their caches are kept coherent by pub/sub), a killed worker is replaced,
 * and SIGTERM drains every worker and exits 0 with no process left behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openRedis, postgresRedisSkipReason, newSchemaName, TEST_DATABASE_URL } from '../helpers/backends.js';
import type { OpenedRedis } from '../helpers/backends.js';
import { spawnCli, urlWithSchema } from '../helpers/cli.js';
import { api, freePort } from '../helpers/server.js';
import { createPgDatabase } from '../../src/storage/pg-database.js';
import type { Database } from '../../src/storage/database.js';

/** Process ids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which is in parentheses and may hold spaces): state, ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}

/**
 * GET on a connection of its own: the primary hands each new connection to the next worker in
 * turn, so consecutive calls reach both workers (a keep-alive pool would stay on one).
 */
function freshGet(base: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/api/v1${path}`, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const until = async <T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 90_000): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

describe.skipIf(postgresRedisSkipReason !== undefined)('tessera serve --workers 2', () => {
  let admin: Database;
  let schema: string;
  let redis: OpenedRedis;
  let dataDir: string;
  let url: string;
  let child: ChildProcess;
  let stderr = '';

  beforeAll(async () => {
    admin = createPgDatabase({ url: TEST_DATABASE_URL, max: 1 });
    schema = newSchemaName();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    redis = await openRedis();
    dataDir = mkdtempSync(join(tmpdir(), 'tessera-workers-'));
    // `freePort` names a port that was free a moment ago; if it has been taken since, the first
    // worker cannot listen, the primary exits, and the start is tried again on another port.
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      stderr = '';
      child = spawnCli(['serve', '--workers', '2'], {
        DATABASE_URL: urlWithSchema(TEST_DATABASE_URL, schema),
        REDIS_URL: redis.url,
        TESSERA_REDIS_PREFIX: redis.prefix,
        TESSERA_KEK: randomBytes(32).toString('base64'),
        TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
        TESSERA_ISSUER: url,
        PORT: String(port),
        TESSERA_DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
      });
      child.stderr!.on('data', (chunk) => {
        stderr += String(chunk);
      });
      // Both workers listening: the primary has two children and the port answers.
      const started = await until('two ready workers, or an exit', async () => {
        if (child.exitCode !== null) return 'exited';
        if (childrenOf(child.pid!).length !== 2) return undefined;
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok ? 'ready' : undefined;
      });
      if (started === 'ready') break;
      if (attempt >= 3 || !/already in use/.test(stderr)) throw new Error(`tessera serve --workers 2 exited: ${stderr}`);
    }
  }, 150_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    for (const pid of child?.pid ? childrenOf(child.pid) : []) process.kill(pid, 'SIGKILL');
    await redis?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves from both, agrees on a revocation, replaces a dead worker, and drains all on SIGTERM', async () => {
    // One bootstrap, written once.
    const bootstrap = JSON.parse(readFileSync(join(dataDir, 'bootstrap.json'), 'utf8')) as { management_token: string; organization_id: string };
    const token = bootstrap.management_token;

    // A PAT issued and then revoked: every answer after the revocation, whichever worker gives
    // it, refuses the PAT (new connections spread over the workers).
    const me = await api({ url }, token, 'GET', '/organization');
    expect(me.status).toBe(200);
    const accounts = await api({ url }, token, 'GET', '/service-accounts');
    const sat = await api({ url }, token, 'POST', '/tokens', { type: 'sat', service_account_id: accounts.body.items[0].id, name: 'probe', scopes: ['organization:read'], resources: ['urn:tessera:management'], expires_in: 3600 });
    expect(sat.status, sat.text).toBe(201);
    // Both workers have the SAT in their in-process cache before the revocation.
    for (let i = 0; i < 20; i += 1) expect(await freshGet(url, '/organization', sat.body.token)).toBe(200);
    expect((await api({ url }, token, 'DELETE', `/tokens/${sat.body.id}`)).status).toBe(204);
    // The other worker hears it through pub/sub within the documented staleness window (1 s).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    for (let i = 0; i < 20; i += 1) expect(await freshGet(url, '/organization', sat.body.token)).toBe(401);

    // A worker that dies is replaced, and the port keeps answering.
    const [first] = childrenOf(child.pid!);
    process.kill(first!, 'SIGKILL');
    await until('a replacement worker', () => {
      const now = childrenOf(child.pid!);
      return now.length === 2 && !now.includes(first!) ? true : undefined;
    });
    await until('readiness after the replacement', async () => ((await fetch(`${url}/readyz`).catch(() => undefined))?.ok ? true : undefined));

    // SIGTERM: every worker drains, the primary exits 0, nothing is left running.
    const workers = childrenOf(child.pid!);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  }, 120_000);
});
