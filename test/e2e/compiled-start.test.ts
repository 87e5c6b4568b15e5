/**
 * The documented start is the compiled one (README.md, "Two commands"): `npm start` is
 * `node dist/src/cli.js serve`, and it must work from a clone, finding config/ and migrations/
 * beside package.json (src/project-root.ts). The test compiles the project as `npm ci` does,
 * starts the compiled server on the embedded default in a fresh data directory, and waits for
 * its discovery document; it prints how long that took (first start: PGlite unpacks the
 * build's template database), then does the same again on the existing data (a restart).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { childEnv, REPO_ROOT } from '../helpers/cli.js';
import { freePort } from '../helpers/server.js';

const run = promisify(execFile);

/** `freePort` names a port that was free a moment ago; one taken since is retried on another. */
async function startCompiled(dataDir: string): Promise<{ ms: number; issuer: string; stop(): Promise<void> }> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startCompiledOnce(dataDir);
    } catch (error) {
      if (attempt >= 3 || !/already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startCompiledOnce(dataDir: string): Promise<{ ms: number; issuer: string; stop(): Promise<void> }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [resolve(REPO_ROOT, 'dist/src/cli.js'), 'serve'], {
    cwd: REPO_ROOT,
    env: childEnv({ NODE_ENV: 'development', PORT: String(port), TESSERA_DATA_DIR: dataDir, LOG_LEVEL: 'warn' }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGTERM');
    });
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the compiled server exited: ${stderr}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`no discovery answer within 90 s: ${stderr}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
      if (response.ok) {
        const document = (await response.json()) as { issuer: string };
        return { ms: Math.round(performance.now() - started), issuer: document.issuer, stop };
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
  }
}

describe('the compiled server (npm start)', () => {
  let dataDir: string;
  beforeAll(async () => {
    // What `npm ci` runs as the package's `prepare` script (`npm run build`): the compiler, then
    // the embedded database template a first start unpacks (src/storage/embedded-template.ts).
    await run(process.execPath, [resolve(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, timeout: 120_000 });
    await run(process.execPath, [resolve(REPO_ROOT, 'scripts/prepare-start.mjs')], { cwd: REPO_ROOT, timeout: 120_000 });
    dataDir = mkdtempSync(join(tmpdir(), 'tessera-compiled-'));
  }, 150_000);
  afterAll(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts from dist/ on the embedded default and answers discovery, first start and restart', async () => {
    const first = await startCompiled(dataDir);
    await first.stop();
    const again = await startCompiled(dataDir);
    await again.stop();
    expect(first.issuer).toMatch(/^http:\/\/localhost:\d+$/);
    // The build filled Node's module compile cache that the entry point turns on (src/cli.ts).
    expect(readdirSync(resolve(REPO_ROOT, 'dist/.compile-cache')).length).toBeGreaterThan(0);
    console.info(`[compiled start] to first discovery answer: ${first.ms} ms on a fresh data directory, ${again.ms} ms on a restart`);
  }, 240_000);
});
