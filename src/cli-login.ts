import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { CLI_CLIENT_ID_PREFIX } from './domain/cli-client.js';
import { DEVICE_CODE_GRANT } from './domain/client-policy.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES } from './domain/types.js';

/**
 * `tessera login` and `tessera access-token`: a user's Management API token from the command
 * line, through the organization's built-in public client `tessera-cli.<organization id>`
 * (src/domain/cli-client.ts). RFC 8252, OAuth 2.0 for native apps:
 * - authorization code + PKCE S256 (§6, §8.1), with `state` against cross-site requests;
 * - the redirect goes to a listener on 127.0.0.1 at an ephemeral port (§7.3, §8.3: an IP
 *   literal, not `localhost`); the browser is opened only when asked (`--open`), otherwise the
 *   URL is printed, which also works over SSH;
 * - with `--device`, on a machine without a browser, the device authorization grant instead
 *   (RFC 8628): the command prints a code and a URL to open on any other device, and polls the
 *   token endpoint at the interval the server sets, 5 s more after each `slow_down` (§3.5);
 * - the access token and the refresh token are written to a file only its owner may read
 *   (`<config dir>/tessera/credentials.json`, mode 0600), or the access token alone is printed
 *   (`--print`) and nothing is stored.
 * `tessera access-token` prints the stored access token, first refreshing it (the refresh token
 * rotates, as for any client) when it is about to expire, so scripts can run
 * `curl -H "Authorization: Bearer $(tessera access-token)" …`.
 *
 * The command talks to the server over HTTP only: it needs no database and no server config.
 */
export const LOGIN_USAGE = `  login --organization ORG_ID [--issuer URL] [--scope "S …"] [--print] [--open]
        [--port N] [--device] [--timeout SECONDS] [--credentials-file PATH]
                             sign in as a user through the organization's tessera-cli client
                             and store a Management API token (or print it with --print);
                             --device: on a machine without a browser, print a code to enter
                             at the server's /device page from any other device
  access-token [--organization ORG_ID] [--issuer URL] [--credentials-file PATH]
                             print the stored Management API token, refreshed when needed
`;

export interface LoginIo {
  /** Standard output: only what a script captures (the token with --print, or a summary). */
  out(text: string): void;
  /** Standard error: instructions and progress for the person at the terminal. */
  err(text: string): void;
}

/** The stored result of a sign-in. */
export interface StoredLogin {
  issuer: string;
  organization_id: string;
  client_id: string;
  access_token: string;
  token_type: string;
  scope: string;
  /** Epoch seconds. */
  expires_at: number;
  refresh_token?: string;
  /** The subject (user id) of the ID token. */
  sub?: string;
}

interface CredentialsFile {
  version: 1;
  logins: StoredLogin[];
}

interface ServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  device_authorization_endpoint?: string;
  authorization_response_iss_parameter_supported?: boolean;
}

/** What the command needs of time: real time in use, a test's clock in tests. */
export interface LoginClock {
  /** Epoch milliseconds. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

const systemClock: LoginClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** How long the listener waits for the browser by default: long enough to find a password. */
const DEFAULT_TIMEOUT_SECONDS = 300;
/** RFC 8628 §3.2: the polling interval when the server names none; §3.5: the step added on `slow_down`. */
const DEFAULT_POLL_INTERVAL_SECONDS = 5;
const SLOW_DOWN_STEP_SECONDS = 5;
/** A token this close to its expiry is refreshed before it is handed to a script. */
const REFRESH_MARGIN_SECONDS = 60;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export class LoginError extends Error {}

/** `$XDG_CONFIG_HOME/tessera/credentials.json`, or `~/.config/tessera/credentials.json`. */
export function defaultCredentialsFile(env: Record<string, string | undefined>): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'tessera', 'credentials.json');
}

