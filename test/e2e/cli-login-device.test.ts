/**
 * `tessera login --device` end to end, on every backend: the command (src/cli-login.ts, run in
 * process with a clock whose sleeps the test shortens) asks a real running Tessera for a device
 * code through the organization's tessera-cli client and polls its token endpoint; the test plays
 * the person on another device: it opens the printed verification_uri_complete, confirms the
 * code, signs in and consents on the real pages with plain fetch and a cookie jar. The token the
 * command stores must then work on the Management API with the scopes of the user's role, as
 * after the browser sign-in (test/e2e/cli-login.test.ts). A request cancelled on the page ends
 * the command with access_denied; once, the real `tessera` command runs as a child process, with
 * real time, and must exit 1 with that message.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { accessTokenCommand, loginCommand, LoginError } from '../../src/cli-login.js';
import type { LoginClock, LoginIo } from '../../src/cli-login.js';
import { cliClientId } from '../../src/domain/cli-client.js';
import { MANAGEMENT_AUDIENCE, ROLE_SCOPES } from '../../src/domain/types.js';
import { backends } from '../helpers/backends.js';
import { runCli, spawnCli, stderrLines } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';
import { createOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, approveDeviceCode, browserless, SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';

const PASSWORD = 'correct horse battery staple';
const TEST_TIMEOUT_MS = 60_000;
/** A child compiles and loads the CLI (several CPU-seconds on a shared machine), then polls in real time. */
const CLI_TEST_TIMEOUT_MS = 120_000;

interface Printed {
  verificationUri: string;
  userCode: string;
  complete: string;
}

interface RunningLogin {
  /** What the command printed for the person, once it printed it. */
  printed: Promise<Printed>;
  /** The exit status (0), or the LoginError message the CLI would print. */
  done: Promise<{ code: number; stdout: string; stderr: string; error?: string }>;
  /** The sleeps the command asked for, in ms. */
  sleeps: number[];
  /** Ends the short waits: the command polls at once from then on. */
  approved(): void;
}

/**
 * Runs `tessera login --device …` in process. Its sleeps are recorded and last at most 500 ms of
 * real time, none at all once the test says the request was approved; the clock is otherwise
 * real time. Polling that fast, the command is told slow_down (RFC 8628 §3.5) until the request
 * is approved or cancelled, and then gets its answer at the next poll.
 */
function startDeviceLogin(args: string[], env: Record<string, string>): RunningLogin {
  let stdout = '';
  let stderr = '';
  let found: (printed: Printed) => void;
  let approve: () => void;
  const approval = new Promise<void>((resolve) => (approve = resolve));
  const printed = new Promise<Printed>((resolve) => (found = resolve));
  const sleeps: number[] = [];
  const io: LoginIo = {
    out: (text) => (stdout += text),
    err: (text) => {
      stderr += text;
      const verificationUri = /on any device:\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      const userCode = /enter the code\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      const complete = /fills the code in:\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      if (verificationUri && userCode && complete) found({ verificationUri, userCode, complete });
    },
  };
  const clock: LoginClock = {
    now: () => Date.now(),
    sleep: async (ms) => {
      sleeps.push(ms);
      await Promise.race([approval, delay(500)]);
    },
  };
  const done = loginCommand(['--device', ...args], env, io, clock).then(
    (code): Awaited<RunningLogin['done']> => ({ code, stdout, stderr }),
    (error: unknown): Awaited<RunningLogin['done']> => {
      if (!(error instanceof LoginError)) throw error;
      return { code: 1, stdout, stderr, error: error.message };
    },
  );
  return {
    printed: Promise.race([printed, done.then((r): never => { throw new Error(`tessera login --device ended before printing a code: ${r.error ?? r.stderr}`); })]),
    done,
    sleeps,
    approved: () => approve(),
  };
}

