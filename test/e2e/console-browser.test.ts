/**
 * The web console (/console) in a real browser (headless Chromium through playwright-core), on
 * every backend: an owner's whole journey, a member's own tokens, a member refused every
 * administration page, CSRF refused, session expiry back to sign-in, a secret's page that a
 * reload does not submit again, the client and API edit pages, the activity charts, axe-core on
 * every page with zero violations, and no horizontal scrolling at 360 px and 1280 px.
 *
 * Locally, without Chromium at /usr/bin/chromium, the tests are skipped with a message; with CI
 * set they fail instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Clock } from '../../src/clock.js';
import { backends } from '../helpers/backends.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser } from '../helpers/sign-in.js';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'correct horse battery staple';
const SERVER_START_TIMEOUT_MS = 180_000;
const chromiumPresent = existsSync(CHROMIUM);
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

if (!chromiumPresent && !process.env.CI) {
  console.warn(`[browser tests] SKIPPED: Chromium not found at ${CHROMIUM}. Install it (apt-get install chromium) to run the console browser tests; with CI set they fail instead.`);
}

/** Real time plus an offset the test can move: tokens the engine stamps stay current. */
function shiftableClock(): Clock & { shift(ms: number): void } {
  let offset = 0;
  return { now: () => Date.now() + offset, shift: (ms) => void (offset = ms) };
}

