/**
 * The certification plans of test/conformance/plans.ts, module by module, against a running
 * Tessera on both backends: the relying party is openid-client (which checks ID tokens, state,
 * nonce, iss and userinfo subjects the way a certified RP does), the sign-in pages are driven as
 * a browser submits them, and a real Chromium where the browser's own behaviour is the point
 * (a cross-site form POST and its cookies). Basic OP modules run a second time with
 * `response_mode=form_post` for the Form Post plan.
 *
 * Each module's result is recorded; docs/conformance.md is rendered from the module list and the
 * results (test/conformance/render.ts). With TESSERA_WRITE_CONFORMANCE_DOC=1 the run writes it;
 * otherwise a complete run checks that the committed page says what this run found.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MODULES, PLANS } from '../conformance/plans.js';
import type { PlanId, PlanModule } from '../conformance/plans.js';
import { renderConformance } from '../conformance/render.js';
import type { ConformanceResults } from '../conformance/render.js';
import { backends, postgresRedisSkipReason } from '../helpers/backends.js';
import type { BackendName } from '../helpers/backends.js';
import { expectApi } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, hiddenField, SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';
import type { Browserless } from '../helpers/sign-in.js';

const CHROMIUM = '/usr/bin/chromium';
const DOC = resolve(import.meta.dirname, '../../docs/conformance.md');
const REDIRECT = 'https://rp.test/cb';
const REDIRECT_WITH_QUERY = 'https://rp.test/cb?tenant=blue';
const RP = { id: 'rp', secret: 'rp-secret-0123456789abcdef0123' };
const RP_POST = { id: 'rp-post', secret: 'rp-post-secret-0123456789abcdef' };
const ALICE = { username: 'alice', password: 'correct horse battery staple', name: 'Alice Example', email: 'alice@example.test' };
const rpClient = (id: string, secret: string, method: string, extraRedirect: string) => ({
  client_id: id, client_secret: secret, name: id, grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: method,
  redirect_uris: [REDIRECT, REDIRECT_WITH_QUERY, extraRedirect], scopes: ['openid', 'profile', 'email', 'offline_access'],
});
/** The clients: `rp` also comes back to a real page, on another site than Tessera's, for the browser. */
const seed = (rpSite: string) => ({ seed: { resourceServers: [], clients: [rpClient(RP.id, RP.secret, 'client_secret_basic', `${rpSite}/cb`), rpClient(RP_POST.id, RP_POST.secret, 'client_secret_post', `${rpSite}/cb`)] } });

type Mode = 'query' | 'form_post';

interface Harness {
  server: TestServer;
  /** The relying party's own site, `http://localhost:<port>`: not the same site as Tessera's 127.0.0.1. */
  rpOrigin: string;
  backend: BackendName;
  discovery: Record<string, any>;
  rp: client.Configuration;
  rpPost: client.Configuration;
  browser: Promise<Browser | undefined>;
}

/** What came back to the client: the parameters at its redirect URI, or an error page Tessera showed instead. */
interface Outcome {
  /** The request the client would make to its redirect URI (GET with a query, or the form_post POST). */
  callback?: Request;
  params?: URLSearchParams;
  errorPage?: { status: number; html: string };
  pages: ('login' | 'consent')[];
}

interface Started {
  outcome: Outcome;
  verifier: string;
  state: string;
  nonce?: string;
}

/** Follows an authorization request as a browser would: signs in and consents when asked, until the answer to the client. */
async function drive(h: Harness, b: Browserless, url: string, user = ALICE): Promise<Outcome> {
  const pages: Outcome['pages'] = [];
  let step = await b.follow(url);
  for (let hop = 0; hop < 5; hop += 1) {
    if (step.location) {
      const location = new URL(step.location);
      return { pages, callback: new Request(location), params: location.searchParams };
    }
    const html = step.html ?? '';
    const formPost = /<form method="post" action="([^"]+)">/.exec(html);
    if (formPost && !step.url.includes('/interaction/')) {
      const params = new URLSearchParams();
      for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)) params.set(name!, value!.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
      const action = formPost[1]!.replace(/&amp;/g, '&');
      return { pages, params, callback: new Request(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: params.toString() }) };
    }
    const path = step.url.startsWith(`${h.server.url}/interaction/`) ? new URL(step.url).pathname : undefined;
    if (!path) return { pages, errorPage: { status: step.response.status, html } };
    const csrf = hiddenField(html, 'csrf');
    let response: Response;
    if (html.includes(`action="${path}/login"`)) {
      pages.push('login');
      response = await b.request(`${path}/login`, { form: { csrf, username: user.username, password: user.password } });
    } else {
      pages.push('consent');
      response = await b.request(`${path}/confirm`, { form: { csrf, decision: 'allow' } });
    }
    expect(response.status, `${path}: ${(await response.clone().text()).slice(0, 300)}`).toBe(303);
    step = await b.follow(response.headers.get('location')!);
  }
  throw new Error('the authorization request never came back to the client');
}

