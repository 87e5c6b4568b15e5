/**
 * Drives the sign-in pages without a browser: plain fetch with a cookie jar, reading the CSRF
 * token out of each form the way a browser would submit it. Used by the relying-party tests;
 * the browser tests use a real Chromium instead.
 */
import { hashPassword } from '../../src/domain/passwords.js';
import { newId } from '../../src/storage/ids.js';
import { EXAMPLE_SEED } from './seed.js';
import type { TestServer } from './server.js';

export const CALLBACK = 'http://127.0.0.1:8181/callback';
export const POST_LOGOUT = 'http://127.0.0.1:8181/';
export const CONFIDENTIAL_SECRET = 'web-confidential-secret-0123456789';

/** Clients of the sign-in tests: a public SPA/native-style client and a confidential web app. */
export const SIGN_IN_SEED = {
  seed: {
    // The same Orders API as the machine-flow seed.
    resourceServers: [EXAMPLE_SEED.seed.resourceServers[0]!],
    clients: [
      {
        client_id: 'web-public',
        name: 'Public Web App',
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        redirect_uris: [CALLBACK],
        post_logout_redirect_uris: [POST_LOGOUT],
        scopes: ['openid', 'profile', 'email', 'offline_access'],
      },
      {
        client_id: 'web-confidential',
        client_secret: CONFIDENTIAL_SECRET,
        name: 'Confidential Web App',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code', 'code id_token'],
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [CALLBACK],
        post_logout_redirect_uris: [POST_LOGOUT],
        scopes: ['openid', 'profile', 'offline_access', 'orders:read'],
        resources: ['https://orders.test'],
      },
    ],
  },
};

/** A cookie jar for fetch: keeps name=value pairs, drops cookies the server clears. */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(response: Response): void {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some((a) => /expires=Thu, 01 Jan 1970/i.test(a));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

export interface Browserless {
  jar: CookieJar;
  /** One request, no redirect following, cookies sent and kept. */
  request(url: string, init?: { method?: string; form?: Record<string, string>; body?: string; contentType?: string }): Promise<Response>;
  /** Follows redirects on the server's own origin; stops at a page or at a redirect elsewhere. */
  follow(url: string): Promise<{ response: Response; url: string; location?: string; html?: string }>;
}

export function browserless(server: Pick<TestServer, 'url'>): Browserless {
  const jar = new CookieJar();
  const absolute = (url: string) => new URL(url, server.url).toString();
  async function request(url: string, init: { method?: string; form?: Record<string, string>; body?: string; contentType?: string } = {}) {
    const headers: Record<string, string> = { cookie: jar.header() };
    let body: string | undefined = init.body;
    if (init.form) body = new URLSearchParams(init.form).toString();
    if (body !== undefined) headers['content-type'] = init.contentType ?? 'application/x-www-form-urlencoded';
    const response = await fetch(absolute(url), { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    jar.store(response);
    return response;
  }
  async function follow(url: string) {
    let current = absolute(url);
    for (let hops = 0; hops < 10; hops++) {
      const response = await request(current);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        const next = new URL(location, current).toString();
        if (!next.startsWith(server.url)) return { response, url: current, location: next };
        current = next;
        continue;
      }
      return { response, url: current, html: await response.text() };
    }
    throw new Error('too many redirects');
  }
  return { jar, request, follow };
}

/** The value of a hidden form field in a page. */
export function hiddenField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match) throw new Error(`no hidden field ${name} in page:\n${html.slice(0, 2000)}`);
  return match[1]!;
}

/** The /interaction/:uid path of a page reached by following the authorization request. */
export function interactionPath(url: string): string {
  const path = new URL(url).pathname;
  if (!/^\/interaction\/[\w-]+$/.test(path)) throw new Error(`not an interaction page: ${url}`);
  return path;
}

/**
 * Signs in and answers consent (when asked) on the pages, from an authorization URL to the
 * redirect back to the client. Returns the callback URL (with code) and what was shown.
 */