/** The issuer URL, checked: https, or http on a loopback address only (RFC 8414 §2). */
function issuerUrl(value: string | undefined): string {
  if (!value) throw new LoginError('pass --issuer URL (or set TESSERA_ISSUER)');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new LoginError(`--issuer ${value} is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new LoginError('--issuer must use https (http only on a loopback address)');
  }
  return value.replace(/\/+$/, '');
}

function organizationId(value: string | undefined): string {
  if (!value) {
    throw new LoginError('pass --organization ORG_ID: the id of your organization (GET /api/v1/organization shows it, with cli_client_id)');
  }
  // Organization ids are `org_` and random characters (src/storage/ids.ts); a name is the usual slip.
  if (!/^org_[\w-]{1,100}$/.test(value)) throw new LoginError(`--organization takes the organization's id (org_…), not its name; GET /api/v1/organization shows it`);
  return value;
}

async function discover(issuer: string): Promise<ServerMetadata> {
  let response: Response;
  try {
    response = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { accept: 'application/json' } });
  } catch (error) {
    throw new LoginError(`cannot reach ${issuer}: ${(error as Error).message}`);
  }
  if (!response.ok) throw new LoginError(`${issuer} is not an OpenID provider (discovery answered ${response.status})`);
  const metadata = (await response.json()) as ServerMetadata;
  // RFC 8414 §3.3: the metadata must be the issuer's own.
  if (metadata.issuer !== issuer) throw new LoginError(`${issuer} announces itself as ${String(metadata.issuer)}; use that as --issuer`);
  return metadata;
}

interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  id_token?: string;
  error?: string;
  error_description?: string;
}

/** A form POST answered with JSON; the body is `{}` when the answer is not JSON. */
async function postForm<T>(endpoint: string, params: Record<string, string>): Promise<{ response: Response; body: Partial<T> & { error?: string; error_description?: string } }> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
  return { response, body: (await response.json().catch(() => ({}))) as Partial<T> };
}

const describeError = (body: { error?: string; error_description?: string }, status: number) =>
  `${body.error ?? status}${body.error_description ? `: ${body.error_description}` : ''}`;

async function tokenRequest(endpoint: string, params: Record<string, string>): Promise<TokenResponse> {
  const { response, body } = await postForm<TokenResponse>(endpoint, params);
  if (!response.ok || typeof body.access_token !== 'string') throw new LoginError(`the token request failed: ${describeError(body, response.status)}`);
  return body as TokenResponse;
}

/** The `sub` of an ID token received straight from the token endpoint (OpenID Connect Core §3.1.3.7: TLS vouches for it). */
function subjectOf(idToken: string | undefined): string | undefined {
  if (!idToken) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

function readCredentials(path: string): CredentialsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, logins: [] };
    throw error;
  }
  const parsed = JSON.parse(text) as Partial<CredentialsFile>;
  return { version: 1, logins: Array.isArray(parsed.logins) ? parsed.logins : [] };
}

/** Writes the file whole, readable by its owner only, so a crash never leaves half of it. */
function writeCredentials(path: string, file: CredentialsFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  // The mode given at creation is subject to the umask; make it exact.
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

function storeLogin(path: string, login: StoredLogin): void {
  const file = readCredentials(path);
  file.logins = [...file.logins.filter((l) => !(l.issuer === login.issuer && l.organization_id === login.organization_id)), login];
  writeCredentials(path, file);
}

const pkceChallenge = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

/** Opens a URL in the desktop's browser; failure is not fatal, the URL is printed anyway. */
function openBrowser(url: string): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(command as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // The URL is on the terminal.
  }
}