/** The person on another device: opens the printed URL, confirms (or cancels), signs in, consents. */
async function approveOn(server: TestServer, printed: Printed, user: { username: string; password: string }, options: { cancel?: boolean } = {}): Promise<string> {
  const b = browserless(server);
  // verification_uri_complete (RFC 8628 §3.3.1) opens Tessera's code page, without script,
  // with the code in its field (src/interactions/device-code-prefill.ts); the test submits the
  // field as it stands, as the browser would, and lands on the confirmation.
  const opened = await b.follow(printed.complete);
  expect(opened.html).not.toContain('<script');
  const shown = /<input [^>]*id="user_code"[^>]*>/.exec(opened.html!)![0];
  const filledIn = /\svalue="([^"]*)"/.exec(shown)?.[1];
  expect(filledIn).toBe(printed.userCode);
  return approveDeviceCode(b, opened.html!, filledIn!, user, {
    cancel: options.cancel,
    checkConfirmation: (html) => {
      expect(html).toContain('Tessera CLI');
      expect(html).toContain(printed.userCode);
    },
  });
}

for (const backend of backends) {
  describe(`tessera login --device on ${backend.name}`, () => {
    let server: TestServer;
    let home: string;
    const member = { username: 'mia', password: PASSWORD };

    beforeAll(async () => {
      server = await startTestServer(backend.name);
      await addUser(server, member);
      home = mkdtempSync(join(tmpdir(), 'tessera-login-device-'));
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
      if (home) rmSync(home, { recursive: true, force: true });
    });

    const approveOnPages = (printed: Printed, user: { username: string; password: string }, options: { cancel?: boolean } = {}) => approveOn(server, printed, user, options);


    it('signs a member in from another device and stores a working token, narrowed to the role, where the browser sign-in stores it', async () => {
      const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config') };
      const organization = server.bootstrap.organization_id;
      const login = startDeviceLogin(['--issuer', server.url, '--organization', organization], env);
      const printed = await login.printed;
      expect(printed.verificationUri).toBe(`${server.url}/device`);
      expect(printed.userCode).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(new URL(printed.complete).searchParams.get('user_code')).toBe(printed.userCode);

      const done = await approveOnPages(printed, member);
      expect(done).toContain('Tessera CLI is signed in');
      login.approved();
      const result = await login.done;
      expect(result.code, result.error ?? result.stderr).toBe(0);
      // RFC 8628 §3.2: the server's `interval`, 5 s, between polls (and 5 s more after each
      // slow_down: the shortened sleeps make the command poll too soon until it is approved).
      expect(login.sleeps[0]).toBe(5000);
      expect(result.stderr).not.toMatch(/eyJ/);

      const file = join(home, 'config', 'tessera', 'credentials.json');
      expect(result.stdout).toContain(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const stored = JSON.parse(readFileSync(file, 'utf8')) as { logins: Record<string, unknown>[] };
      expect(stored.logins).toHaveLength(1);
      const entry = stored.logins[0]! as { access_token: string; refresh_token?: string; sub?: string; scope: string };
      expect(entry).toMatchObject({ issuer: server.url, organization_id: organization, client_id: cliClientId(organization), token_type: 'Bearer', refresh_token: expect.any(String), sub: expect.stringMatching(/^usr_/) });

      // The member asked for every Management API scope and got their role's, as in the browser flow.
      const claims = decodeJwt(entry.access_token);
      expect(claims.aud).toBe(MANAGEMENT_AUDIENCE);
      expect(claims.client_id).toBe(cliClientId(organization));
      expect((claims.scope as string).split(' ').sort()).toEqual([...ROLE_SCOPES.member].sort());
      expect(entry.scope.split(' ')).toEqual(expect.arrayContaining([...ROLE_SCOPES.member]));
      expect((await api(server, entry.access_token, 'GET', '/tokens')).status).toBe(200);
      expect((await api(server, entry.access_token, 'GET', '/users')).status).toBe(403);

      // `tessera access-token` hands the stored token to scripts, as after a browser sign-in.
      let printedToken = '';
      expect(await accessTokenCommand([], env, { out: (text) => (printedToken += text), err: () => {} })).toBe(0);
      expect(printedToken.trim()).toBe(entry.access_token);
    }, TEST_TIMEOUT_MS);

    it('prints the token alone with --print for an owner of another organization, with the owner’s scopes', async () => {
      const org = await createOrganization(server, server.managementToken);
      const separate = { HOME: home, XDG_CONFIG_HOME: join(home, 'print-config') };
      const login = startDeviceLogin(['--issuer', server.url, '--organization', org.id, '--print', '--scope', 'users:read tokens:read'], separate);
      await approveOnPages(await login.printed, { username: org.owner.username, password: org.owner.password! });
      login.approved();
      const result = await login.done;
      expect(result.code, result.error ?? result.stderr).toBe(0);
      const token = result.stdout.trim();
      expect(decodeJwt(token)).toMatchObject({ org_id: org.id, scope: 'users:read tokens:read' });
      expect((await api(server, token, 'GET', '/users')).status).toBe(200);
      expect(() => statSync(join(home, 'print-config'))).toThrow();
    }, TEST_TIMEOUT_MS);

    it('ends with access_denied and a non-zero exit when the request is cancelled on the page, storing nothing', async () => {
      const org = await createOrganization(server, server.managementToken);
      const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'denied-config') };
      const login = startDeviceLogin(['--issuer', server.url, '--organization', org.id], env);
      const page = await approveOnPages(await login.printed, { username: org.owner.username, password: org.owner.password! }, { cancel: true });
      expect(page).toContain('cancelled');
      login.approved();
      const result = await login.done;
      expect(result.code).toBe(1);
      expect(result.error).toBe(`sign-in failed: access_denied: the request was cancelled or refused at ${server.url}/device`);
      expect(result.stdout).toBe('');
      expect(() => statSync(join(home, 'denied-config'))).toThrow();
    }, TEST_TIMEOUT_MS);
  });
}

