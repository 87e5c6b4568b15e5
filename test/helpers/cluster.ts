/**
 * Several real Tessera processes (`tessera serve`, as an operator starts them) on one PostgreSQL
 * schema and one Redis prefix, as behind a load balancer; and a Redis server of the test's own,
 * which fault tests may stop and start without touching the shared one.
 *
 * The installation is prepared in this process first (migrations, bootstrap, the example seed,
 * a SAT for the orders API), so the nodes start on a populated database exactly as a second
 * node joins a running deployment.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';

import { createTessera } from '../../src/app.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import type { BootstrapResult } from '../../src/domain/bootstrap.js';
import { createLogger } from '../../src/http/logger.js';
import { forEachRedisKey, openPostgres, openRedis } from './backends.js';
import type { OpenedPostgres } from './backends.js';
import { EXAMPLE_SEED } from './seed.js';
import { freePort } from './server.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'src/cli.ts');

/** Every child this module started, killed when the test process exits whatever happened. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

// ---------------------------------------------------------------------------------------
// A Redis server of the test's own

export interface OwnRedis {
  url: string;
  port: number;
  /** Stops the server abruptly (SIGKILL): no chance to say goodbye to clients. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves when it answers PING. */
  start(): Promise<void>;
  /**
   * Freezes the server (SIGSTOP): connections stay open and nothing answers, as when the network
   * between a node and Redis drops packets. `resume` (SIGCONT) lets it answer again.
   */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/** A redis-server child with AOF (`appendfsync always`), so a kill loses no acknowledged write. */
export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-redis-'));
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async () => {
    child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], { stdio: 'ignore' }));
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    probe.on('error', () => {});
    try {
      for (let i = 0; i < 100; i += 1) {
        try {
          if (probe.status !== 'ready') await probe.connect();
          if ((await probe.ping()) === 'PONG') return;
        } catch {
          probe.disconnect();
          await sleep(100);
        }
      }
      throw new Error(`own redis-server on port ${port} did not start`);
    } finally {
      probe.disconnect();
    }
  };
  const kill = async () => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url,
    port,
    kill,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async close() {
      child?.kill('SIGCONT');
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// An installation and its nodes

export interface Installation {
  databaseUrl: string;
  schema: string;
  redisUrl: string;
  redisPrefix: string;
  /** The PostgreSQL application_name every node of this installation connects with. */
  applicationName: string;
  issuer: string;
  env: Record<string, string>;
  bootstrap: BootstrapResult;
  /** A SAT of the bootstrap service account for the orders API, issued before any node started. */
  ordersSat: string;
  postgres: OpenedPostgres;
  close(): Promise<void>;
}

export const CREDENTIALS = {
  worker: 'Basic ' + Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64'),
  orders: 'Basic ' + Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64'),
  billing: 'Basic ' + Buffer.from('billing-rs:billing-rs-secret-0123456789').toString('base64'),
};

export async function prepareInstallation(options: { redisUrl?: string; overrides?: Record<string, unknown>; issuer?: string } = {}): Promise<Installation> {
  const postgres = await openPostgres({ max: 2 });
  const redis = options.redisUrl ? undefined : await openRedis();
  const redisUrl = options.redisUrl ?? redis!.url;
  const redisPrefix = redis?.prefix ?? `test:${randomBytes(6).toString('hex')}:`;
  await redis?.cache.close();
  const applicationName = `tessera_${randomBytes(4).toString('hex')}`;
  const databaseUrl = `${postgres.url}${postgres.url.includes('?') ? '&' : '?'}application_name=${applicationName}`;
  // One issuer for all nodes: the load balancer's address, as in production (or one node's
  // address, when a test follows the engine's redirects).
  const issuer = options.issuer ?? 'http://tessera.test';
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    TESSERA_ISSUER: issuer,
    DATABASE_URL: databaseUrl,
    TESSERA_DATABASE_SCHEMA: postgres.schema,
    REDIS_URL: redisUrl,
    TESSERA_REDIS_PREFIX: redisPrefix,
    TESSERA_KEK: randomBytes(32).toString('base64'),
    TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'warn',
  };
  const config = loadConfig(env, { overrides: { ...EXAMPLE_SEED, ...options.overrides } });
  const tessera = await createTessera({ config, logger: createLogger({ level: 'silent' }), clock: systemClock });
  let bootstrap: BootstrapResult;
  let ordersSat: string;
  try {
    bootstrap = tessera.bootstrapped!;
    const resolved = await tessera.referenceTokenLookup.resolve(bootstrap.management_token);
    if (!resolved.ok) throw new Error('the bootstrap token does not resolve');
    const issued = await tessera.referenceTokenIssuer.issue({
      organizationId: bootstrap.organization_id,
      type: 'sat',
      name: 'orders automation',
      serviceAccountId: resolved.token.ownerId,
      scopes: ['orders:read'],
      resources: ['https://orders.test'],
      expiresInSeconds: 3600,
      createdBy: 'test',
    });
    ordersSat = issued.token;
  } finally {
    await tessera.close();
  }
  return {
    databaseUrl,
    schema: postgres.schema,
    redisUrl,
    redisPrefix,
    applicationName,
    issuer,
    env,
    bootstrap,
    ordersSat,
    postgres,
    async close() {
      await postgres.close();
      // The test's own Redis may be gone already; nothing to clean then.
      await forEachRedisKey(redisUrl, redisPrefix, async (client, keys) => void (await client.del(...keys))).catch(() => {});
    },
  };
}

