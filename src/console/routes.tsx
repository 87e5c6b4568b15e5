import Router from '@koa/router';
import type { Context, Middleware } from 'koa';

import type { Csrf } from '../http/csrf.js';
import { FORM_BODY_LIMIT, readFormBody } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { OAuthError } from '../http/oauth-error.js';
import { CacheUnavailableError } from '../storage/cache.js';
import { StorageUnavailableError } from '../storage/database.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import type { Clock } from '../clock.js';
import type { ConsoleBackend, RequestFacts } from './backend.js';
import { SignInRequired } from './backend.js';
import type { ConsoleSession, ConsoleSessions } from './session-store.js';
import { adminPages } from './admin.js';
import { insightPages } from './insight.js';
import type { PageHandler } from './page.js';
import { ConsolePageError, listPage, pageErrorOf } from './page.js';
import { issueToken, tokenActionRoutes, tokenShown } from './token-form.js';
import type { NavItem, Viewer } from './views/ui.js';
import { Bare, ErrorPage, html } from './views/ui.js';
import type { NewTokenValues, TokenOptions, TokenRow } from './views/tokens.js';
import { MyTokensPage, NewTokenPage, ShownAlreadyPage, ShownOncePage } from './views/tokens.js';

/**
 * The web console at /console (docs/console.md): server-rendered pages over the Management API.
 * Each page is one or a few Management API calls made as the signed-in person
 * (src/console/backend.ts); what the API refuses, the page refuses, with the API's own words.
 * Every state change is a POST form with a CSRF token, answered with a redirect or a page.
 */
export interface ConsoleRouteDependencies {
  backend: ConsoleBackend;
  sessions: ConsoleSessions;
  csrf: Csrf;
  logger: Logger;
  clock: Clock;
  /** The organization a sign-in is for, by id or name; undefined when there is no such one. */
  findOrganization(idOrName: string): Promise<{ id: string; name: string } | undefined>;
  /** The one organization of a single-tenant installation, so nobody has to name it. */
  onlyOrganization(): Promise<{ id: string; name: string } | undefined>;
  /** The signed-in person's username, for the header. */
  usernameOf(organizationId: string, userId: string): Promise<string | undefined>;
}

/** The cookie names: `__Host-` over https (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain). */
export const sessionCookie = (secure: boolean) => (secure ? '__Host-tessera.console' : 'tessera.console');
const signInCookie = (secure: boolean) => (secure ? '__Host-tessera.console-sign-in' : 'tessera.console-sign-in');

/** Scripts and styles from this origin only, nothing inline, forms post here only. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** What each section needs of its Management API scope: the navigation shows what the person's token may reach. */
const SECTIONS: { href: string; label: string; scope: string | null }[] = [
  { href: '/console/tokens', label: 'My tokens', scope: null },
  { href: '/console/users', label: 'Users', scope: 'users:read' },
  { href: '/console/service-accounts', label: 'Service accounts', scope: 'service-accounts:read' },
  { href: '/console/clients', label: 'Clients', scope: 'clients:read' },
  { href: '/console/apis', label: 'APIs', scope: 'resource-servers:read' },
  { href: '/console/initial-access-tokens', label: 'Initial access tokens', scope: 'clients:read' },
  { href: '/console/organization', label: 'Organization', scope: 'organization:read' },
  { href: '/console/lockouts', label: 'Sign-in lock-outs', scope: 'users:read' },
  { href: '/console/inventory', label: 'Token inventory', scope: 'tokens:read' },
  { href: '/console/activity', label: 'Activity', scope: 'audit:read' },
  { href: '/console/audit', label: 'Audit trail', scope: 'audit:read' },
];

const safeReturn = (value: string | null | undefined) => (value && /^\/console(\/[\w\-./%?=&]*)?$/.test(value) && !value.includes('//') ? value : '/console/tokens');