describe.skipIf(!chromiumPresent && !process.env.CI)('the web console in a real browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`CI is set but Chromium is missing at ${CHROMIUM}`);
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
      const clock = shiftableClock();
      /** Pages the axe check and the width check visit, gathered as the journeys go. */
      const visited = new Map<string, 'owner' | 'member'>();
      let ownerContext: BrowserContext | undefined;
      let memberContext: BrowserContext | undefined;
      const timings: Record<string, number> = {};

      beforeAll(async () => {
        server = await startTestServer(backend.name, { clock });
        await addUser(server, { username: 'olga', password: PASSWORD, name: 'Olga Owner', role: 'owner' });
        await addUser(server, { username: 'mia', password: PASSWORD, name: 'Mia Member' });
      }, SERVER_START_TIMEOUT_MS);
      afterAll(async () => {
        await ownerContext?.close();
        await memberContext?.close();
        if (Object.keys(timings).length) console.info(`[console timings ${backend.name}] ${JSON.stringify(timings)}`);
        await server?.stop();
      });

      async function newContext(width = 1280): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
        const context = await browser.newContext({ viewport: { width, height: 900 }, locale: 'en-GB' });
        const page = await context.newPage();
        const problems: string[] = [];
        page.on('console', (message) => {
          if (message.type() === 'error' && /Content Security Policy|Refused/i.test(message.text())) problems.push(message.text());
        });
        page.on('pageerror', (error) => problems.push(error.message));
        return { context, page, problems };
      }

      async function go(page: Page, path: string, who: 'owner' | 'member') {
        const started = performance.now();
        const response = await page.goto(`${server.url}${path}`);
        timings[path.split('?')[0]!] = Math.round(performance.now() - started);
        visited.set(path, who);
        return response;
      }

      /** axe-core on the page as it is, and no sideways scrolling at 360 px and 1280 px (for pages that can be opened only once). */
      async function checkHere(page: Page, label: string) {
        for (const width of [360, 1280]) {
          await page.setViewportSize({ width, height: 800 });
          expect(await page.evaluate(() => document.documentElement.scrollWidth), `${label} at ${width}px`).toBeLessThanOrEqual(width);
        }
        await page.evaluate(AXE_SOURCE);
        const result = await page.evaluate(() => (window as any).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } }));
        const violations = (result.violations as { id: string; nodes: { target: string[] }[] }[]).map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        expect(violations, label).toEqual([]);
      }

      async function signIn(page: Page, username: string) {
        await page.goto(`${server.url}/console`);
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await page.getByLabel('Username').fill(username);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('heading', { name: 'My tokens' }).waitFor();
      }

      it('a member creates a PAT, uses it against the Management API, and revokes it', async () => {
        const { context, page, problems } = await newContext();
        memberContext = context;
        await signIn(page, 'mia');
        visited.set('/console/tokens', 'member');
        expect(await page.locator('nav').textContent()).not.toContain('Users');

        await go(page, '/console/tokens/new', 'member');
        await page.getByLabel('Name').fill('laptop script');
        await page.getByLabel('Expires in').selectOption('7');
        await page.getByLabel('tokens:read').check();
        await page.getByRole('button', { name: 'Create token' }).click();
        await page.getByRole('heading', { name: 'Your new token' }).waitFor();
        const secret = await page.getByLabel('Secret of laptop script').inputValue();
        expect(secret).toMatch(/^tsr_pat_/);
        expect(await page.textContent('main')).toContain('only time');
        await checkHere(page, 'the new token page');
        // Post/redirect/get: the secret's page is a GET; reloading it shows the secret is gone
        // and creates nothing.
        expect(new URL(page.url()).pathname).toMatch(/^\/console\/shown\/[\w-]{43}$/);
        const again = await page.reload();
        expect(again!.status()).toBe(410);
        await page.getByRole('heading', { name: 'Already shown' }).waitFor();
        expect(await page.textContent('main')).not.toContain(secret);
        await checkHere(page, 'the already-shown page');
        await page.setViewportSize({ width: 1280, height: 900 });
        const mine = await api(server, server.managementToken, 'GET', '/tokens?kind=pat');
        expect(mine.body.items.filter((t: any) => t.name === 'laptop script')).toHaveLength(1);

        // The PAT works against the Management API, as Mia.
        const listed = await api(server, secret, 'GET', '/tokens');
        expect(listed.status).toBe(200);
        expect(listed.body.items.map((t: any) => t.name)).toContain('laptop script');

        await go(page, '/console/tokens', 'member');
        const row = page.locator('tr', { hasText: 'laptop script' });
        expect(await row.textContent()).toContain('tokens:read');
        await row.getByRole('link', { name: 'Revoke laptop script' }).click();
        await page.getByRole('heading', { name: 'Revoke laptop script?' }).waitFor();
        visited.set(new URL(page.url()).pathname, 'member');
        await page.getByLabel('Reason (optional)').fill('no longer needed');
        await page.getByRole('button', { name: 'Revoke token' }).click();
        await page.getByText('The token was revoked.').waitFor();
        expect((await api(server, secret, 'GET', '/tokens')).status).toBe(401);
        expect(problems).toEqual([]);
      });

      it('an owner adds an API, a client, a service account and a SAT, finds it in the inventory, revokes it and finds that in the audit trail', async () => {
        const { context, page, problems } = await newContext();
        ownerContext = context;
        await signIn(page, 'olga');
        expect(await page.locator('nav').textContent()).toContain('Audit trail');

        await go(page, '/console/apis', 'owner');
        await page.getByLabel('Identifier').fill('https://orders.example.test');
        await page.getByLabel('Name', { exact: true }).fill('Orders');
        await page.getByLabel('Scopes', { exact: true }).fill('orders:read: Read orders\norders:write: Place orders');
        await page.getByRole('button', { name: 'Add API' }).click();
        await page.getByText('The API Orders was added.').waitFor();
        expect(await page.getByLabel('Introspection client secret').inputValue()).toHaveLength(43);

        // An API's scopes are changed on its own page, through PATCH /resource-servers/{id}.
        await go(page, '/console/apis', 'owner');
        await page.getByRole('link', { name: 'Orders' }).click();
        await page.getByRole('heading', { name: 'API Orders' }).waitFor();
        visited.set(new URL(page.url()).pathname, 'owner');
        await page.getByLabel('Scopes', { exact: true }).fill('orders:read: Read orders\norders:write: Place orders\norders:cancel: Cancel orders');
        await page.getByRole('button', { name: 'Save API' }).click();
        await page.getByText('The API was changed.').waitFor();
        expect(await page.getByLabel('Scopes', { exact: true }).inputValue()).toContain('orders:cancel: Cancel orders');

        // A refused form shows the API's errors next to the field.
        await go(page, '/console/clients', 'owner');
        await page.getByRole('button', { name: 'Create client' }).click();
        expect(await page.locator('#f-name-error').textContent()).toBeTruthy();
        expect(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');
        await page.getByLabel('Name', { exact: true }).fill('Order sync');
        await page.getByLabel('Authorization code').uncheck();
        await page.getByLabel('Refresh token').uncheck();
        await page.getByLabel('Client credentials').check();
        await page.getByLabel('Scopes', { exact: true }).fill('orders:read');
        await page.getByLabel('APIs (identifiers)').fill('https://orders.example.test');
        await page.getByRole('button', { name: 'Create client' }).click();
        await page.getByText('The client Order sync was created.').waitFor();
        const clientSecret = await page.getByLabel('Client secret').inputValue();
        expect(clientSecret.length).toBeGreaterThan(20);
        await checkHere(page, 'the new client page');

        // Its grant types and redirect URIs are changed on its own page (PATCH /clients/{id});
        // what the API refuses comes back to the field.
        await go(page, '/console/clients', 'owner');
        await page.getByRole('link', { name: 'Order sync' }).click();
        await page.getByRole('heading', { name: 'Client Order sync' }).waitFor();
        const clientPath = new URL(page.url()).pathname;
        visited.set(clientPath, 'owner');
        await page.getByLabel('Redirect URIs').fill('not a uri');
        await page.getByRole('button', { name: 'Save client' }).click();
        expect(await page.locator('#f-redirect_uris-error').textContent()).toBeTruthy();
        await page.getByLabel('Authorization code').check();
        await page.getByLabel('Redirect URIs').fill('https://sync.example.test/callback');
        await page.getByRole('button', { name: 'Save client' }).click();
        await page.getByText('The client was changed.').waitFor();
        const changed = await api(server, server.managementToken, 'GET', `/clients/${clientPath.split('/').pop()}`);
        expect(changed.body.grant_types).toEqual(expect.arrayContaining(['authorization_code', 'client_credentials']));
        expect(changed.body.redirect_uris).toEqual(['https://sync.example.test/callback']);

        await go(page, '/console/service-accounts', 'owner');
        await page.getByLabel('Name', { exact: true }).fill('deploy-bot');
        await page.getByRole('button', { name: 'Create service account' }).click();
        await page.getByText('The service account was created.').waitFor();
        const accountPath = new URL(page.url()).pathname;
        visited.set(accountPath, 'owner');
        await page.getByRole('link', { name: 'Issue a SAT' }).click();
        visited.set(new URL(page.url()).pathname, 'owner');
        await page.getByLabel('Name', { exact: true }).fill('deploy');
        await page.getByLabel('orders:read').check();
        await page.getByRole('button', { name: 'Create token' }).click();
        await page.getByRole('heading', { name: 'New SAT for deploy-bot' }).waitFor();
        const sat = await page.getByLabel('Secret of deploy').inputValue();
        expect(sat).toMatch(/^tsr_sat_/);

        await go(page, '/console/inventory?kind=sat', 'owner');
        expect(await page.locator('table').textContent()).toContain('deploy');

        await go(page, accountPath, 'owner');
        await page.getByRole('link', { name: 'Revoke deploy' }).click();
        await page.getByLabel('Reason (optional)').fill('leaked');
        await page.getByRole('button', { name: 'Revoke token' }).click();
        await page.getByText('The SAT was revoked.').waitFor();

        // The audit writer batches its events: the revocation lands within moments.
        let trail = '';
        for (let i = 0; i < 20 && !trail.includes('olga revoked SAT deploy: leaked'); i++) {
          if (i > 0) await page.waitForTimeout(250);
          await go(page, '/console/audit?action=token.revoked', 'owner');
          trail = (await page.locator('main').textContent()) ?? '';
        }
        expect(trail).toContain('olga revoked SAT deploy: leaked');
        for (const path of ['/console/users', '/console/clients', '/console/initial-access-tokens', '/console/organization', '/console/lockouts', '/console/audit', '/console/inventory', '/console/activity']) await go(page, path, 'owner');

        // The activity charts: images with a title and a description, their numbers in a table.
        await go(page, '/console/activity', 'owner');
        expect(await page.locator('svg[role=img]').count()).toBe(3);
        expect(await page.locator('svg[role=img] title').first().textContent()).toBe('Tokens issued per day');
        const issuedToday = await page.locator('figure').first().locator('tbody tr').last().locator('td').textContent();
        expect(Number(issuedToday)).toBeGreaterThanOrEqual(2);
        expect(problems).toEqual([]);
      });

      it('refuses a member every administration page with a 403 page', async () => {
        const page = await memberContext!.newPage();
        for (const path of ['/console/users', '/console/service-accounts', '/console/clients', '/console/apis', '/console/initial-access-tokens', '/console/organization', '/console/lockouts', '/console/audit', '/console/activity']) {
          const response = await page.goto(`${server.url}${path}`);
          expect(response!.status(), path).toBe(403);
          expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Not allowed');
        }
        visited.set('/console/users', 'member');
        await page.close();
      });

      it('refuses a form without its CSRF token', async () => {
        const page = await memberContext!.newPage();
        const response = await page.request.post(`${server.url}/console/tokens`, { form: { name: 'forged', expiry: '7', scopes: 'urn:tessera:management tokens:read' }, maxRedirects: 0 });
        expect(response.status()).toBe(403);
        expect(await response.text()).toContain('This form has expired');
        const listed = await api(server, server.managementToken, 'GET', '/tokens?kind=pat');
        expect(listed.body.items.map((t: any) => t.name)).not.toContain('forged');
        await page.close();
      });

      it('passes axe-core on every page, and fits 360 px and 1280 px without scrolling sideways', async () => {
        for (const [path, who] of visited) {
          const page = await (who === 'owner' ? ownerContext! : memberContext!).newPage();
          for (const width of [360, 1280]) {
            await page.setViewportSize({ width, height: 800 });
            await page.goto(`${server.url}${path}`);
            expect(await page.evaluate(() => document.documentElement.scrollWidth), `${path} at ${width}px`).toBeLessThanOrEqual(width);
          }
          await page.evaluate(AXE_SOURCE);
          const result = await page.evaluate(() => (window as any).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } }));
          const violations = (result.violations as { id: string; nodes: { target: string[] }[] }[]).map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
          expect(violations, path).toEqual([]);
          await page.close();
        }
      }, 120_000);

      it('sends a person whose session expired back to sign-in', async () => {
        const page = await memberContext!.newPage();
        await page.goto(`${server.url}/console/tokens`);
        await page.getByRole('heading', { name: 'My tokens' }).waitFor();
        clock.shift((server.config.console.sessionIdleSeconds + 60) * 1000);
        try {
          await page.goto(`${server.url}/console/tokens`);
          await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        } finally {
          clock.shift(0);
        }
        await page.getByLabel('Username').fill('mia');
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('heading', { name: 'My tokens' }).waitFor();
        await page.close();
      });
    });
  }
});
