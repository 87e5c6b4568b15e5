/**
 * `tessera login` and `tessera access-token` end to end: the real command runs as a child
 * process, as a user runs it, against a real running Tessera. The test plays the browser: it
 * reads the authorization URL the command prints, signs in on the pages with plain fetch and a
 * cookie jar, and follows the redirect to the command's loopback listener. The token the command
 * stores (or prints) must then work on the Management API.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliClientId } from '../../src/domain/cli-client.js';
import { MANAGEMENT_AUDIENCE, ROLE_SCOPES } from '../../src/domain/types.js';
import { backends } from '../helpers/backends.js';
import { runCli, spawnCli, stderrLines } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';
import { createOrganization } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, signIn } from '../helpers/sign-in.js';

const PASSWORD = 'correct horse battery staple';
const SERVER_START_TIMEOUT_MS = 180_000;
/** Each child compiles and loads the CLI (several CPU-seconds on a shared machine). */
const CLI_TEST_TIMEOUT_MS = 120_000;

// The command talks HTTP only, so one backend is enough: PostgreSQL when it is there.
const backend = backends[backends.length - 1]!;

interface RunningLogin {
  child: ChildProcess;
  /** The authorization URL the command printed, once it printed it. */
  authorizationUrl: Promise<URL>;
  done: Promise<CliResult>;
}

/** Starts `tessera login …` and collects its output; resolves the URL as soon as it is printed. */
function startLogin(args: string[], env: Record<string, string>): RunningLogin {
  const child = spawnCli(['login', ...args], env);
  let stdout = '';
  let stderr = '';
  let found: (url: URL) => void;
  const printed = new Promise<URL>((resolve) => (found = resolve));
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
    const match = /^\s+(http:\/\/\S+\/auth\?\S+)$/m.exec(stderr);
    if (match) found(new URL(match[1]!));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TEST_TIMEOUT_MS);
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const authorizationUrl = Promise.race([
    printed,
    done.then((result): never => {
      throw new Error(`tessera login exited before printing a URL: ${result.stderr}`);
    }),
  ]);
  return { child, authorizationUrl, done };
}