export function createConsoleRoutes(deps: ConsoleRouteDependencies): Middleware {
  const { backend, sessions, csrf, logger } = deps;
  const router = new Router({ prefix: '/console' });

  const facts = (ctx: Context): RequestFacts => ({ ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });
  const locale = (ctx: Context) => {
    const first = (ctx.get('accept-language').split(',')[0] ?? '').split(';')[0]!.trim();
    try {
      return first && Intl.DateTimeFormat.supportedLocalesOf([first]).length ? first : 'en';
    } catch {
      return 'en';
    }
  };

  function render(ctx: Context, status: number, page: preact.ComponentChildren) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.set('content-security-policy', CONSOLE_CSP);
    ctx.body = html(page);
  }

  const setCookie = (ctx: Context, name: string, value: string | null, maxAgeSeconds?: number) =>
    ctx.cookies.set(name, value, { httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/', overwrite: true, ...(value && maxAgeSeconds ? { maxAge: maxAgeSeconds * 1000 } : {}) });

  function toSignIn(ctx: Context) {
    const back = ctx.method === 'GET' ? ctx.originalUrl : '/console/tokens';
    ctx.status = 303;
    ctx.redirect(`/console/sign-in?return=${encodeURIComponent(safeReturn(back))}`);
  }

  /** Every failure is a page with its status: never a stack trace. */
  async function guarded(ctx: Context, viewer: Viewer | undefined, work: () => Promise<void>) {
    try {
      await work();
    } catch (error) {
      if (error instanceof SignInRequired) return toSignIn(ctx);
      if (error instanceof ConsolePageError) return render(ctx, error.status, <ErrorPage status={error.status} title={error.title} detail={error.detail} viewer={viewer} />);
      if (error instanceof StorageUnavailableError || error instanceof CacheUnavailableError) {
        logger.warn({ requestId: ctx.state.requestId, err: error }, 'console: dependency unavailable');
        ctx.set('retry-after', '1');
        return render(ctx, 503, <ErrorPage status={503} title="Temporarily unavailable" detail="Tessera could not answer just now. Try again in a moment." />);
      }
      logger.error({ requestId: ctx.state.requestId, err: error }, 'console: unexpected error');
      render(ctx, 500, <ErrorPage status={500} title="Something went wrong" detail="The console could not show this page. Try again later." />);
    }
  }

  async function readForm(ctx: Context): Promise<URLSearchParams> {
    try {
      return await readFormBody(ctx.req as never);
    } catch (error) {
      if (error instanceof OAuthError) {
        throw error.status === 413
          ? new ConsolePageError(413, 'Too much data', `The form sent more than ${FORM_BODY_LIMIT / 1024} KiB.`)
          : new ConsolePageError(400, 'Bad request', 'The form could not be read. Go back and try again.');
      }
      throw error;
    }
  }

  /** A page for a signed-in person: the session, the CSRF check of every POST, the API as them. */
  function signedIn(handler: PageHandler): Middleware {
    return async (ctx) => {
      const sessionId = ctx.cookies.get(sessionCookie(ctx.secure));
      let session: ConsoleSession | undefined;
      let viewer: Viewer | undefined;
      await guarded(ctx, undefined, async () => {
        session = await sessions.get(sessionId);
        if (!session || !sessionId) return toSignIn(ctx);
        const live = session;
        const scopes = new Set(live.scopes);
        const nav: NavItem[] = SECTIONS.filter((s) => s.scope === null || scopes.has(s.scope)).map(({ href, label }) => ({ href, label }));
        viewer = { username: live.username, csrf: csrf.issue(ctx, live.userId), nav, path: ctx.path, locale: locale(ctx) };
        const v = viewer;
        let form: URLSearchParams | undefined;
        if (ctx.method === 'POST') {
          form = await readForm(ctx);
          // A form from another site, or from another person's session, is refused.
          if (!csrf.verify(ctx, live.userId, form.get('csrf') ?? undefined)) throw new ConsolePageError(403, 'This form has expired', 'Reload the page and try again.');
        }
        await sessions.touch(sessionId, live);
        const call = (method: string, path: string, json?: unknown) => backend.call(sessionId, live, method, path, facts(ctx), json);
        await guarded(ctx, v, () =>
          handler({
            koa: ctx,
            session: live,
            viewer: v,
            facts: facts(ctx),
            call,
            async expect(method, path, json, ok = [200, 201, 204]) {
              const answer = await call(method, path, json);
              if (!ok.includes(answer.status)) throw pageErrorOf(answer);
              return answer.body;
            },
            render: (status, page) => render(ctx, status, page),
            form: async () => form ?? new URLSearchParams(),
            redirect(to) {
              ctx.status = 303;
              ctx.redirect(to);
            },
            async showOnce(shown) {
              const id = await sessions.stashShownOnce(sessionId, shown);
              ctx.status = 303;
              ctx.redirect(`/console/shown/${id}`);
            },
            now: () => deps.clock.now(),
          }),
        );
      });
    };
  }

  router.get('/assets/console.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = CONSOLE_CSS;
  });
  router.get('/assets/console.js', (ctx) => {
    ctx.type = 'text/javascript';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = CONSOLE_JS;
  });

  router.get('/', (ctx) => {
    ctx.status = 303;
    ctx.redirect('/console/tokens');
  });

  // Sign-in: which organization, then Tessera's own sign-in page (authorization code + PKCE).
  router.get('/sign-in', (ctx) =>
    guarded(ctx, undefined, async () => {
      const named = typeof ctx.query.organization === 'string' ? ctx.query.organization.trim().slice(0, 200) : '';
      const returnTo = safeReturn(typeof ctx.query.return === 'string' ? ctx.query.return : undefined);
      const organization = named ? await deps.findOrganization(named) : await deps.onlyOrganization();
      if (!organization) {
        const error = named ? 'There is no organization of that name or id.' : undefined;
        return render(ctx, named ? 404 : 200, (
          <Bare title="Sign in to the console">
            <form method="get" action="/console/sign-in" novalidate>
              <input type="hidden" name="return" value={returnTo} />
              <div class={error ? 'field invalid' : 'field'}>
                <label for="organization">Organization</label>
                <p class="hint" id="organization-hint">Its name or id (org_…), as your administrator gave it to you.</p>
                <input type="text" id="organization" name="organization" value={named} required autocomplete="organization" aria-describedby={error ? 'organization-hint organization-error' : 'organization-hint'} aria-invalid={error ? 'true' : undefined} />
                {error && <p class="field-error" id="organization-error">{error}</p>}
              </div>
              <button type="submit" class="primary">Continue</button>
            </form>
          </Bare>
        ));
      }
      const { pendingId, location } = await backend.beginSignIn(organization.id, returnTo);
      setCookie(ctx, signInCookie(ctx.secure), pendingId, 600);
      ctx.status = 303;
      ctx.redirect(location);
    }),
  );

  router.get('/callback', (ctx) =>
    guarded(ctx, undefined, async () => {
      const pending = await sessions.takeSignIn(ctx.cookies.get(signInCookie(ctx.secure)));
      setCookie(ctx, signInCookie(ctx.secure), null);
      // RFC 6749 §10.12: the answer must belong to the sign-in this browser started.
      if (!pending || ctx.query.state !== pending.state) throw new ConsolePageError(400, 'This sign-in has expired', 'Start again from the console.');
      if (typeof ctx.query.error === 'string' || typeof ctx.query.code !== 'string') {
        throw new ConsolePageError(400, 'Sign-in did not finish', 'The sign-in was cancelled or refused. Start again from the console.');
      }
      const done = await backend.finishSignIn(pending, ctx.query.code, facts(ctx));
      if (!done) throw new ConsolePageError(400, 'Sign-in did not finish', 'The sign-in could not be completed. Start again from the console.');
      const username = await deps.usernameOf(done.session.organizationId, done.session.userId);
      if (username) {
        const session = await sessions.get(done.sessionId);
        if (session) await sessions.touch(done.sessionId, { ...session, username });
      }
      setCookie(ctx, sessionCookie(ctx.secure), done.sessionId);
      ctx.status = 303;
      ctx.redirect(safeReturn(pending.returnTo));
    }),
  );

  router.post('/sign-out', signedIn(async (page) => {
    const id = page.koa.cookies.get(sessionCookie(page.koa.secure))!;
    await backend.signOut(id, page.session, page.facts);
    setCookie(page.koa, sessionCookie(page.koa.secure), null);
    page.render(200, (
      <Bare title="Signed out">
        <p>You have signed out of the console.</p>
        <p><a href="/console">Sign in again</a></p>
      </Bare>
    ));
  }));

  // My tokens: the person's own PATs, with their risk from the token inventory.
  router.get('/tokens', signedIn(async (page) => {
    const me = encodeURIComponent(page.session.userId);
    // A page of the person's PATs, and the risk of their live ones (the inventory reads only theirs).
    const [list, inventory] = await Promise.all([
      listPage(page, '/tokens', { kind: 'pat', owner: page.session.userId }),
      page.expect('GET', `/token-inventory?kind=pat&owner=${me}&limit=1000`),
    ]);
    const risk = new Map<string, TokenRow['risk']>((inventory.items as { id: string; risk_score: number; risk_reasons: { detail: string }[] }[]).map((i) => [i.id, { score: i.risk_score, reasons: i.risk_reasons }]));
    const tokens = (list.items as TokenRow[]).map((t) => ({ ...t, risk: risk.get(t.id) }));
    const done = page.koa.query.done;
    const notice = done === 'revoked' ? 'The token was revoked.' : undefined;
    page.render(200, <MyTokensPage viewer={page.viewer} tokens={tokens} notice={notice} next={list.next} cursor={list.cursor} />);
  }));

  const emptyToken: NewTokenValues = { name: '', expiry: '30', expires_on: '', scopes: [] };

  router.get('/tokens/new', signedIn(async (page) => {
    const options = (await page.expect('GET', '/token-options?type=pat')) as TokenOptions;
    page.render(200, <NewTokenPage viewer={page.viewer} options={options} values={emptyToken} errors={{}} action="/console/tokens" title="Create a personal access token" />);
  }));

  router.post('/tokens', signedIn(async (page) => {
    const form = await page.form();
    const result = await issueToken(page, form, { type: 'pat' });
    if (result.ok) return page.showOnce(tokenShown('Your new token', result.body, '/console/tokens'));
    page.render(result.status, <NewTokenPage viewer={page.viewer} options={result.options} values={result.values} errors={result.errors} formError={result.formError} action="/console/tokens" title="Create a personal access token" />);
  }));

  tokenActionRoutes(router, signedIn, '/tokens', 'pat', () => '/console/tokens');

  // A secret made by a POST, shown once by the GET its redirect leads to (post/redirect/get).
  router.get('/shown/:id', signedIn(async (page) => {
    const shown = await sessions.takeShownOnce(page.koa.cookies.get(sessionCookie(page.koa.secure))!, page.koa.params.id);
    page.render(shown ? 200 : 410, shown ? <ShownOncePage viewer={page.viewer} shown={shown} /> : <ShownAlreadyPage viewer={page.viewer} />);
  }));

  router.post('/tokens/:id/revoke', signedIn(async (page) => {
    const reason = ((await page.form()).get('reason') ?? '').trim().slice(0, 200);
    await page.expect('DELETE', `/tokens/${encodeURIComponent(page.koa.params.id!)}${reason ? `?reason=${encodeURIComponent(reason)}` : ''}`);
    page.redirect('/console/tokens?done=revoked');
  }));

  adminPages(router, signedIn);
  insightPages(router, signedIn);

  const routes = router.routes() as unknown as Middleware;
  return async (ctx, next) => {
    if (ctx.path !== '/console' && !ctx.path.startsWith('/console/')) return next();
    await routes(ctx, async () => {
      render(ctx, 404, <ErrorPage status={404} title="Not found" detail="The console has no such page." />);
    });
  };
}

