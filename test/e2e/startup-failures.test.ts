/**
 * `tessera serve` that cannot start says why in one line naming the setting to fix, and exits
 * non-zero: no stack trace, no half-started server (docs/operations.md, "Configuration").
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openPostgres, postgresRedisSkipReason } from '../helpers/backends.js';
import type { OpenedPostgres } from '../helpers/backends.js';
import { runCli, stderrLines, urlWithSchema } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';
import { freePort } from '../helpers/server.js';

function expectOneLineFailure(result: CliResult, variable: string) {
  const lines = stderrLines(result.stderr);
  expect(result.signal, `${variable}: the process must exit on its own, not hang until killed (stderr: ${result.stderr})`).toBeNull();
  expect(result.code, variable).not.toBe(0);
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tessera: /);
  expect(lines[0]).toContain(variable);
  // No stack frames, no error class dumps.
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stdout).not.toContain('tessera listening');
}

describe.skipIf(postgresRedisSkipReason !== undefined)('start-up failures of `tessera serve`', () => {
  let postgres: OpenedPostgres;
  let dataDir: string;
  let closedPort: number;
  let busy: Server;
  let busyPort: number;
  let base: Record<string, string>;

  beforeAll(async () => {
    postgres = await openPostgres({ max: 1 });
    dataDir = mkdtempSync(join(tmpdir(), 'tessera-startup-'));
    closedPort = await freePort();
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, resolve));
    busyPort = (busy.address() as { port: number }).port;
    base = {
      DATABASE_URL: urlWithSchema(postgres.url, postgres.schema),
      TESSERA_KEK: randomBytes(32).toString('base64'),
      TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
      TESSERA_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
    };
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => busy?.close(() => resolve()));
    await postgres?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  // The child processes are independent; running them together keeps the file fast.
  it('names DATABASE_URL, PORT or REDIS_URL in one line and exits non-zero', { timeout: 150_000 }, async () => {
    const [database, badPort, portInUse, redis] = await Promise.all([
      runCli(['serve'], { ...base, DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/tessera` }),
      runCli(['serve'], { ...base, PORT: 'eighty' }),
      runCli(['serve'], { ...base, PORT: String(busyPort) }),
      runCli(['serve'], { ...base, REDIS_URL: `redis://127.0.0.1:${closedPort}` }),
    ]);
    expectOneLineFailure(database, 'DATABASE_URL');
    expect(database.stderr).toContain(`127.0.0.1:${closedPort}`);
    expectOneLineFailure(badPort, 'PORT');
    expect(badPort.stderr).toContain('"eighty"');
    expectOneLineFailure(portInUse, 'PORT');
    expect(portInUse.stderr).toContain(String(busyPort));
    expectOneLineFailure(redis, 'REDIS_URL');
    expect(redis.stderr).toContain(`127.0.0.1:${closedPort}`);
  });
});