// The real command as a person runs it, once (it speaks HTTP only; one backend is enough, as in
// test/e2e/cli-login.test.ts): real time, so one poll after 5 s, and the exit status and message.
const lastBackend = backends[backends.length - 1]!;
describe(`tessera login --device as a child process on ${lastBackend.name}`, () => {
  let server: TestServer;
  let home: string;

  beforeAll(async () => {
    server = await startTestServer(lastBackend.name);
    home = mkdtempSync(join(tmpdir(), 'tessera-login-device-child-'));
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('documents --device in its help, and exits 1 with access_denied when the request is cancelled', async () => {
    const help = await runCli(['--help'], {}, CLI_TEST_TIMEOUT_MS);
    expect(help.stdout).toContain('--device');

    const org = await createOrganization(server, server.managementToken);
    const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config') };
    const child = spawnCli(['login', '--device', '--issuer', server.url, '--organization', org.id], env);
    let stdout = '';
    let stderr = '';
    let found: (printed: Printed) => void;
    const printed = new Promise<Printed>((resolve) => (found = resolve));
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
      const verificationUri = /on any device:\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      const userCode = /enter the code\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      const complete = /fills the code in:\n\n {2}(\S+)\n/.exec(stderr)?.[1];
      if (verificationUri && userCode && complete) found({ verificationUri, userCode, complete });
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TEST_TIMEOUT_MS);
    const done = new Promise<CliResult>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
    try {
      const shown = await Promise.race([printed, done.then((r): never => { throw new Error(`tessera login --device exited early: ${r.stderr}`); })]);
      await approveOn(server, shown, { username: org.owner.username, password: org.owner.password! }, { cancel: true });
      const result = await done;
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(stderrLines(result.stderr).at(-1)).toBe(`tessera: sign-in failed: access_denied: the request was cancelled or refused at ${server.url}/device`);
    } finally {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, CLI_TEST_TIMEOUT_MS);
});