const PAGE = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>`;

/**
 * Waits on the loopback listener for the one redirect that carries our `state`; anything else
 * gets a 404 and is ignored (another local process cannot end the wait with a forged request
 * that lacks the state).
 */
function awaitRedirect(server: Server, state: string, timeoutMs: number): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new LoginError(`no sign-in within ${Math.round(timeoutMs / 1000)} s; run tessera login again`)), timeoutMs);
    server.on('request', (req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const params = url.searchParams;
      if (req.method !== 'GET' || url.pathname !== '/callback' || params.get('state') !== state) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
        return;
      }
      const failed = params.has('error');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'" });
      res.end(failed ? PAGE('Sign-in failed', 'Return to the terminal for details.') : PAGE('Signed in', 'You can close this window and return to the terminal.'));
      clearTimeout(timer);
      resolve(params);
    });
  });
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) => reject(new LoginError(`cannot listen on 127.0.0.1:${port}: ${error.message}`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

export async function loginCommand(args: string[], env: Record<string, string | undefined>, io: LoginIo, clock: LoginClock = systemClock): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      issuer: { type: 'string' },
      organization: { type: 'string' },
      scope: { type: 'string' },
      print: { type: 'boolean', default: false },
      open: { type: 'boolean', default: false },
      port: { type: 'string' },
      device: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      'credentials-file': { type: 'string' },
    },
  });
  const issuer = issuerUrl(values.issuer ?? env.TESSERA_ISSUER);
  const organization = organizationId(values.organization);
  if (values.device && (values.port !== undefined || values.open)) {
    throw new LoginError('--port and --open are for the browser sign-in; --device needs neither');
  }
  const port = Number(values.port ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LoginError('--port must be a port number (0: any free port)');
  const timeoutSeconds = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeoutSeconds !== undefined && (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1)) throw new LoginError('--timeout must be a whole number of seconds');
  const managementScopes = values.scope === undefined ? [...ORGANIZATION_SCOPES] : values.scope.split(/\s+/).filter(Boolean);
  const unknown = managementScopes.filter((s) => !(ORGANIZATION_SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) throw new LoginError(`not a Management API scope: ${unknown.join(' ')}`);
  const credentialsFile = values['credentials-file'] ?? defaultCredentialsFile(env);

  const metadata = await discover(issuer);
  const request: SignInRequest = {
    issuer,
    organization,
    clientId: `${CLI_CLIENT_ID_PREFIX}${organization}`,
    // offline_access: a refresh token, so `tessera access-token` can renew without a browser.
    // The server narrows the Management API scopes to the user's role, whichever flow asks
    // (src/oidc/resource-indicators.ts).
    scope: ['openid', 'offline_access', ...managementScopes].join(' '),
  };
  const tokens = values.device
    ? await deviceSignIn(metadata, request, timeoutSeconds, io, clock)
    : await browserSignIn(metadata, request, { port, open: values.open, timeoutSeconds: timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS }, io);
  return finishLogin(request, tokens, { print: values.print, credentialsFile }, io, clock);
}

interface SignInRequest {
  issuer: string;
  organization: string;
  clientId: string;
  scope: string;
}

/** RFC 8252: authorization code + PKCE through the loopback listener. */
async function browserSignIn(metadata: ServerMetadata, request: SignInRequest, options: { port: number; open: boolean; timeoutSeconds: number }, io: LoginIo): Promise<TokenResponse> {
  const { issuer, organization, clientId } = request;
  const server = await listen(options.port);
  try {
    const address = server.address();
    const redirectUri = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : options.port}/callback`;
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(16).toString('base64url');
    const authorization = new URL(metadata.authorization_endpoint);
    authorization.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: request.scope,
      resource: MANAGEMENT_AUDIENCE,
      code_challenge: pkceChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      // OpenID Connect Core §11: offline_access is honoured only with prompt=consent.
      prompt: 'consent',
    }).toString();

    const redirected = awaitRedirect(server, state, options.timeoutSeconds * 1000);
    io.err(`To sign in to ${issuer} (organization ${organization}), open this URL in a browser:\n\n  ${authorization.href}\n\nWaiting for the browser on ${redirectUri} …\n`);
    if (options.open) openBrowser(authorization.href);
    const params = await redirected;

    // RFC 9207: the response names the server that sent it, so a mix-up is caught.
    const iss = params.get('iss');
    if ((iss !== null || metadata.authorization_response_iss_parameter_supported) && iss !== issuer) {
      throw new LoginError(`the authorization response came from ${iss ?? 'an unnamed issuer'}, not ${issuer}`);
    }
    const error = params.get('error');
    if (error) throw new LoginError(`sign-in failed: ${error}${params.get('error_description') ? `: ${params.get('error_description')}` : ''}`);
    const code = params.get('code');
    if (!code) throw new LoginError('the authorization response has no code');

    return await tokenRequest(metadata.token_endpoint, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      client_id: clientId,
      code_verifier: verifier,
      resource: MANAGEMENT_AUDIENCE,
    });
  } finally {
    server.close();
    server.closeAllConnections();
  }
}