describe(`tessera login on ${backend.name}`, () => {
  let server: TestServer;
  let home: string;
  let env: Record<string, string>;
  const member = { username: 'mia', password: PASSWORD };

  beforeAll(async () => {
    server = await startTestServer(backend.name);
    await addUser(server, member);
    home = mkdtempSync(join(tmpdir(), 'tessera-login-'));
    // The user's own environment: a home and config directory, no server configuration at all.
    env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config') };
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** Plays the browser: signs in at the printed URL and delivers the redirect to the command's listener. */
  async function browse(login: RunningLogin, user: { username: string; password: string }): Promise<URL> {
    const url = await login.authorizationUrl;
    const { callback } = await signIn(browserless(server), url.href, user.username, user.password);
    const landing = await fetch(callback);
    expect(landing.status).toBe(200);
    expect(await landing.text()).toMatch(/Signed in|Sign-in failed/);
    return url;
  }

  it('signs a user in through the loopback listener and stores a working token in a file only they can read', async () => {
    const login = startLogin(['--issuer', server.url, '--organization', server.bootstrap.organization_id], env);
    const url = await browse(login, member);
    // RFC 8252 §7.3: a loopback redirect on 127.0.0.1 at a port chosen by the system, and PKCE S256.
    expect(url.searchParams.get('client_id')).toBe(cliClientId(server.bootstrap.organization_id));
    expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(MANAGEMENT_AUDIENCE);

    const result = await login.done;
    expect(result.code, result.stderr).toBe(0);
    expect(stderrLines(result.stderr).join('\n')).not.toMatch(/eyJ/);
    const file = join(home, 'config', 'tessera', 'credentials.json');
    expect(result.stdout).toContain(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'config', 'tessera')).mode & 0o077).toBe(0);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { logins: { issuer: string; organization_id: string; access_token: string; refresh_token?: string; expires_at: number }[] };
    expect(stored.logins).toHaveLength(1);
    const entry = stored.logins[0]!;
    expect(entry).toMatchObject({ issuer: server.url, organization_id: server.bootstrap.organization_id, refresh_token: expect.any(String) });
    expect(entry.access_token).not.toContain(entry.refresh_token);

    // The token is the member's, with the member's scopes, and works on the Management API.
    const claims = decodeJwt(entry.access_token);
    expect(claims.aud).toBe(MANAGEMENT_AUDIENCE);
    expect((claims.scope as string).split(' ').sort()).toEqual([...ROLE_SCOPES.member].sort());
    expect((await api(server, entry.access_token, 'GET', '/tokens')).status).toBe(200);
    expect((await api(server, entry.access_token, 'GET', '/users')).status).toBe(403);

    // `tessera access-token` hands a script the stored token while it is fresh...
    const current = await runCli(['access-token'], env, CLI_TEST_TIMEOUT_MS);
    expect(current.code, current.stderr).toBe(0);
    expect(current.stdout.trim()).toBe(entry.access_token);

    // ...and refreshes it (the refresh token rotates) once it is about to expire.
    writeFileSync(file, JSON.stringify({ ...stored, logins: [{ ...entry, expires_at: Math.floor(Date.now() / 1000) }] }), { mode: 0o600 });
    const renewed = await runCli(['access-token'], env, CLI_TEST_TIMEOUT_MS);
    expect(renewed.code, renewed.stderr).toBe(0);
    const token = renewed.stdout.trim();
    expect(token).not.toBe(entry.access_token);
    expect((await api(server, token, 'GET', '/tokens')).status).toBe(200);
    const after = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    expect(after.logins[0]!.access_token).toBe(token);
    expect(after.logins[0]!.refresh_token).not.toBe(entry.refresh_token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  }, CLI_TEST_TIMEOUT_MS);

  it('prints the token alone with --print, for a script, and stores nothing', async () => {
    const separate = { HOME: home, XDG_CONFIG_HOME: join(home, 'print-config') };
    const org = await createOrganization(server, server.managementToken);
    const owner = { username: org.owner.username, password: org.owner.password! };
    const login = startLogin(['--issuer', server.url, '--organization', org.id, '--print', '--scope', 'users:read tokens:read'], separate);
    await browse(login, owner);
    const result = await login.done;
    expect(result.code, result.stderr).toBe(0);
    const token = result.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const claims = decodeJwt(token);
    expect(claims.org_id).toBe(org.id);
    expect(claims.scope).toBe('users:read tokens:read');
    expect((await api(server, token, 'GET', '/users')).status).toBe(200);
    expect(() => statSync(join(home, 'print-config'))).toThrow();
  }, CLI_TEST_TIMEOUT_MS);

  it('fails cleanly on a wrong sign-in or a denied request, printing no token', async () => {
    const login = startLogin(['--issuer', server.url, '--organization', server.bootstrap.organization_id, '--print'], env);
    const url = await login.authorizationUrl;
    const b = browserless(server);
    // A wrong password, or a user this organization does not have, gets the login page again.
    await expect(signIn(b, url.href, 'nobody', PASSWORD)).rejects.toThrow(/login failed with 401/);
    // The member signs in, then says no at the consent page.
    const step = await b.follow(url.href);
    const path = new URL(step.url).pathname;
    const csrf = /name="csrf" value="([^"]*)"/.exec(step.html!)![1]!;
    const loggedIn = await b.request(`${path}/login`, { form: { csrf, username: member.username, password: member.password } });
    const consent = await b.follow(loggedIn.headers.get('location')!);
    const consentPath = new URL(consent.url).pathname;
    const consentCsrf = /name="csrf" value="([^"]*)"/.exec(consent.html!)![1]!;
    const denied = await b.request(`${consentPath}/confirm`, { form: { csrf: consentCsrf, decision: 'deny' } });
    const back = await b.follow(denied.headers.get('location')!);
    await fetch(back.location!);
    const result = await login.done;
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(stderrLines(result.stderr).at(-1)).toMatch(/tessera: sign-in failed: access_denied/);
  }, CLI_TEST_TIMEOUT_MS);

  it('refuses what it cannot do safely, before opening anything', async () => {
    const noOrg = await runCli(['login', '--issuer', server.url], env, CLI_TEST_TIMEOUT_MS);
    expect(noOrg.code).toBe(1);
    expect(noOrg.stderr).toMatch(/--organization/);
    const byName = await runCli(['login', '--issuer', server.url, '--organization', 'default'], env, CLI_TEST_TIMEOUT_MS);
    expect(byName.code).toBe(1);
    expect(byName.stderr).toMatch(/organization's id \(org_…\), not its name/);
    const plainHttp = await runCli(['login', '--issuer', 'http://idp.example.test', '--organization', 'org_x'], env, CLI_TEST_TIMEOUT_MS);
    expect(plainHttp.code).toBe(1);
    expect(plainHttp.stderr).toMatch(/https/);
    const wrongScope = await runCli(['login', '--issuer', server.url, '--organization', 'org_x', '--scope', 'organizations:admin'], env, CLI_TEST_TIMEOUT_MS);
    expect(wrongScope.code).toBe(1);
    expect(wrongScope.stderr).toMatch(/not a Management API scope: organizations:admin/);
  }, CLI_TEST_TIMEOUT_MS);
});