export interface TesseraNode {
  name: string;
  url: string;
  child: ChildProcess;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts `tessera serve` as a child process; resolves once /readyz answers 200. */
export async function startNode(installation: Installation, name: string, extraEnv: Record<string, string> = {}, fixedPort?: number): Promise<TesseraNode> {
  const port = fixedPort ?? (await freePort());
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...installation.env, PORT: String(port), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  child.stderr!.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 45_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node ${name} exited during start-up:\n${output}`);
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`node ${name} not ready after 45 s:\n${output}`);
    }
    await sleep(150);
  }
  return {
    name,
    url,
    child,
    output: () => output,
    exited,
    async stop(timeoutMs = 20_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs a `tessera` CLI command against the installation; resolves with its exit code and output. */
export async function runCli(installation: Installation, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = track(spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...installation.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, output };
}

// ---------------------------------------------------------------------------------------
// Requests

export interface Reply {
  status: number;
  ms: number;
  body: any;
  headers: Headers;
}

/** POSTs a form; never throws for an HTTP status (a network error is status 0). */
export async function postForm(url: string, path: string, form: Record<string, string>, authorization?: string, timeoutMs = 15_000): Promise<Reply> {
  const started = performance.now();
  try {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body: new URLSearchParams(form),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, ms: performance.now() - started, body, headers: response.headers };
  } catch (error) {
    return { status: 0, ms: performance.now() - started, body: String((error as Error).cause ?? error), headers: new Headers() };
  }
}

/** A Management API call to one node, with the installation's bootstrap token; the status and parsed body. */
export async function managementCall(installation: Pick<Installation, 'bootstrap'>, node: { url: string }, method: string, path: string, body?: unknown) {
  const response = await fetch(`${node.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${installation.bootstrap.management_token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: (await response.json().catch(() => undefined)) as Record<string, any> };
}

export const issueToken = (url: string, resource: 'https://orders.test' | 'https://billing.test', scope = resource.includes('orders') ? 'orders:read' : 'billing:read') =>
  postForm(url, '/token', { grant_type: 'client_credentials', resource, scope }, CREDENTIALS.worker);

export const introspect = (url: string, token: string, caller: 'orders' | 'billing' = 'orders') => postForm(url, '/token/introspection', { token }, CREDENTIALS[caller]);

export const revoke = (url: string, token: string, caller: 'orders' | 'billing' = 'orders') => postForm(url, '/token/revocation', { token }, CREDENTIALS[caller]);

/** p-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