interface DeviceAuthorizationResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval?: number;
}

/**
 * RFC 8628: asks for a device code (§3.1), shows the user where to enter it (§3.3), and polls
 * the token endpoint (§3.4, §3.5) until the user approves, refuses, or the code expires.
 * `timeoutSeconds`, when given, ends the wait sooner than the code's own lifetime.
 */
async function deviceSignIn(metadata: ServerMetadata, request: SignInRequest, timeoutSeconds: number | undefined, io: LoginIo, clock: LoginClock): Promise<TokenResponse> {
  const { issuer, organization, clientId } = request;
  if (!metadata.device_authorization_endpoint) throw new LoginError(`${issuer} does not offer the device authorization grant (RFC 8628); sign in without --device`);
  const { response, body } = await postForm<DeviceAuthorizationResponse>(metadata.device_authorization_endpoint, {
    client_id: clientId,
    scope: request.scope,
    resource: MANAGEMENT_AUDIENCE,
  });
  if (!response.ok || typeof body.device_code !== 'string' || typeof body.user_code !== 'string' || typeof body.verification_uri !== 'string') {
    throw new LoginError(`the device authorization request failed: ${describeError(body, response.status)}`);
  }
  const started = body as DeviceAuthorizationResponse;
  const lifetime = typeof started.expires_in === 'number' && started.expires_in > 0 ? started.expires_in : 600;
  const waitSeconds = Math.min(lifetime, timeoutSeconds ?? lifetime);
  const deadline = clock.now() + waitSeconds * 1000;
  let interval = typeof started.interval === 'number' && started.interval > 0 ? started.interval : DEFAULT_POLL_INTERVAL_SECONDS;

  io.err(
    `To sign in to ${issuer} (organization ${organization}), open this URL on any device:\n\n  ${started.verification_uri}\n\n` +
      `and enter the code\n\n  ${started.user_code}\n\n` +
      (started.verification_uri_complete ? `or open this URL, which fills the code in:\n\n  ${started.verification_uri_complete}\n\n` : '') +
      `Check that the page shows the same code. Waiting up to ${Math.ceil(waitSeconds / 60)} min for the sign-in …\n`,
  );

  for (;;) {
    await clock.sleep(interval * 1000);
    if (clock.now() >= deadline) {
      throw new LoginError(waitSeconds < lifetime ? `no sign-in within ${waitSeconds} s; run tessera login --device again` : 'the code expired before it was approved; run tessera login --device again');
    }
    let answer: Awaited<ReturnType<typeof postForm<TokenResponse>>>;
    try {
      answer = await postForm<TokenResponse>(metadata.token_endpoint, { grant_type: DEVICE_CODE_GRANT, device_code: started.device_code, client_id: clientId });
    } catch {
      // RFC 8628 §3.5: on a connection failure, back off exponentially and try again until the code expires.
      interval *= 2;
      continue;
    }
    const { response: polled, body: tokens } = answer;
    if (polled.ok && typeof tokens.access_token === 'string') return tokens as TokenResponse;
    switch (tokens.error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        // RFC 8628 §3.5: this and every later request waits 5 s longer.
        interval += SLOW_DOWN_STEP_SECONDS;
        continue;
      case 'expired_token':
        throw new LoginError('the code expired before it was approved; run tessera login --device again');
      case 'access_denied':
        throw new LoginError(`sign-in failed: access_denied: the request was cancelled or refused at ${started.verification_uri}`);
      default:
        // A rate limit of the server (429 with Retry-After) is waited out, like slow_down.
        if (polled.status === 429) {
          interval = Math.max(interval, Number(polled.headers.get('retry-after')) || interval + SLOW_DOWN_STEP_SECONDS);
          continue;
        }
        throw new LoginError(`the token request failed: ${describeError(tokens, polled.status)}`);
    }
  }
}