export async function signIn(b: Browserless, authorizationUrl: string, username: string, password: string): Promise<{ callback: URL; consentShown: boolean; loginShown: boolean }> {
  let step = await b.follow(authorizationUrl);
  let loginShown = false;
  let consentShown = false;
  for (let pages = 0; pages < 4 && !step.location; pages++) {
    const path = interactionPath(step.url);
    const html = step.html!;
    const csrf = hiddenField(html, 'csrf');
    if (html.includes(`action="${path}/login"`)) {
      loginShown = true;
      const response = await b.request(`${path}/login`, { form: { csrf, username, password } });
      if (response.status !== 303) throw new Error(`login failed with ${response.status}: ${(await response.text()).slice(0, 500)}`);
      step = await b.follow(response.headers.get('location')!);
    } else if (html.includes(`action="${path}/confirm"`)) {
      consentShown = true;
      const response = await b.request(`${path}/confirm`, { form: { csrf, decision: 'allow' } });
      if (response.status !== 303) throw new Error(`consent failed with ${response.status}`);
      step = await b.follow(response.headers.get('location')!);
    } else {
      throw new Error(`unexpected page ${step.url} (${step.response.status}):\n${html.slice(0, 1000)}`);
    }
  }
  if (!step.location) throw new Error('never redirected back to the client');
  return { callback: new URL(step.location), consentShown, loginShown };
}

/**
 * Adds a user to an organization. Test users get cheap scrypt parameters (the hash records them,
 * so sign-in verifies with the same): production cost is 2^17 and would make each attempt slow.
 */
const TEST_SCRYPT = { N: 2 ** 12, r: 8, p: 1 };
const hashes = new Map<string, Promise<string>>();
export async function addUser(
  server: TestServer,
  user: { username: string; password: string; organizationId?: string; name?: string; email?: string; status?: 'active' | 'deactivated'; role?: 'owner' | 'admin' | 'member' },
): Promise<string> {
  let hash = hashes.get(user.password);
  if (!hash) {
    hash = hashPassword(user.password, TEST_SCRYPT);
    hashes.set(user.password, hash);
  }
  const id = newId('usr');
  await server.tessera.repos.users.insert({
    id,
    organization_id: user.organizationId ?? server.bootstrap.organization_id,
    username: user.username,
    email: user.email ?? null,
    name: user.name ?? null,
    role: user.role ?? 'member',
    password_hash: await hash,
  });
  if (user.status === 'deactivated') await server.tessera.db.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [id]);
  return id;
}

/** A server on the embedded default compiles PGlite's WASM and initialises its data directory: slow on a busy machine. */
/** The engine's hidden form on a device page: its action and hidden fields (CSRF; on the confirmation also the code and `confirm`). */
export function engineForm(html: string, id: string): { action: string; fields: Record<string, string> } {
  const start = html.indexOf(`<form id="${id}"`);
  if (start < 0) throw new Error(`no form ${id} in:\n${html.slice(0, 800)}`);
  const form = html.slice(start, html.indexOf('</form>', start));
  const fields = Object.fromEntries([...form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  return { action: /action="([^"]+)"/.exec(form)![1]!, fields };
}

/**
 * The device user's side after the code page (`codePage`, RFC 8628 §3.3): submits `userCode`,
 * hands the confirmation page to `checkConfirmation`, confirms (or cancels), then signs in as
 * `user` and consents. Returns the last page.
 */
export async function approveDeviceCode(
  b: Browserless,
  codePage: string,
  userCode: string,
  user: { username: string; password: string },
  options: { cancel?: boolean; checkConfirmation?: (html: string) => void } = {},
): Promise<string> {
  const codeForm = engineForm(codePage, 'op.deviceInputForm');
  const confirmPage = await b.request(codeForm.action, { form: { ...codeForm.fields, user_code: userCode } });
  const confirmHtml = await confirmPage.text();
  options.checkConfirmation?.(confirmHtml);
  const confirm = engineForm(confirmHtml, 'op.deviceConfirmForm');
  const confirmed = await b.request(confirm.action, { form: { ...confirm.fields, ...(options.cancel ? { abort: 'yes' } : {}) } });
  if (options.cancel) return confirmed.text();
  let step = await b.follow(confirmed.headers.get('location')!);
  for (let pages = 0; pages < 4 && step.html && step.url.includes('/interaction/'); pages++) {
    const path = interactionPath(step.url);
    const csrf = hiddenField(step.html, 'csrf');
    const response = step.html.includes(`action="${path}/login"`)
      ? await b.request(`${path}/login`, { form: { csrf, username: user.username, password: user.password } })
      : await b.request(`${path}/confirm`, { form: { csrf, decision: 'allow' } });
    if (response.status !== 303) throw new Error(`${path}: ${response.status} instead of 303`);
    step = await b.follow(response.headers.get('location')!);
  }
  return step.html!;
}

export const SERVER_START_TIMEOUT_MS = 180_000;

/** The OAuth error a rejected grant request (openid-client) answered with. */
export async function oauthError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { error?: string; code?: string }).error ?? (error as Error).message;
  }
  throw new Error('expected the request to fail');
}
