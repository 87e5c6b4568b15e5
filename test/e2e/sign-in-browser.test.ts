/**
 * The sign-in pages in a real browser (headless Chromium through playwright-core), on every
 * backend: a person opens the authorization URL, signs in, allows access and lands on the
 * client's redirect URI with a code; a wrong password shows the one generic message, and the
 * whole flow works with the keyboard alone. No script runs on these pages, and the
 * Content-Security-Policy (including form-action on the redirect back to the client) holds.
 *
 * Locally, without Chromium at /usr/bin/chromium, the tests are skipped with a message; with CI
 * set they fail instead, so a CI machine without a browser cannot pass silently.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends } from '../helpers/backends.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, SIGN_IN_SEED } from '../helpers/sign-in.js';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'correct horse battery staple';
/** A server on the embedded default compiles PGlite's WASM and initialises its data directory: slow on a busy machine. */
const SERVER_START_TIMEOUT_MS = 180_000;
const chromiumPresent = existsSync(CHROMIUM);

if (!chromiumPresent && !process.env.CI) {
  console.warn(`[browser tests] SKIPPED: Chromium not found at ${CHROMIUM}. Install it (apt-get install chromium) to run the browser sign-in tests; with CI set they fail instead.`);
}

describe.skipIf(!chromiumPresent && !process.env.CI)('sign-in in a real browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`CI is set but Chromium is missing at ${CHROMIUM}: the browser sign-in tests cannot run`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
  });

  for (const backend of backends) {
    describe(`on ${backend.name}`, () => {
      let server: TestServer;
      let rp: client.Configuration;
      // The client application the browser lands on: a real listener, answering every request.
      let app: Server;
      let CALLBACK: string;

      beforeAll(async () => {
        app = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Client</title><p>Back at the client.</p>'));
        await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
        CALLBACK = `http://127.0.0.1:${(app.address() as AddressInfo).port}/callback`;
        server = await startTestServer(backend.name, { overrides: SIGN_IN_SEED });
        await server.tessera.repos.clients.insert({
          client_id: 'browser-app', organization_id: server.bootstrap.organization_id, kind: 'oauth', name: 'Browser App', resource_server_id: null, service_account_id: null,
          metadata: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [CALLBACK], token_endpoint_auth_method: 'none' },
          allowed_scopes: ['openid', 'profile', 'email', 'offline_access'], allowed_resources: [], secret_enc: null, registration: false,
        });
        await addUser(server, { username: 'bea', password: PASSWORD, name: 'Bea Browser' });
        await addUser(server, { username: 'kim', password: PASSWORD, name: 'Kim Keyboard' });
        rp = await client.discovery(new URL(server.url), 'browser-app', undefined, client.None(), { execute: [client.allowInsecureRequests] });
      }, SERVER_START_TIMEOUT_MS);
      afterAll(async () => {
        await server?.stop();
        await new Promise((resolve) => app?.close(resolve));
      });

      async function authorizationUrl() {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const url = client.buildAuthorizationUrl(rp, {
          redirect_uri: CALLBACK,
          scope: 'openid profile email',
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
        });
        return { url, verifier, state };
      }

      /** A page on a phone-sized screen. */
      async function openPage(): Promise<{ page: Page; problems: string[] }> {
        const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
        const page = await context.newPage();
        const problems: string[] = [];
        page.on('console', (message) => {
          // CSP violations and script errors (a missing favicon is not a problem of these pages).
          if (message.type() === 'error' && /Content Security Policy|Refused/i.test(message.text())) problems.push(message.text());
        });
        page.on('pageerror', (error) => problems.push(error.message));
        return { page, problems };
      }

      it('signs in with the form, allows access and lands on the redirect URI with a code', async () => {
        const { page, problems } = await openPage();
        const request = await authorizationUrl();
        await page.goto(request.url.href);
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        expect(await page.textContent('main')).toContain('Browser App');
        // Readable on a phone: nothing wider than the screen.
        expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);

        await page.getByLabel('Username').fill('bea');
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();

        await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
        const consent = await page.textContent('main');
        expect(consent).toContain('Browser App');
        expect(consent).toContain('See your name and username');
        expect(consent).toContain('See your email address');
        await page.getByRole('button', { name: 'Allow' }).click();

        await page.waitForURL((url) => url.href.startsWith(CALLBACK));
        const callback = new URL(page.url());
        expect(callback.searchParams.get('code')).toBeTruthy();
        expect(callback.searchParams.get('state')).toBe(request.state);
        const tokens = await client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state });
        expect((await client.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub)).name).toBe('Bea Browser');
        expect(problems).toEqual([]);
        await page.context().close();
      });

      it('shows the generic wrong-password message, and works with the keyboard alone', async () => {
        const { page, problems } = await openPage();
        const request = await authorizationUrl();
        await page.goto(request.url.href);

        // Focus starts in the username field (autofocus, which the browser applies once the page
        // has rendered: waited for, not raced); Tab moves through the form in reading order.
        await page.waitForFunction(() => document.activeElement?.id === 'username', undefined, { timeout: 10_000 }).catch(() => {});
        expect(await page.evaluate(() => document.activeElement?.id)).toBe('username');
        await page.keyboard.type('kim');
        await page.keyboard.press('Tab');
        expect(await page.evaluate(() => document.activeElement?.id)).toBe('password');
        await page.keyboard.type('not my password');
        await page.keyboard.press('Enter');
        await page.waitForLoadState();

        const alert = page.getByRole('alert');
        expect(await alert.textContent()).toBe('Incorrect username or password.');
        // The message is tied to the fields, and focus waits in the password field.
        expect(await page.getAttribute('#password', 'aria-describedby')).toContain('form-error');
        expect(await page.getAttribute('#password', 'aria-invalid')).toBe('true');
        expect(await page.inputValue('#username')).toBe('kim');
        expect(await page.evaluate(() => document.activeElement?.id)).toBe('password');
        const focusOrder: string[] = [];
        for (let i = 0; i < 2; i++) {
          await page.keyboard.press('Tab');
          focusOrder.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ''));
        }
        expect(focusOrder).toEqual(['Sign in', 'Cancel']);

        await page.focus('#password');
        await page.keyboard.type(PASSWORD);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
        // Tab to "Allow" and press it.
        let focused = '';
        for (let i = 0; i < 5 && focused !== 'Allow'; i++) {
          await page.keyboard.press('Tab');
          focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
        }
        expect(focused).toBe('Allow');
        await page.keyboard.press('Enter');
        await page.waitForURL((url) => url.href.startsWith(CALLBACK));
        expect(new URL(page.url()).searchParams.get('code')).toBeTruthy();
        expect(problems).toEqual([]);
        await page.context().close();
      });
    });
  }
});
