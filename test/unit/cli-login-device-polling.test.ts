/**
 * How `tessera login --device` (src/cli-login.ts) polls, against answers a running Tessera does
 * not give on demand: a real HTTP server on 127.0.0.1 plays the issuer and answers each token
 * request from a script, as RFC 8628 §3.5 describes them (`slow_down`, `expired_token`, an
 * `interval` of its own). The command itself runs unchanged, with a test clock: its sleeps
 * advance the clock instead of waiting. The sign-in against the real server is
 * test/e2e/cli-login-device.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { loginCommand, LoginError } from '../../src/cli-login.js';
import type { LoginClock } from '../../src/cli-login.js';

const ORG = 'org_pollingtest';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

let server: Server;
let issuer: string;
let home: string;
/** What the token endpoint answers next, one per request; and what it was sent. */
let script: Answer[] = [];
let deviceAnswer: Record<string, unknown> = {};
const received: { path: string; form: URLSearchParams; at: number }[] = [];
let clockNow = 0;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'tessera-device-polling-'));
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', issuer).pathname;
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      if (path === '/.well-known/openid-configuration') {
        return json(200, { issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, device_authorization_endpoint: `${issuer}/device/auth` });
      }
      received.push({ path, form: new URLSearchParams(text), at: clockNow });
      if (path === '/device/auth') {
        return json(200, { device_code: 'dc-1', user_code: 'BCDF-GHJK', verification_uri: `${issuer}/device`, verification_uri_complete: `${issuer}/device?user_code=BCDF-GHJK`, expires_in: 600, ...deviceAnswer });
      }
      const next = script.shift() ?? { status: 400, body: { error: 'authorization_pending' } };
      return json(next.status, next.body, next.headers);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  issuer = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(home, { recursive: true, force: true });
});
afterEach(() => {
  script = [];
  deviceAnswer = {};
  received.length = 0;
});

const TOKENS = { status: 200, body: { access_token: 'at-1', token_type: 'Bearer', expires_in: 600, scope: 'tokens:read', refresh_token: 'rt-1' } };
const pending = { status: 400, body: { error: 'authorization_pending' } };
const slowDown = { status: 400, body: { error: 'slow_down' } };

/** Runs the command with a clock whose sleeps advance it at once; returns the sleeps and the outcome. */
async function run(extra: string[] = []) {
  clockNow = 1_700_000_000_000;
  const sleeps: number[] = [];
  const clock: LoginClock = {
    now: () => clockNow,
    sleep: async (ms) => {
      sleeps.push(ms);
      clockNow += ms;
    },
  };
  let stderr = '';
  let stdout = '';
  const credentials = join(home, `credentials-${sleeps.length}-${Math.random()}.json`);
  try {
    const code = await loginCommand(['--device', '--issuer', issuer, '--organization', ORG, '--credentials-file', credentials, ...extra], {}, { out: (t) => (stdout += t), err: (t) => (stderr += t) }, clock);
    return { code, sleeps, stderr, stdout, credentials };
  } catch (error) {
    if (!(error instanceof LoginError)) throw error;
    return { code: 1, error: error.message, sleeps, stderr, stdout, credentials };
  }
}

describe('tessera login --device polling', () => {
  it('waits 5 s by default, and 5 s more for this and every later request after each slow_down (RFC 8628 §3.5)', async () => {
    script = [pending, slowDown, pending, slowDown, pending, TOKENS];
    const result = await run();
    expect(result.code, result.error).toBe(0);
    expect(result.sleeps).toEqual([5000, 5000, 10_000, 10_000, 15_000, 15_000]);
    const polls = received.filter((r) => r.path === '/token');
    expect(polls).toHaveLength(6);
    for (const poll of polls) expect(Object.fromEntries(poll.form)).toEqual({ grant_type: DEVICE_GRANT, device_code: 'dc-1', client_id: `tessera-cli.${ORG}` });
    const asked = Object.fromEntries(received.find((r) => r.path === '/device/auth')!.form);
    expect(asked).toMatchObject({ client_id: `tessera-cli.${ORG}`, resource: 'urn:tessera:management' });
    expect(asked.scope!.split(' ')).toEqual(expect.arrayContaining(['openid', 'offline_access', 'tokens:read']));
    // Stored as the browser sign-in stores it.
    expect(JSON.parse(readFileSync(result.credentials, 'utf8')).logins).toEqual([
      { issuer, organization_id: ORG, client_id: `tessera-cli.${ORG}`, access_token: 'at-1', token_type: 'Bearer', scope: 'tokens:read', expires_at: 1_700_000_000 + 60 + 600, refresh_token: 'rt-1' },
    ]);
    expect(result.stderr).toContain('BCDF-GHJK');
    expect(result.stderr).toContain(`${issuer}/device?user_code=BCDF-GHJK`);
  });

  it('uses the interval the server names, and waits out a 429 for its Retry-After', async () => {
    deviceAnswer = { interval: 2 };
    script = [pending, { status: 429, body: { error: 'invalid_request' }, headers: { 'retry-after': '30' } }, TOKENS];
    const result = await run();
    expect(result.code, result.error).toBe(0);
    expect(result.sleeps).toEqual([2000, 2000, 30_000]);
  });

  it('stops on expired_token with a message saying to start again', async () => {
    script = [pending, { status: 400, body: { error: 'expired_token' } }];
    const result = await run();
    expect(result.code).toBe(1);
    expect(result.error).toBe('the code expired before it was approved; run tessera login --device again');
    expect(result.stdout).toBe('');
  });

  it('stops on access_denied, and on any other error, with the server’s words', async () => {
    script = [{ status: 400, body: { error: 'access_denied' } }];
    expect((await run()).error).toBe(`sign-in failed: access_denied: the request was cancelled or refused at ${issuer}/device`);
    script = [{ status: 400, body: { error: 'invalid_grant', error_description: 'device code invalid' } }];
    expect((await run()).error).toBe('the token request failed: invalid_grant: device code invalid');
  });

  it('gives up once the code has expired by its own clock, without polling past expires_in', async () => {
    deviceAnswer = { expires_in: 12 };
    const result = await run();
    expect(result.error).toBe('the code expired before it was approved; run tessera login --device again');
    // Polls at 5 and 10 s; at 15 s the code is past its 12 s.
    expect(received.filter((r) => r.path === '/token')).toHaveLength(2);
    // --timeout ends the wait sooner than the code's lifetime.
    received.length = 0;
    deviceAnswer = {};
    const bounded = await run(['--timeout', '7']);
    expect(bounded.error).toBe('no sign-in within 7 s; run tessera login --device again');
    expect(received.filter((r) => r.path === '/token')).toHaveLength(1);
  });

  it('refuses the browser-only options with --device', async () => {
    await expect(loginCommand(['--device', '--port', '8000', '--issuer', issuer, '--organization', ORG], {}, { out: () => {}, err: () => {} })).rejects.toThrow(/--port and --open are for the browser sign-in/);
    await expect(loginCommand(['--device', '--open', '--issuer', issuer, '--organization', ORG], {}, { out: () => {}, err: () => {} })).rejects.toThrow(LoginError);
    expect(received).toEqual([]);
  });
});
