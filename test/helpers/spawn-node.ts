import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';

import type { BootstrapResult } from '../../src/domain/bootstrap.js';
import { TEST_COOKIE_KEYS, TEST_KEK } from './token-fixtures.js';

export interface SpawnedNode {
  url: string;
  bootstrapped: BootstrapResult | null;
  child: ChildProcess;
  stop(): Promise<void>;
}

const SERVER_SCRIPT = resolve(import.meta.dirname, 'server-process.ts');
const TSX = resolve(import.meta.dirname, '../../node_modules/.bin/tsx');

/**
 * The environment of a node that shares one PostgreSQL schema and one Redis prefix (and so the
 * same keys and issuer) with every other node started from it.
 */
export function sharedNodeEnv(pg: { url: string; schema: string }, redis: { url: string; prefix: string }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    PORT: '0',
    DATABASE_URL: pg.url,
    REDIS_URL: redis.url,
    TESSERA_KEK: TEST_KEK,
    TESSERA_COOKIE_KEYS: TEST_COOKIE_KEYS,
    TESSERA_ISSUER: 'http://127.0.0.1:3999',
    TEST_SCHEMA: pg.schema,
    TEST_REDIS_PREFIX: redis.prefix,
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

export interface SpawnOptions {
  timeoutMs?: number;
  /** Node flags, e.g. `--cpu-prof` (the benchmark's `--profile`). */
  nodeArgs?: string[];
  /** Run the compiled JavaScript under this output directory instead of the TypeScript sources. */
  compiled?: string;
}

/** Starts a Tessera node in a child process and waits until it listens (or fails). */
export async function spawnNode(env: Record<string, string>, options: SpawnOptions = {}): Promise<SpawnedNode> {
  const [command, script] = options.compiled ? [process.execPath, resolve(options.compiled, 'test/helpers/server-process.js')] : [TSX, SERVER_SCRIPT];
  const child = spawn(command, [...(options.nodeArgs ?? []), script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time: ${stderr}`)), options.timeoutMs ?? 30_000);
    lines.on('line', (line) => {
      if (!line.startsWith('TESSERA_READY ')) return;
      clearTimeout(timer);
      resolvePromise(line.slice('TESSERA_READY '.length));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code}: ${stderr}`));
    });
  });
  const { url, bootstrapped } = JSON.parse(first) as { url: string; bootstrapped: BootstrapResult | null };
  return {
    url,
    bootstrapped,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