/** Prints the token (`--print`) or stores it: the same for every way of signing in. */
function finishLogin(request: SignInRequest, tokens: TokenResponse, options: { print: boolean; credentialsFile: string }, io: LoginIo, clock: LoginClock): number {
  const { issuer, organization, clientId } = request;
  const expiresAt = Math.floor(clock.now() / 1000) + tokens.expires_in;
  if (options.print) {
    io.out(`${tokens.access_token}\n`);
    io.err(`Signed in; the token expires at ${new Date(expiresAt * 1000).toISOString()} and was not stored.\n`);
    return 0;
  }
  storeLogin(options.credentialsFile, {
    issuer,
    organization_id: organization,
    client_id: clientId,
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    scope: tokens.scope ?? '',
    expires_at: expiresAt,
    ...(tokens.refresh_token ? { refresh_token: tokens.refresh_token } : {}),
    ...(subjectOf(tokens.id_token) ? { sub: subjectOf(tokens.id_token) } : {}),
  });
  io.out(`Signed in to ${issuer}, organization ${organization}.\nScopes: ${tokens.scope || '(none)'}\nCredentials stored in ${options.credentialsFile}; \`tessera access-token\` prints a current token.\n`);
  return 0;
}

export async function accessTokenCommand(args: string[], env: Record<string, string | undefined>, io: LoginIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { issuer: { type: 'string' }, organization: { type: 'string' }, 'credentials-file': { type: 'string' } },
  });
  const credentialsFile = values['credentials-file'] ?? defaultCredentialsFile(env);
  const file = readCredentials(credentialsFile);
  const issuer = values.issuer ?? env.TESSERA_ISSUER;
  const matches = file.logins.filter((l) => (issuer === undefined || l.issuer === issuer.replace(/\/+$/, '')) && (values.organization === undefined || l.organization_id === values.organization));
  if (matches.length === 0) throw new LoginError('not signed in; run tessera login first');
  if (matches.length > 1) throw new LoginError('signed in to several organizations; pass --issuer and --organization');
  const login = matches[0]!;
  if (login.expires_at - REFRESH_MARGIN_SECONDS > Date.now() / 1000) {
    io.out(`${login.access_token}\n`);
    return 0;
  }
  if (!login.refresh_token) throw new LoginError('the stored token has expired; run tessera login again');
  const metadata = await discover(login.issuer);
  let tokens: TokenResponse;
  try {
    tokens = await tokenRequest(metadata.token_endpoint, {
      grant_type: 'refresh_token',
      refresh_token: login.refresh_token,
      client_id: login.client_id,
      resource: MANAGEMENT_AUDIENCE,
    });
  } catch (error) {
    throw new LoginError(`${(error as Error).message}; run tessera login again`);
  }
  // The refresh token rotates on every use: the new one replaces the old at once.
  storeLogin(credentialsFile, {
    ...login,
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    scope: tokens.scope ?? login.scope,
    expires_at: Math.floor(Date.now() / 1000) + tokens.expires_in,
    refresh_token: tokens.refresh_token ?? login.refresh_token,
  });
  io.out(`${tokens.access_token}\n`);
  return 0;
}