/** An authorization request of `config`'s client with PKCE, state and nonce, changed by `extra` (undefined drops a parameter). */
async function authorize(h: Harness, mode: Mode, extra: Record<string, string | undefined> = {}, options: { b?: Browserless; config?: client.Configuration; user?: typeof ALICE } = {}): Promise<Started> {
  const config = options.config ?? h.rp;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params: Record<string, string | undefined> = {
    redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    ...(mode === 'form_post' ? { response_mode: 'form_post' } : {}),
    ...extra,
  };
  const defined = Object.fromEntries(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
  const url = client.buildAuthorizationUrl(config, defined);
  const outcome = await drive(h, options.b ?? browserless(h.server), url.href, options.user);
  return { outcome, verifier, state, nonce: defined.nonce };
}

/** The code exchanged by openid-client, which checks state, iss (RFC 9207), and the ID token (signature, iss, aud, exp, iat, nonce). */
async function redeem(h: Harness, started: Started, config = h.rp) {
  expect(started.outcome.callback, `no answer to the client: ${started.outcome.errorPage?.html.slice(0, 300)}`).toBeDefined();
  return client.authorizationCodeGrant(config, started.outcome.callback!, { pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce, idTokenExpected: true });
}

async function signedIn(h: Harness, mode: Mode, extra: Record<string, string | undefined> = {}) {
  const b = browserless(h.server);
  const first = await authorize(h, mode, extra, { b });
  const tokens = await redeem(h, first);
  return { b, tokens, claims: tokens.claims()! };
}

const errorOf = (outcome: Outcome) => outcome.params?.get('error');
const expectNoRedirect = (outcome: Outcome, status = 400) => {
  expect(outcome.callback, 'the client must not be sent anywhere').toBeUndefined();
  expect(outcome.errorPage?.status).toBe(status);
  expect(outcome.errorPage?.html).toContain('Sign-in cannot continue');
};
const form = (h: Harness, path: string, body: Record<string, string>, auth?: { id: string; secret: string }) =>
  fetch(`${h.server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(auth ? { authorization: `Basic ${Buffer.from(`${auth.id}:${auth.secret}`).toString('base64')}` } : {}) }, body: new URLSearchParams(body) });

async function register(h: Harness, metadata: Record<string, unknown>) {
  const iat = await expectApi(h.server, h.server.managementToken, 'POST', '/initial-access-tokens', { expires_in: 600 }, 201);
  const response = await fetch(`${h.server.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${iat.token}` }, body: JSON.stringify(metadata) });
  return { status: response.status, body: await response.json() as Record<string, any> };
}
async function registeredRp(h: Harness, metadata: Record<string, unknown> = {}) {
  const { status, body } = await register(h, { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid profile email offline_access', ...metadata });
  expect(status, JSON.stringify(body)).toBe(201);
  const config = new client.Configuration(h.rp.serverMetadata(), body.client_id, body, client.ClientSecretBasic(body.client_secret));
  client.allowInsecureRequests(config);
  return { body, config };
}

type ModuleTest = (h: Harness, mode: Mode) => Promise<void>;

const MODULE_TESTS: Record<string, ModuleTest> = {
  async 'oidcc-server'(h, mode) {
    const started = await authorize(h, mode);
    expect(started.outcome.params?.get('iss'), 'RFC 9207 iss').toBe(h.server.url);
    const tokens = await redeem(h, started);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: h.server.url, aud: RP.id, nonce: started.nonce });
    expect(typeof claims.sub).toBe('string');
    expect(claims.exp).toBeGreaterThan(claims.iat);
    expect(tokens.token_type).toBe('bearer');
  },
  async 'oidcc-server-client-secret-post'(h, mode) {
    expect(h.discovery.token_endpoint_auth_methods_supported).toContain('client_secret_post');
    const started = await authorize(h, mode, {}, { config: h.rpPost });
    const tokens = await redeem(h, started, h.rpPost);
    expect(tokens.claims()!.aud).toBe(RP_POST.id);
  },
  async 'oidcc-response-type-missing'(h, mode) {
    // Built by hand: openid-client always adds response_type=code.
    const query = new URLSearchParams({ client_id: RP.id, redirect_uri: REDIRECT, scope: 'openid', state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...(mode === 'form_post' ? { response_mode: 'form_post' } : {}) });
    const outcome = await drive(h, browserless(h.server), `/auth?${query}`);
    // An error, at the redirect URI or on a page; never a code.
    expect(outcome.params?.get('code') ?? null).toBeNull();
    if (outcome.callback) expect(errorOf(outcome)).toMatch(/^(invalid_request|unsupported_response_type)$/);
    else expect(outcome.errorPage?.status).toBe(400);
  },
  async 'oidcc-idtoken-signature'(h, mode) {
    const { tokens } = await signedIn(h, mode);
    const header = decodeProtectedHeader(tokens.id_token!);
    expect(h.discovery.id_token_signing_alg_values_supported).toContain(header.alg);
    const jwks = await (await fetch(h.discovery.jwks_uri)).json() as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(h.discovery.jwks_uri)), { issuer: h.server.url, audience: RP.id });
  },
  async 'oidcc-idtoken-unsigned'(h) {
    expect(h.discovery.id_token_signing_alg_values_supported).not.toContain('none');
    const { status, body } = await register(h, { redirect_uris: [REDIRECT], id_token_signed_response_alg: 'none' });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_client_metadata');
  },
  async 'oidcc-userinfo-get'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode);
    const response = await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await response.json()).sub).toBe(claims.sub);
    expect((await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub)).sub).toBe(claims.sub);
  },
  async 'oidcc-userinfo-post-header'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode);
    const response = await fetch(h.discovery.userinfo_endpoint, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(response.status).toBe(200);
    expect((await response.json()).sub).toBe(claims.sub);
  },
  async 'oidcc-userinfo-post-body'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode);
    const response = await form(h, '/me', { access_token: tokens.access_token });
    expect(response.status).toBe(200);
    expect((await response.json()).sub).toBe(claims.sub);
  },
  async 'oidcc-ensure-request-without-nonce-succeeds-for-code-flow'(h, mode) {
    const started = await authorize(h, mode, { nonce: undefined });
    const tokens = await redeem(h, started);
    expect(tokens.claims()!.nonce).toBeUndefined();
  },
  async 'oidcc-scope-profile'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode, { scope: 'openid profile' });
    const userinfo = await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ name: ALICE.name, preferred_username: ALICE.username });
    expect(userinfo.email).toBeUndefined();
  },
  async 'oidcc-scope-email'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode, { scope: 'openid email' });
    const userinfo = await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub);
    expect(userinfo.email).toBe(ALICE.email);
    expect(userinfo.name).toBeUndefined();
  },
  async 'oidcc-scope-all'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode, { scope: 'openid profile email address phone' });
    const userinfo = await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ name: ALICE.name, email: ALICE.email });
    expect(userinfo.address).toBeUndefined();
    expect(userinfo.phone_number).toBeUndefined();
  },
  async 'oidcc-ensure-other-scope-order-succeeds'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode, { scope: 'email openid' });
    expect((await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub)).email).toBe(ALICE.email);
  },
  async 'oidcc-display-page'(h, mode) {
    await signedIn(h, mode, { display: 'page' });
  },
  async 'oidcc-display-popup'(h, mode) {
    await signedIn(h, mode, { display: 'popup' });
  },
  async 'oidcc-prompt-login'(h, mode) {
    // max_age only so that the first ID token carries auth_time to compare with.
    const { b, claims } = await signedIn(h, mode, { max_age: '3600' });
    await sleep(1100);
    const again = await authorize(h, mode, { prompt: 'login' }, { b });
    expect(again.outcome.pages).toContain('login');
    const second = (await redeem(h, again)).claims()!;
    expect(second.sub).toBe(claims.sub);
    expect(second.auth_time).toBeGreaterThan(claims.auth_time as number);
  },
  async 'oidcc-prompt-none-not-logged-in'(h, mode) {
    const started = await authorize(h, mode, { prompt: 'none' });
    expect(started.outcome.pages).toEqual([]);
    expect(errorOf(started.outcome)).toBe('login_required');
    expect(started.outcome.params?.get('state')).toBe(started.state);
  },
  async 'oidcc-prompt-none-logged-in'(h, mode) {
    const { b, claims } = await signedIn(h, mode);
    const again = await authorize(h, mode, { prompt: 'none' }, { b });
    expect(again.outcome.pages).toEqual([]);
    expect((await redeem(h, again)).claims()!.sub).toBe(claims.sub);
  },
  async 'oidcc-max-age-1'(h, mode) {
    const { b, claims } = await signedIn(h, mode, { max_age: '3600' });
    // auth_time is in whole seconds: more than one whole second must lie between.
    await sleep(2100);
    const again = await authorize(h, mode, { max_age: '1' }, { b });
    expect(again.outcome.pages).toContain('login');
    const second = (await redeem(h, again)).claims()!;
    expect(second.auth_time).toBeGreaterThan(claims.auth_time as number);
  },
  async 'oidcc-max-age-10000'(h, mode) {
    const { b } = await signedIn(h, mode);
    const again = await authorize(h, mode, { max_age: '10000' }, { b });
    expect(again.outcome.pages).toEqual([]);
    expect(typeof (await redeem(h, again)).claims()!.auth_time).toBe('number');
  },
  async 'oidcc-ensure-request-with-unknown-parameter-succeeds'(h, mode) {
    await signedIn(h, mode, { extra_parameter_not_understood: 'value' });
  },
  async 'oidcc-id-token-hint'(h, mode) {
    const { b, tokens, claims } = await signedIn(h, mode);
    const again = await authorize(h, mode, { prompt: 'none', id_token_hint: tokens.id_token! }, { b });
    expect(again.outcome.pages).toEqual([]);
    expect((await redeem(h, again)).claims()!.sub).toBe(claims.sub);
  },
  async 'oidcc-login-hint'(h, mode) {
    const b = browserless(h.server);
    const query = new URLSearchParams({ client_id: RP.id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', login_hint: ALICE.username, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...(mode === 'form_post' ? { response_mode: 'form_post' } : {}) });
    const page = await b.follow(`/auth?${query}`);
    expect(page.html).toContain(`value="${ALICE.username}"`);
    await signedIn(h, mode, { login_hint: ALICE.username });
  },
  async 'oidcc-ui-locales'(h, mode) {
    await signedIn(h, mode, { ui_locales: 'se' });
  },
  async 'oidcc-claims-locales'(h, mode) {
    await signedIn(h, mode, { claims_locales: 'se' });
  },
  async 'oidcc-ensure-request-with-acr-values-succeeds'(h, mode) {
    await signedIn(h, mode, { acr_values: '1 2' });
  },
  async 'oidcc-codereuse'(h, mode) {
    const started = await authorize(h, mode);
    await redeem(h, started);
    const code = started.outcome.params!.get('code')!;
    const again = await form(h, '/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: started.verifier }, RP);
    expect(again.status).toBe(400);
    expect((await again.json()).error).toBe('invalid_grant');
  },
  async 'oidcc-codereuse-30seconds'(h, mode) {
    // The engine revokes what the code gave as soon as it is presented again; the module's 30 s
    // wait is not waited here, as nothing in that revocation depends on it.
    const started = await authorize(h, mode);
    const tokens = await redeem(h, started);
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200);
    const again = await form(h, '/token', { grant_type: 'authorization_code', code: started.outcome.params!.get('code')!, redirect_uri: REDIRECT, code_verifier: started.verifier }, RP);
    expect((await again.json()).error).toBe('invalid_grant');
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
  },
  async 'oidcc-ensure-registered-redirect-uri'(h, mode) {
    const { outcome } = await authorize(h, mode, { redirect_uri: 'https://attacker.test/cb' });
    expectNoRedirect(outcome);
  },
  async 'oidcc-ensure-post-request-succeeds'(h, mode) {
    // In a real browser: the relying party's page, on another site, POSTs the request as a form.
    // Signed in once, the browser's next POSTed request (prompt=none: no page may be shown)
    // comes back with a code: single sign-on holds for a POSTed request.
    const browser = await h.browser;
    if (!browser) throw new Error(`Chromium is needed at ${CHROMIUM}`);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const request = async (extra: Record<string, string> = {}) => {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const params = { client_id: RP.id, redirect_uri: `${h.rpOrigin}/cb`, response_type: 'code', scope: 'openid', state, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...(mode === 'form_post' ? { response_mode: 'form_post' } : {}), ...extra };
        return { verifier, state, start: `${h.rpOrigin}/start?${new URLSearchParams({ ...params, to: `${h.server.url}/auth` })}` };
      };
      const landed = async (start: string, signIn: boolean) => {
        await page.goto(start);
        const callback = page.waitForRequest((r) => r.url().startsWith(`${h.rpOrigin}/cb`));
        await page.getByRole('button', { name: 'Continue to sign-in' }).click();
        if (signIn) {
          await page.getByLabel('Username').fill(ALICE.username);
          await page.getByLabel('Password').fill(ALICE.password);
          await page.getByRole('button', { name: 'Sign in' }).click();
          // Consent is asked unless this user allowed this client before (an earlier module).
          const allow = page.getByRole('button', { name: 'Allow' });
          await Promise.race([callback, allow.click({ timeout: 10_000 }).catch(() => undefined)]);
        }
        const arrived = await callback;
        await page.waitForURL(`${h.rpOrigin}/cb**`);
        return new URLSearchParams(arrived.method() === 'POST' ? arrived.postData() ?? '' : new URL(arrived.url()).search);
      };
      const first = await request();
      const signedInParams = await landed(first.start, true);
      expect(signedInParams.get('code')).toBeTruthy();
      expect(signedInParams.get('state')).toBe(first.state);
      const second = await request({ prompt: 'none' });
      const again = await landed(second.start, false);
      expect(again.get('error')).toBeNull();
      expect(again.get('state')).toBe(second.state);
      const token = await form(h, '/token', { grant_type: 'authorization_code', code: again.get('code')!, redirect_uri: `${h.rpOrigin}/cb`, code_verifier: second.verifier }, RP);
      expect(token.status).toBe(200);
    } finally {
      await context.close();
    }
  },
  async 'oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported'(h, mode) {
    expect(h.discovery.request_uri_parameter_supported).toBe(false);
    const { outcome } = await authorize(h, mode, { request_uri: 'https://rp.test/request.jwt' });
    expect(outcome.params?.get('code') ?? null).toBeNull();
    expect(errorOf(outcome) ?? outcome.errorPage?.html).toMatch(/invalid_request_uri|request_uri_not_supported/);
  },
  async 'oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported'(h, mode) {
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ client_id: RP.id, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid' })).toString('base64url')}.`;
    const { outcome } = await authorize(h, mode, { request: unsigned });
    expect(outcome.params?.get('code') ?? null).toBeNull();
    if (h.discovery.request_parameter_supported) expect(errorOf(outcome)).toBeTruthy();
    else expect(errorOf(outcome) ?? outcome.errorPage?.html).toMatch(/request_not_supported/);
  },
  async 'oidcc-claims-essential'(h, mode) {
    expect(h.discovery.claims_parameter_supported).toBe(true);
    const { tokens, claims } = await signedIn(h, mode, { claims: JSON.stringify({ userinfo: { name: { essential: true } }, id_token: { email: { essential: true } } }) });
    expect((await client.fetchUserInfo(h.rp, tokens.access_token, claims.sub)).name).toBe(ALICE.name);
    expect(claims.email).toBe(ALICE.email);
    // Never beyond the client's scopes: a client allowed `openid` only gets no name by asking for it.
    const narrow = await registeredRp(h, { scope: 'openid' });
    const started = await authorize(h, mode, { claims: JSON.stringify({ userinfo: { name: { essential: true } }, id_token: { email: { essential: true } } }) }, { config: narrow.config });
    const narrowTokens = await redeem(h, started, narrow.config);
    expect(narrowTokens.claims()!.email).toBeUndefined();
    expect((await client.fetchUserInfo(narrow.config, narrowTokens.access_token, narrowTokens.claims()!.sub)).name).toBeUndefined();
  },
  async 'oidcc-refresh-token'(h, mode) {
    const { tokens, claims } = await signedIn(h, mode, { scope: 'openid offline_access', prompt: 'consent' });
    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await client.refreshTokenGrant(h.rp, tokens.refresh_token!);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    if (refreshed.id_token) expect(refreshed.claims()!.sub).toBe(claims.sub);
  },
  async 'oidcc-ensure-request-with-valid-pkce-succeeds'(h, mode) {
    const started = await authorize(h, mode);
    const wrong = await form(h, '/token', { grant_type: 'authorization_code', code: started.outcome.params!.get('code')!, redirect_uri: REDIRECT, code_verifier: client.randomPKCECodeVerifier() }, RP);
    expect((await wrong.json()).error).toBe('invalid_grant');
    const fresh = await authorize(h, mode);
    await redeem(h, fresh);
  },
  async 'tessera-pkce-required'(h, mode) {
    // Tessera's documented behaviour: no PKCE, no code (organization policy's default) ...
    const refused = await authorize(h, mode, { code_challenge: undefined, code_challenge_method: undefined });
    expect(errorOf(refused.outcome)).toBe('invalid_request');
    expect(refused.outcome.params?.get('error_description')).toMatch(/PKCE/);
    // ... and a confidential client goes without when the organization turns the requirement off.
    await expectApi(h.server, h.server.managementToken, 'PATCH', '/organization', { policy: { pkce_required_for_confidential_clients: false } }, 200);
    try {
      const b = browserless(h.server);
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(h.rp, { redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state, ...(mode === 'form_post' ? { response_mode: 'form_post' } : {}) });
      const outcome = await drive(h, b, url.href);
      await client.authorizationCodeGrant(h.rp, outcome.callback!, { expectedState: state, idTokenExpected: true });
    } finally {
      await expectApi(h.server, h.server.managementToken, 'PATCH', '/organization', { policy: { pkce_required_for_confidential_clients: true } }, 200);
    }
  },
  async 'oidcc-discovery-endpoint-verification'(h) {
    const d = h.discovery;
    expect(d.issuer).toBe(h.server.url);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'registration_endpoint']) expect(d[key], key).toMatch(new RegExp(`^${h.server.url}/`));
    expect(d.scopes_supported).toContain('openid');
    expect(d.response_types_supported).toContain('code');
    expect(d.subject_types_supported).toEqual(['public']);
    expect(d.id_token_signing_alg_values_supported).toContain('RS256');
    expect(d.claims_parameter_supported).toBe(true);
    expect(d.claims_supported).toEqual(expect.arrayContaining(['sub', 'iss', 'name', 'preferred_username', 'email', 'org_id']));
    expect(d.request_parameter_supported ?? false).toBe(false);
    expect(d.request_uri_parameter_supported).toBe(false);
    const jwks = await (await fetch(d.jwks_uri)).json() as { keys: Record<string, string>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) {
      expect(key.d, 'no private part').toBeUndefined();
      expect(key.kid).toBeTruthy();
    }
    // Endpoints are https in production: the issuer is the operator's https URL (docs/operations.md);
    // this test server's issuer is http on a loopback address, which is why the check is the issuer's.
    expect(d.authorization_endpoint.startsWith(d.issuer)).toBe(true);
  },
  async 'oidcc-idtoken-rs256'(h, mode) {
    const { config } = await registeredRp(h, { id_token_signed_response_alg: 'RS256' });
    const tokens = await redeem(h, await authorize(h, mode, {}, { config }), config);
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256');
  },
  async 'oidcc-userinfo-rs256'(h, mode) {
    const { config } = await registeredRp(h, { userinfo_signed_response_alg: 'RS256' });
    const tokens = await redeem(h, await authorize(h, mode, {}, { config }), config);
    const response = await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(response.headers.get('content-type')).toMatch(/^application\/jwt/);
    const jwt = await response.text();
    expect(decodeProtectedHeader(jwt).alg).toBe('RS256');
    const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(h.discovery.jwks_uri)), { issuer: h.server.url, audience: config.clientMetadata().client_id });
    expect(payload.sub).toBe(tokens.claims()!.sub);
  },
  async 'oidcc-ensure-redirect-uri-in-authorization-request'(h, mode) {
    // The client has exactly one registered URI: it is still not filled in (OIDC Core §3.1.2.1).
    const { config } = await registeredRp(h);
    const { outcome } = await authorize(h, mode, { redirect_uri: undefined }, { config });
    expectNoRedirect(outcome);
  },
  async 'oidcc-redirect-uri-query-ok'(h, mode) {
    const started = await authorize(h, mode, { redirect_uri: REDIRECT_WITH_QUERY });
    expect(started.outcome.callback?.url.startsWith(mode === 'query' ? `${REDIRECT_WITH_QUERY}&` : REDIRECT_WITH_QUERY)).toBe(true);
    const code = started.outcome.params!.get('code')!;
    const token = await form(h, '/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_WITH_QUERY, code_verifier: started.verifier }, RP);
    expect(token.status).toBe(200);
  },
  async 'oidcc-redirect-uri-query-mismatch'(h, mode) {
    expectNoRedirect((await authorize(h, mode, { redirect_uri: 'https://rp.test/cb?tenant=red' })).outcome);
  },
  async 'oidcc-redirect-uri-query-added'(h, mode) {
    expectNoRedirect((await authorize(h, mode, { redirect_uri: `${REDIRECT}?added=1` })).outcome);
  },
  async 'oidcc-redirect-uri-regfrag'(h) {
    const { status, body } = await register(h, { redirect_uris: [`${REDIRECT}#fragment`] });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_redirect_uri');
  },
  async 'oidcc-registration-logo-uri'(h) {
    const { body } = await registeredRp(h, { logo_uri: 'https://rp.test/logo.png' });
    expect(body.logo_uri).toBe('https://rp.test/logo.png');
  },
  async 'oidcc-registration-policy-uri'(h) {
    const { body } = await registeredRp(h, { policy_uri: 'https://rp.test/policy' });
    expect(body.policy_uri).toBe('https://rp.test/policy');
  },
  async 'oidcc-registration-tos-uri'(h) {
    const { body } = await registeredRp(h, { tos_uri: 'https://rp.test/tos' });
    expect(body.tos_uri).toBe('https://rp.test/tos');
  },
  async 'oidcc-registration-jwks-uri'(h) {
    const { status, body } = await register(h, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `${h.server.url}/jwks` });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_client_metadata');
    expect(body.error_description).toMatch(/jwks_uri/);
  },
  async 'oidcc-server-rotate-keys'(h) {
    expect(h.server.config.keys.publishBeforeSignSeconds).toBeGreaterThan(0);
    const before = (await (await fetch(h.discovery.jwks_uri)).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const { tokens } = await signedIn(h, 'query');
    expect(before).toContain(decodeProtectedHeader(tokens.id_token!).kid);
  },
  async 'oidcc-request-uri-unsigned'(h, mode) {
    await MODULE_TESTS['oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported']!(h, mode);
  },
  async 'oidcc-request-uri-signed-rs256'(h, mode) {
    await MODULE_TESTS['oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported']!(h, mode);
  },
  async 'oidcc-ensure-client-assertion-with-iss-aud-succeeds'(h) {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { status, body } = await register(h, { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] } });
    expect(status, JSON.stringify(body)).toBe(201);
    const config = new client.Configuration(h.rp.serverMetadata(), body.client_id, body, client.PrivateKeyJwt(privateKey));
    client.allowInsecureRequests(config);
    // openid-client's assertion has aud = the issuer identifier.
    await redeem(h, await authorize(h, 'query', {}, { config }), config);
  },
  async 'tessera-registration-needs-initial-access-token'(h) {
    const response = await fetch(`${h.server.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT] }) });
    expect(response.status).toBe(401);
    expect((await response.json()).error).toBe('invalid_token');
  },
  // RFC 7009
  async 'rfc7009-revoke-access-token'(h) {
    const { tokens } = await signedIn(h, 'query');
    await client.tokenRevocation(h.rp, tokens.access_token);
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
  },
  async 'rfc7009-revoke-refresh-token'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    const response = await form(h, '/token/revocation', { token: tokens.refresh_token!, token_type_hint: 'refresh_token' }, RP);
    expect(response.status).toBe(200);
    const refresh = await form(h, '/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, RP);
    expect((await refresh.json()).error).toBe('invalid_grant');
  },
  async 'rfc7009-other-client'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    for (const token of [tokens.access_token, tokens.refresh_token!]) {
      const response = await form(h, '/token/revocation', { token }, RP_POST);
      expect(response.status).toBe(200);
    }
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200);
    expect((await form(h, '/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, RP)).status).toBe(200);
  },
  async 'rfc7009-unknown-token'(h) {
    for (const token of ['not-a-token', 'x'.repeat(43), 'tsr_pat_0000000000000000000000000000000000000000000_000000']) {
      const response = await form(h, '/token/revocation', { token }, RP);
      expect(response.status, token).toBe(200);
    }
  },
  async 'rfc7009-wrong-hint'(h) {
    const { tokens } = await signedIn(h, 'query');
    expect((await form(h, '/token/revocation', { token: tokens.access_token, token_type_hint: 'refresh_token' }, RP)).status).toBe(200);
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
  },
  async 'rfc7009-client-authentication'(h) {
    const { tokens } = await signedIn(h, 'query');
    for (const auth of [undefined, { id: RP.id, secret: 'wrong-secret-0123456789abcdef' }]) {
      const response = await form(h, '/token/revocation', { token: tokens.access_token }, auth);
      expect(response.status).toBe(401);
      expect((await response.json()).error).toBe('invalid_client');
    }
    expect((await fetch(h.discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200);
  },
  async 'rfc7009-method'(h) {
    expect((await fetch(h.discovery.revocation_endpoint)).status).toBe(405);
  },
  // RFC 7662: the relying party's own tokens at its own introspection (refresh tokens), and a
  // resource server's view of access tokens (docs/tokens.md, "Who sees what").
  async 'rfc7662-active-token'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    const answer = await client.tokenIntrospection(h.rp, tokens.refresh_token!);
    expect(answer).toMatchObject({ active: true, client_id: RP.id, iss: h.server.url });
    expect(typeof answer.exp).toBe('number');
    expect(typeof answer.iat).toBe('number');
    expect(typeof answer.sub).toBe('string');
    expect(answer.scope).toContain('openid');
  },
  async 'rfc7662-inactive-token'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    await client.tokenRevocation(h.rp, tokens.refresh_token!);
    for (const token of [tokens.refresh_token!, 'not-a-token']) expect(await (await form(h, '/token/introspection', { token }, RP)).json()).toEqual({ active: false });
  },
  async 'rfc7662-not-for-caller'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    expect(await (await form(h, '/token/introspection', { token: tokens.refresh_token! }, RP_POST)).json()).toEqual({ active: false });
  },
  async 'rfc7662-client-authentication'(h) {
    for (const auth of [undefined, { id: RP.id, secret: 'wrong-secret-0123456789abcdef' }]) {
      const response = await form(h, '/token/introspection', { token: 'x' }, auth);
      // RFC 6749 §5.2 names both: no credentials is invalid_request (400) at the engine, wrong ones invalid_client (401).
      const expected = auth ? { status: 401, error: 'invalid_client' } : { status: 400, error: 'invalid_request' };
      expect(response.status).toBe(expected.status);
      expect((await response.json()).error).toBe(expected.error);
    }
  },
  async 'rfc7662-refresh-token'(h) {
    const { tokens } = await signedIn(h, 'query', { scope: 'openid offline_access', prompt: 'consent' });
    expect((await client.tokenIntrospection(h.rp, tokens.refresh_token!)).active).toBe(true);
    expect(await (await form(h, '/token/introspection', { token: tokens.refresh_token! }, RP_POST)).json()).toEqual({ active: false });
  },
  async 'rfc7662-method'(h) {
    expect((await fetch(h.discovery.introspection_endpoint)).status).toBe(405);
  },
  // RFC 7591 / 7592
  async 'rfc7591-register'(h) {
    const { body } = await registeredRp(h, { client_name: 'Registered RP' });
    expect(body).toMatchObject({ client_name: 'Registered RP', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic' });
    for (const key of ['client_id', 'client_secret', 'registration_access_token', 'registration_client_uri']) expect(typeof body[key], key).toBe('string');
    expect(typeof body.client_id_issued_at).toBe('number');
    expect(body.registration_client_uri).toBe(`${h.server.url}/reg/${body.client_id}`);
  },
  async 'rfc7591-invalid-redirect-uri'(h) {
    const { status, body } = await register(h, { redirect_uris: ['not a url'] });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_redirect_uri');
  },
  async 'rfc7591-invalid-metadata'(h) {
    const { status, body } = await register(h, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'no-such-method' });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_client_metadata');
  },
  async 'rfc7592-read'(h) {
    const { body } = await registeredRp(h);
    const read = await fetch(body.registration_client_uri, { headers: { authorization: `Bearer ${body.registration_access_token}` } });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ client_id: body.client_id, redirect_uris: [REDIRECT] });
    expect((await fetch(body.registration_client_uri)).status).toBe(401);
  },
  async 'rfc7592-update'(h) {
    const { body } = await registeredRp(h);
    const { registration_access_token: rat, registration_client_uri: uri, client_secret_expires_at: _e, client_id_issued_at: _i, ...metadata } = body;
    const updated = await fetch(uri, { method: 'PUT', headers: { authorization: `Bearer ${rat}`, 'content-type': 'application/json' }, body: JSON.stringify({ ...metadata, client_name: 'Renamed' }) });
    expect(updated.status).toBe(200);
    expect((await updated.json()).client_name).toBe('Renamed');
  },
  async 'rfc7592-delete'(h) {
    const { body } = await registeredRp(h);
    const deleted = await fetch(body.registration_client_uri, { method: 'DELETE', headers: { authorization: `Bearer ${body.registration_access_token}` } });
    expect(deleted.status).toBe(204);
    expect((await fetch(body.registration_client_uri, { headers: { authorization: `Bearer ${body.registration_access_token}` } })).status).toBe(401);
    const token = await form(h, '/token', { grant_type: 'client_credentials' }, { id: body.client_id, secret: body.client_secret });
    expect(token.status).toBe(401);
  },
};

/** Which modules run under which plan (a Basic OP module runs again under Form Post with form_post). */
const runs: { plan: PlanId; module: PlanModule }[] = MODULES.flatMap((module) => module.plans.map((plan) => ({ plan, module }))).filter((r) => r.module.disposition.kind !== 'not-applicable');
const results: ConformanceResults = {};
const chromiumPresent = existsSync(CHROMIUM);

describe('conformance to the certification plans', () => {
  let browser: Promise<Browser | undefined> = Promise.resolve(undefined);
  // The relying party's site: a page that POSTs the request it is given as a form, and its redirect URI.
  let rpSite: Server;
  let rpOrigin = '';
  beforeAll(async () => {
    if (!chromiumPresent && process.env.CI) throw new Error(`CI is set but Chromium is missing at ${CHROMIUM}`);
    if (chromiumPresent) browser = chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    rpSite = createServer((req, res) => {
      const target = new URL(req.url ?? '/', 'http://localhost');
      res.writeHead(200, { 'content-type': 'text/html' });
      if (target.pathname !== '/start') return res.end('<!doctype html><title>RP</title><p>Back at the client.</p>');
      const escape = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
      const action = target.searchParams.get('to') ?? '';
      const inputs = [...target.searchParams].filter(([name]) => name !== 'to').map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`).join('');
      res.end(`<!doctype html><title>RP</title><form method="post" action="${escape(action)}">${inputs}<button>Continue to sign-in</button></form>`);
    });
    await new Promise<void>((done) => rpSite.listen(0, done));
    rpOrigin = `http://localhost:${(rpSite.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await (await browser)?.close();
    await new Promise((done) => rpSite?.close(done));
    const everything = Object.keys(results).length === backends.length && !postgresRedisSkipReason && runs.every((r) => backends.every((b) => results[b.name]?.[`${r.plan}/${r.module.id}`]));
    if (!everything) return;
    const page = renderConformance(results);
    if (process.env.TESSERA_WRITE_CONFORMANCE_DOC === '1') writeFileSync(DOC, page);
    else expect(readFileSync(DOC, 'utf8'), 'docs/conformance.md is out of date: run this file with TESSERA_WRITE_CONFORMANCE_DOC=1').toBe(page);
  });

  it('has a test for every module it runs', () => {
    for (const { module } of runs) expect(MODULE_TESTS[module.id], module.id).toBeTypeOf('function');
  });

  for (const backend of backends) {
    describe(`on ${backend.name}`, () => {
      const h = {} as Harness;
      beforeAll(async () => {
        h.server = await startTestServer(backend.name, { overrides: seed(rpOrigin) });
        h.backend = backend.name;
        h.rpOrigin = rpOrigin;
        h.browser = browser;
        await addUser(h.server, { username: ALICE.username, password: ALICE.password, name: ALICE.name, email: ALICE.email });
        h.discovery = await (await fetch(`${h.server.url}/.well-known/openid-configuration`)).json();
        const options = { execute: [client.allowInsecureRequests] };
        h.rp = await client.discovery(new URL(h.server.url), RP.id, RP.secret, client.ClientSecretBasic(RP.secret), options);
        h.rpPost = await client.discovery(new URL(h.server.url), RP_POST.id, RP_POST.secret, client.ClientSecretPost(RP_POST.secret), options);
        results[backend.name] = {};
      }, SERVER_START_TIMEOUT_MS);
      afterAll(async () => {
        await h.server?.stop();
      });

      for (const { plan, module } of runs) {
        const mode: Mode = plan === 'formpost' ? 'form_post' : 'query';
        it(`${PLANS[plan].title.split(' (')[0]}: ${module.id}`, async () => {
          results[backend.name]![`${plan}/${module.id}`] = 'failed';
          await MODULE_TESTS[module.id]!(h, mode);
          results[backend.name]![`${plan}/${module.id}`] = 'passed';
        }, 60_000);
      }
    });
  }
});
