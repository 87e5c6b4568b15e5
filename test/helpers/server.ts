/**
 * Starts a whole Tessera server for a test, on one of the backends of backends.ts, and tears
 * it down again: its own PostgreSQL schema and Redis prefix, or its own embedded data directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import type { BootstrapResult } from '../../src/domain/bootstrap.js';
import { createLogger } from '../../src/http/logger.js';
import { startServer } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import type { BackendName } from './backends.js';
import { openPostgres, openRedis } from './backends.js';

export interface TestServer {
  backend: BackendName;
  url: string;
  config: Config;
  running: RunningServer;
  tessera: RunningServer['tessera'];
  /** The first node's bootstrap result (a node sharing storage inherits it). */
  bootstrap: BootstrapResult;
  managementToken: string;
  /** The environment the server was configured from (a child process or second node reuses it). */
  env: Record<string, string>;
  schema?: string;
  redisPrefix?: string;
  /** Every log line the server wrote, parsed (for redaction tests). */
  logs: string[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface TestServerOptions {
  /** Overrides of config/*.json values (e.g. `{ seed: {...} }`). */
  overrides?: Record<string, unknown>;
  clock?: Clock;
  env?: Record<string, string>;
  logLevel?: string;
  /**
   * Another node on the same storage (schema and Redis prefix, or data directory) and with the
   * same keys, unless `env` says otherwise. The storage stays owned by the first server: it is
   * released when that one stops.
   */
  shareStorageWith?: TestServer;
}

/**
 * Starts a server on a free port. `freePort` can only name a port that was free a moment ago:
 * another test file's outgoing connection may take it before the server listens, so a start
 * that finds its port taken is retried on another (the failed attempt released its storage).
 */
export async function startTestServer(backend: BackendName, options: TestServerOptions = {}): Promise<TestServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startTestServerOnce(backend, options);
    } catch (error) {
      if (attempt >= 3 || options.env?.PORT !== undefined || !/port is already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startTestServerOnce(backend: BackendName, options: TestServerOptions): Promise<TestServer> {
  const port = await freePort();
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const cleanups: (() => Promise<void>)[] = [];
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    PORT: String(port),
    TESSERA_ISSUER: `http://127.0.0.1:${port}`,
    TESSERA_KEK: randomBytes(32).toString('base64'),
    TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
    LOG_LEVEL: options.logLevel ?? 'info',
  };
  let schema: string | undefined;
  let redisPrefix: string | undefined;
  const shared = options.shareStorageWith;
  if (shared) {
    // Nodes of one installation share the issuer, the keys and the storage.
    for (const name of ['TESSERA_ISSUER', 'TESSERA_KEK', 'TESSERA_COOKIE_KEYS', 'DATABASE_URL', 'REDIS_URL', 'TESSERA_DATA_DIR']) {
      if (shared.env[name] !== undefined) env[name] = shared.env[name];
    }
    schema = shared.schema;
    redisPrefix = shared.redisPrefix;
  } else if (backend === 'postgres+redis') {
    const [postgres, redis] = await Promise.all([openPostgres({ max: 1 }), openRedis()]);
    cleanups.push(() => postgres.close(), () => redis.close());
    schema = postgres.schema;
    redisPrefix = redis.prefix;
    env.DATABASE_URL = postgres.url;
    env.REDIS_URL = redis.url;
  }
  if (!shared) {
    // Every server gets a data directory of its own, PostgreSQL ones too: a first start writes
    // bootstrap.json there, and it must never land in the working directory.
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-test-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    env.TESSERA_DATA_DIR = dataDir;
  }
  Object.assign(env, options.env);
  const config = loadConfig(env, { overrides: options.overrides });
  const logger = createLogger({ level: config.logLevel, destination });
  let running: RunningServer;
  try {
    running = await startServer(config, logger, { schema, redisPrefix, clock: options.clock });
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    throw error;
  }
  const bootstrap = shared?.bootstrap ?? running.tessera.bootstrapped!;
  return {
    backend,
    // This node's own address; a node sharing storage keeps the first one's issuer.
    url: running.url,
    config,
    env,
    schema,
    redisPrefix,
    running,
    tessera: running.tessera,
    bootstrap,
    managementToken: bootstrap.management_token,
    logs,
    async stop() {
      await running.stop();
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    },
  };
}

/** JSON request helper for the Management API. */
export async function api(server: Pick<TestServer, 'url'>, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, body: json, text };
}
