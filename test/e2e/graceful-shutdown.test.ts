/**
 * SIGTERM (a rolling deploy, a scale-in) stops accepting connections at once, lets every
 * request already in flight finish, then exits 0.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openPostgres, postgresRedisSkipReason } from '../helpers/backends.js';
import type { OpenedPostgres } from '../helpers/backends.js';
import { spawnCli, urlWithSchema } from '../helpers/cli.js';
import { freePort } from '../helpers/server.js';

// config/development.json seeds this client and these APIs (the README walkthrough's example).
const WORKER = `Basic ${Buffer.from('example-worker:example-worker-secret-change-me').toString('base64')}`;
const RESOURCES = ['https://api.example.test/orders', 'https://api.example.test/billing'];
const IN_FLIGHT = 16;

interface SlowRequest {
  request: ClientRequest;
  rest: string;
  response: Promise<{ status: number; connection: string | undefined; body: string }>;
}

/** A token request whose headers and first half of the body are sent now, the rest later. */
function startSlowGrant(port: number, resource: string, agent: Agent | false): SlowRequest {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource }).toString();
  const half = Math.floor(body.length / 2);
  let req!: ClientRequest;
  const response = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
    req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/token', agent, headers: { authorization: WORKER, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
  req.write(body.slice(0, half));
  return { request: req, rest: body.slice(half), response };
}

function connectionRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe.skipIf(postgresRedisSkipReason !== undefined)('graceful shutdown of `tessera serve`', () => {
  let postgres: OpenedPostgres;
  let dataDir: string;

  beforeAll(async () => {
    postgres = await openPostgres({ max: 1 });
    dataDir = mkdtempSync(join(tmpdir(), 'tessera-shutdown-'));
  });
  afterAll(async () => {
    await postgres?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('finishes requests in flight at SIGTERM with 200, refuses new connections, and exits 0', { timeout: 150_000 }, async () => {
    const port = await freePort();
    const child = spawnCli(['serve'], {
      NODE_ENV: 'development',
      DATABASE_URL: urlWithSchema(postgres.url, postgres.schema),
      TESSERA_KEK: randomBytes(32).toString('base64'),
      TESSERA_COOKIE_KEYS: randomBytes(32).toString('base64url'),
      TESSERA_ISSUER: `http://127.0.0.1:${port}`,
      TESSERA_DATA_DIR: dataDir,
      PORT: String(port),
      LOG_LEVEL: 'info',
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const deadline = Date.now() + 120_000;
      while (!stdout.includes('tessera listening') && child.exitCode === null && Date.now() < deadline) await sleep(100);
      expect(stdout, stderr).toContain('tessera listening');

      // Half the clients keep their connection alive, as pooled HTTP clients do: those
      // connections must not hold the process open once their responses are out.
      const keepAlive = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
      const slow = Array.from({ length: IN_FLIGHT }, (_, i) => startSlowGrant(port, RESOURCES[i % 2]!, i % 2 === 0 ? keepAlive : false));
      // Let the server accept every connection and read every request head.
      await sleep(500);

      const signalledAt = Date.now();
      child.kill('SIGTERM');
      const waitFor = Date.now() + 5_000;
      while (!stdout.includes('shutting down') && Date.now() < waitFor) await sleep(20);
      expect(stdout).toContain('shutting down');
      expect(await connectionRefused(port)).toBe('ECONNREFUSED');

      // The clients now finish sending; each still gets its token.
      await sleep(300);
      for (const { request: req, rest } of slow) req.end(rest);
      const responses = await Promise.all(slow.map((s) => s.response));
      for (const response of responses) {
        expect(response.status, response.body).toBe(200);
        expect(JSON.parse(response.body)).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
        // Even a keep-alive client is told the connection ends here, so it cannot hold the
        // process open or send more requests on it.
        expect(response.connection).toBe('close');
      }

      const answeredAt = Date.now();
      const exit = await exited;
      expect(exit, stderr).toEqual({ code: 0, signal: null });
      // Drained, not cut off: it exits after the last response, well before the 15 s drain bound.
      expect(Date.now() - answeredAt).toBeLessThan(10_000);
      expect(answeredAt - signalledAt).toBeLessThan(10_000);
      keepAlive.destroy();
      expect(stderr).not.toMatch(/^\s+at /m);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
