/**
 * The benchmark's servers, each started the way a user starts it: Tessera as `node
 * dist/src/cli.js serve` (what `npm start` runs) with the documented environment variables,
 * and the plain oidc-provider as `node plain-provider.mjs`. No test harness runs inside them.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = resolve(ROOT, 'dist/src/cli.js');

export interface Server {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The environment of a PostgreSQL + Redis installation, configured only through the documented
 * variables: the benchmark's own schema and key prefix, the test keys, and its data directory.
 */
export function installationEnv(pg: { url: string; schema: string }, redis: { url: string; prefix: string }, keys: { kek: string; cookieKeys: string }, dataDir: string): Record<string, string> {
  return {
    NODE_ENV: 'bench',
    DATABASE_URL: `${pg.url}${pg.url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${pg.schema}`)}`,
    REDIS_URL: redis.url,
    TESSERA_REDIS_PREFIX: redis.prefix,
    TESSERA_KEK: keys.kek,
    TESSERA_COOKIE_KEYS: keys.cookieKeys,
    TESSERA_DATA_DIR: dataDir,
  };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise((ok) => server.close(ok));
  return port;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
}

/** `tessera <args>` to completion; its stdout. */
export async function tesseraCli(env: Record<string, string>, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, cwd: env.TESSERA_DATA_DIR ?? ROOT });
  return stdout;
}

/** `tessera serve [--workers N]`, ready once /readyz answers 200. Logs go to `log` (the shipped level). */
export async function startTessera(name: string, env: Record<string, string>, options: { workers?: number; cwd?: string; log?: (chunk: string) => void } = {}): Promise<Server> {
  const port = await freePort();
  // TESSERA_BENCH_PROFILE=DIR: a V8 CPU profile of each Tessera process, written to DIR when it stops.
  const profile = process.env.TESSERA_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.TESSERA_BENCH_PROFILE)}`] : [];
  const args = [...profile, CLI, 'serve', ...(options.workers ? ['--workers', String(options.workers)] : [])];
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', TESSERA_ISSUER: `http://127.0.0.1:${port}`, ...env, PORT: String(port) },
    cwd: options.cwd ?? ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-8000);
    options.log?.(chunk.toString('utf8'));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited during start-up:\n${output}`);
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} not ready after 120 s:\n${output}`);
    }
    await sleep(100);
  }
  return { name, url, pid: child.pid!, stop: stopper(child) };
}

export interface PlainProvider extends Server {
  client: { client_id: string; client_secret: string };
  jwtResource: string;
  opaqueResource: string;
}

/** A plain JavaScript server of test/bench/ that prints one JSON line, its URL first, once listening. */
async function startScript<T extends { url: string }>(name: string, script: string, args: string[] = []): Promise<T & Server> {
  const child = spawn(process.execPath, [resolve(import.meta.dirname, script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once('line', ok);
    child.once('exit', (code) => fail(new Error(`${name} exited with ${code}`)));
  });
  return { ...(JSON.parse(line) as T), name, pid: child.pid!, stop: stopper(child) };
}

export const startPlainProvider = (): Promise<PlainProvider> => startScript<Omit<PlainProvider, 'name' | 'pid' | 'stop'>>('plain oidc-provider', 'plain-provider.mjs');

/** test/bench/ceiling-server.mjs: a bare node:http handler answering a constant active introspection. */
export const startCeiling = (scope: string): Promise<Server> => startScript<{ url: string }>('bare node:http', 'ceiling-server.mjs', [scope]);
