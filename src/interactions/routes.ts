import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';

import type { AuditEvent, AuditLog } from '../audit/audit-event.js';
import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import type { LoginThrottle } from '../domain/login-throttle.js';
import { hashPassword, verifyPassword } from '../domain/passwords.js';
import { MANAGEMENT_AUDIENCE } from '../domain/types.js';
import { FORM_BODY_LIMIT, readFormBody } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { OAuthError } from '../http/oauth-error.js';
import type { TesseraMetrics } from '../metrics/metrics.js';
import { allowedOidcClaims, allowedOidcScopes } from '../oidc/sign-in-config.js';
import { CacheUnavailableError } from '../storage/cache.js';
import type { ConsentRepository } from '../storage/consent-repository.js';
import { StorageUnavailableError } from '../storage/database.js';
import type { ResourceServerRepository } from '../storage/resource-server-repository.js';
import type { UserRepository } from '../storage/user-repository.js';
import type { Csrf } from '../http/csrf.js';
import type { ConsentItem } from './views.js';
import { consentPage, contentSecurityPolicy, formTargetOf, loginPage, messagePage, STYLESHEET, STYLESHEET_PATH } from './views.js';

/**
 * The login and consent pages at /interaction/:uid (oidc-provider "User flows"): the engine sends
 * the browser here whenever a prompt must be answered, and Tessera hands the answer back with
 * `interactionResult`, which sends the browser on to resume the authorization request.
 *
 * Who may sign in: users of the organization the client belongs to (`tessera_organization_id`),
 * so the page needs no organization picker and a user can never sign in to another tenant's
 * application. Usernames are unique per organization.
 */
export const MAX_USERNAME_LENGTH = 256;
/** A long passphrase fits; a megabyte "password" cannot make scrypt burn memory and time. */
export const MAX_PASSWORD_LENGTH = 1024;

/** The one message for every wrong username or password (no user enumeration). */
export const WRONG_CREDENTIALS = 'Incorrect username or password.';

export interface InteractionRouteDependencies {
  getProvider: () => Provider;
  clients: ClientDirectory;
  users: UserRepository;
  resourceServers: ResourceServerRepository;
  consents: ConsentRepository;
  throttle: LoginThrottle;
  csrf: Csrf;
  logger: Logger;
  audit: AuditLog;
  /** Counts sign-in outcomes for /metrics (optional). */
  metrics?: Pick<TesseraMetrics, 'login'>;
}

/** An error shown as a page (never a redirect: the request may not be trusted to say where). */
class PageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const expired = () => new PageError(400, 'This sign-in has expired', 'Go back to the application and sign in again.');

/** OpenID scopes in words (OpenID Connect Core §5.4). */
const OIDC_SCOPE_WORDS: Record<string, ConsentItem> = {
  openid: { title: 'Know who you are', description: 'Your account identifier and organization.' },
  profile: { title: 'See your name and username' },
  email: { title: 'See your email address' },
  offline_access: { title: 'Stay connected', description: 'Keep access while you are away, until you sign out or withdraw it.' },
};

/** Sign-in audit actions as the `outcome` label of tessera_logins_total. */
const LOGIN_OUTCOMES: Record<string, 'success' | 'failure' | 'locked_out' | undefined> = {
  'login.succeeded': 'success',
  'login.failed': 'failure',
  'login.locked_out': 'locked_out',
};

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export function createInteractionRoutes(deps: InteractionRouteDependencies): Middleware {
  const { clients, users, throttle, csrf, logger, audit } = deps;
  // docs/design.md, "Every use leaves a trace": sign-ins, failures, lock-outs and consent decisions are audit events.
  const record = (ctx: Context, event: Omit<AuditEvent, 'requestId' | 'ip' | 'userAgent'>) => {
    const outcome = LOGIN_OUTCOMES[event.action];
    if (outcome) deps.metrics?.login(outcome, event.organizationId);
    audit.record({ ...event, requestId: ctx.state.requestId as string | undefined, ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });
  };
  const router = new Router();
  // Wrong usernames cost the same scrypt work as wrong passwords, so timing tells nothing.
  let decoyHash: Promise<string> | undefined;
  const decoy = () => (decoyHash ??= hashPassword(`decoy-${Math.random()}`));

  function render(ctx: Context, status: number, html: string, formTargets: (string | undefined)[] = []) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.set('content-security-policy', contentSecurityPolicy(formTargets.filter((t): t is string => Boolean(t))));
    ctx.body = html;
  }

  async function interaction(ctx: Context): Promise<{ details: Details; client: ClientView }> {
    let details: Details;
    try {
      details = await deps.getProvider().interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      if (error instanceof errors.SessionNotFound) throw expired();
      throw error;
    }
    // The interaction cookie names the interaction this browser started; the URL must agree.
    if (details.uid !== ctx.params.uid) throw expired();
    const client = await clients.get(String(details.params.client_id));
    if (!client) throw expired();
    return { details, client };
  }

  async function form(ctx: Context, uid: string): Promise<URLSearchParams> {
    let params: URLSearchParams;
    try {
      params = await readFormBody(ctx.req as never);
    } catch (error) {
      if (error instanceof OAuthError) {
        throw error.status === 413
          ? new PageError(413, 'Too much data', `The form sent more than ${FORM_BODY_LIMIT / 1024} KiB. Go back and try again.`)
          : new PageError(400, 'Bad request', 'The form could not be read. Go back and try again.');
      }
      throw error;
    }
    for (const [name] of params) {
      if (params.getAll(name).length > 1) throw new PageError(400, 'Bad request', 'The form could not be read. Go back and try again.');
    }
    // A form from another site, or from an earlier sign-in, is refused.
    if (!csrf.verify(ctx, uid, params.get('csrf') ?? undefined)) {
      throw new PageError(403, 'This form has expired', 'Go back to the application and sign in again.');
    }
    return params;
  }

  /**
   * Hands the answer to the engine. Consent keeps the sign-in submitted just before it in the
   * same authorization request: without it, a request with `prompt=login consent` would find its
   * login missing once consent is given and ask for the password again, forever.
   */
  async function finish(ctx: Context, result: InteractionResults, mergeWithLastSubmission = false) {
    const to = await deps.getProvider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission });
    ctx.set('cache-control', 'no-store');
    ctx.status = 303;
    ctx.redirect(to);
  }

  /** Turns every failure into a page: a wrong or expired request is 4xx, never a 500. */
  async function guarded(ctx: Context, handler: () => Promise<void>) {
    try {
      await handler();
    } catch (error) {
      if (error instanceof PageError) {
        render(ctx, error.status, messagePage(error.title, error.detail));
        return;
      }
      if (error instanceof StorageUnavailableError || error instanceof CacheUnavailableError) {
        logger.warn({ requestId: ctx.state.requestId, err: error }, 'sign-in: dependency unavailable');
        ctx.set('retry-after', '1');
        render(ctx, 503, messagePage('Temporarily unavailable', 'Sign-in is temporarily unavailable. Try again in a moment.'));
        return;
      }
      if (error instanceof errors.OIDCProviderError && error.status < 500) {
        logger.info({ requestId: ctx.state.requestId, error: error.error, detail: error.error_description }, 'sign-in: refused');
        render(ctx, error.status, messagePage('This sign-in cannot continue', 'Go back to the application and sign in again.'));
        return;
      }
      logger.error({ requestId: ctx.state.requestId, err: error }, 'sign-in: unexpected error');
      render(ctx, 500, messagePage('Something went wrong', 'Sign-in failed. Try again later.'));
    }
  }

  const clientName = (client: ClientView) => client.record.name ?? client.record.client_id;
  const redirectTarget = (details: Details) => formTargetOf(typeof details.params.redirect_uri === 'string' ? details.params.redirect_uri : undefined);

  async function consentItems(details: Details, client: ClientView): Promise<{ identity: ConsentItem[]; apis: { name: string; items: ConsentItem[] }[] }> {
    const prompt = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    const allowed = allowedOidcScopes(client.metadata as { tessera_scopes?: string[] });
    const identity = (prompt.missingOIDCScope ?? []).filter((s) => allowed.has(s)).map((s) => OIDC_SCOPE_WORDS[s] ?? { title: s });
    const allowedClaims = allowedOidcClaims(client.metadata as { tessera_scopes?: string[] });
    const claims = (prompt.missingOIDCClaims ?? []).filter((claim) => allowedClaims.has(claim));
    if (claims.length) identity.push({ title: 'See these details about you', description: claims.join(', ') });
    const apis: { name: string; items: ConsentItem[] }[] = [];
    for (const [indicator, scopes] of Object.entries(prompt.missingResourceScopes ?? {})) {
      if (indicator === MANAGEMENT_AUDIENCE) {
        apis.push({ name: 'Tessera Management API', items: scopes.map((s) => ({ title: s })) });
        continue;
      }
      const rs = await deps.resourceServers.findByIdentifier(indicator);
      const described = new Map((rs?.scopes ?? []).map((s) => [s.name, s.description]));
      apis.push({
        name: rs?.name ?? indicator,
        // In words where the API describes the scope, with the scope's name beneath for the curious.
        items: scopes.map((s) => (described.get(s) ? { title: described.get(s)!, description: s } : { title: s })),
      });
    }
    if (identity.length === 0 && apis.length === 0) identity.push({ title: 'Use your account with this application' });
    return { identity, apis };
  }

  /** Grants what the consent prompt asks for, remembers it, and hands the answer to the engine. */
  async function allow(ctx: Context, details: Details, client: ClientView) {
    const accountId = details.session?.accountId;
    if (!accountId) throw expired();

    const provider = deps.getProvider();
    const clientId = client.record.client_id;
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    grant ??= new provider.Grant({ accountId, clientId, client: await provider.Client.find(clientId) } as ConstructorParameters<typeof provider.Grant>[0]);

    const prompt = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    const allowed = allowedOidcScopes(client.metadata as { tessera_scopes?: string[] });
    const granted = (prompt.missingOIDCScope ?? []).filter((s) => allowed.has(s));
    // Scopes the client may not have are refused outright, so the engine does not ask again.
    const refused = (prompt.missingOIDCScope ?? []).filter((s) => !allowed.has(s));
    if (granted.length) grant.addOIDCScope(granted.join(' '));
    if (refused.length) grant.rejectOIDCScope(refused.join(' '));
    // Claims asked for through the `claims` parameter: only those the client's scopes reach.
    const allowedClaims = allowedOidcClaims(client.metadata as { tessera_scopes?: string[] });
    const grantedClaims = (prompt.missingOIDCClaims ?? []).filter((claim) => allowedClaims.has(claim));
    const refusedClaims = (prompt.missingOIDCClaims ?? []).filter((claim) => !allowedClaims.has(claim));
    if (grantedClaims.length) grant.addOIDCClaims(grantedClaims);
    if (refusedClaims.length) grant.rejectOIDCClaims(refusedClaims);
    for (const [indicator, scopes] of Object.entries(prompt.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    await deps.consents.remember(accountId, clientId, client.record.organization_id, {
      oidc_scopes: granted,
      oidc_claims: grantedClaims,
      resource_scopes: prompt.missingResourceScopes ?? {},
    });
    logger.info({ requestId: ctx.state.requestId, userId: accountId, clientId }, 'sign-in: consent granted');
    record(ctx, {
      organizationId: client.record.organization_id, actor: { type: 'user', id: accountId }, action: 'consent.granted', target: { type: 'client', id: clientId }, outcome: 'success',
      details: { scopes: granted, refused, resources: prompt.missingResourceScopes ?? {} },
    });
    await finish(ctx, { consent: { grantId } }, true);
  }

  router.get(STYLESHEET_PATH, (ctx) => {
    ctx.type = 'text/css';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = STYLESHEET;
  });

  router.get('/interaction/:uid', (ctx) =>
    guarded(ctx, async () => {
      const { details, client } = await interaction(ctx);
      const token = csrf.issue(ctx, details.uid);
      if (details.prompt.name === 'login') {
        const hint = typeof details.params.login_hint === 'string' && details.params.login_hint.length <= MAX_USERNAME_LENGTH ? details.params.login_hint : undefined;
        render(ctx, 200, loginPage({ uid: details.uid, clientName: clientName(client), csrf: token, username: hint }), [redirectTarget(details)]);
        return;
      }
      if (details.prompt.name === 'consent') {
        // The console (src/domain/console-client.ts) is Tessera's own first-party application:
        // the person is signing in to Tessera itself, and the token it gets carries no more than
        // their role allows, so there is nothing to ask. Every other client asks.
        if (client.record.kind === 'console') {
          await allow(ctx, details, client);
          return;
        }
        const user = details.session?.accountId ? await users.findById(details.session.accountId) : undefined;
        if (!user) throw expired();
        const items = await consentItems(details, client);
        render(ctx, 200, consentPage({ uid: details.uid, clientName: clientName(client), username: user.username, csrf: token, ...items }), [redirectTarget(details)]);
        return;
      }
      throw expired();
    }),
  );

  router.post('/interaction/:uid/login', (ctx) =>
    guarded(ctx, async () => {
      const { details, client } = await interaction(ctx);
      if (details.prompt.name !== 'login') throw expired();
      const params = await form(ctx, details.uid);
      const username = (params.get('username') ?? '').normalize('NFKC').trim();
      const password = params.get('password') ?? '';
      const organizationId = client.record.organization_id;
      const again = (status: number, view: { formError?: string; fieldErrors?: { username?: string; password?: string } }) =>
        render(ctx, status, loginPage({ uid: details.uid, clientName: clientName(client), csrf: csrf.issue(ctx, details.uid), username: username.slice(0, MAX_USERNAME_LENGTH), ...view }), [redirectTarget(details)]);

      const fieldErrors: { username?: string; password?: string } = {};
      if (!username) fieldErrors.username = 'Enter your username.';
      else if (username.length > MAX_USERNAME_LENGTH) fieldErrors.username = `A username has at most ${MAX_USERNAME_LENGTH} characters.`;
      if (!password) fieldErrors.password = 'Enter your password.';
      else if (password.length > MAX_PASSWORD_LENGTH) fieldErrors.password = `A password has at most ${MAX_PASSWORD_LENGTH} characters.`;
      if (fieldErrors.username || fieldErrors.password) return again(400, { fieldErrors });

      const lockedMessage = (seconds: number) => {
        ctx.set('retry-after', String(seconds));
        return `Too many failed sign-in attempts. Try again in ${Math.ceil(seconds / 60)} minute${seconds > 60 ? 's' : ''}.`;
      };
      const before = await throttle.check(organizationId, username, ctx.ip);
      if (before.locked) {
        record(ctx, { organizationId, actor: { type: 'anonymous', id: null, name: username.slice(0, 64) }, action: 'login.failed', target: { type: 'client', id: client.record.client_id }, outcome: 'failure', details: { reason: 'locked_out' } });
        return again(429, { formError: lockedMessage(before.retryAfterSeconds) });
      }

      const user = await users.findByUsername(organizationId, username);
      const valid = await verifyPassword(password, user?.password_hash ?? (await decoy()));
      if (!user || !user.password_hash || !valid) {
        const after = await throttle.recordFailure(organizationId, username, ctx.ip);
        logger.info({ requestId: ctx.state.requestId, organizationId, userId: user?.id, locked: after.locked }, 'sign-in: wrong credentials');
        const actor = { type: user ? ('user' as const) : ('anonymous' as const), id: user?.id ?? null, name: username.slice(0, 64) };
        record(ctx, { organizationId, actor, action: 'login.failed', target: { type: 'client', id: client.record.client_id }, outcome: 'failure', details: { reason: 'wrong_credentials' } });
        if (after.locked) {
          logger.warn({ requestId: ctx.state.requestId, organizationId, userId: user?.id }, 'sign-in: locked out after repeated failures');
          record(ctx, { organizationId, actor, action: 'login.locked_out', target: { type: 'user', id: user?.id ?? username.slice(0, 64) }, outcome: 'failure', details: { retry_after_seconds: after.retryAfterSeconds } });
          return again(429, { formError: lockedMessage(after.retryAfterSeconds) });
        }
        return again(401, { formError: WRONG_CREDENTIALS });
      }
      // Only someone who knows the password learns that the account is deactivated.
      if (user.status !== 'active') {
        record(ctx, { organizationId, actor: { type: 'user', id: user.id, name: user.username }, action: 'login.failed', target: { type: 'client', id: client.record.client_id }, outcome: 'failure', details: { reason: 'deactivated' } });
        return again(403, { formError: 'This account is deactivated. Ask your administrator.' });
      }
      await throttle.recordSuccess(organizationId, username);
      logger.info({ requestId: ctx.state.requestId, organizationId, userId: user.id, clientId: client.record.client_id }, 'sign-in: success');
      record(ctx, { organizationId, actor: { type: 'user', id: user.id, name: user.username }, action: 'login.succeeded', target: { type: 'client', id: client.record.client_id }, outcome: 'success', details: { amr: ['pwd'] } });
      await finish(ctx, { login: { accountId: user.id, amr: ['pwd'], remember: true } });
    }),
  );

  router.post('/interaction/:uid/confirm', (ctx) =>
    guarded(ctx, async () => {
      const { details, client } = await interaction(ctx);
      if (details.prompt.name !== 'consent') throw expired();
      const params = await form(ctx, details.uid);
      const decision = params.get('decision');
      if (decision === 'deny') {
        record(ctx, { organizationId: client.record.organization_id, actor: { type: 'user', id: details.session?.accountId ?? null }, action: 'consent.denied', target: { type: 'client', id: client.record.client_id }, outcome: 'success' });
        await finish(ctx, { error: 'access_denied', error_description: 'the user denied the request' });
        return;
      }
      if (decision !== 'allow') throw new PageError(400, 'Bad request', 'Choose Allow or Deny.');
      await allow(ctx, details, client);
    }),
  );

  router.post('/interaction/:uid/abort', (ctx) =>
    guarded(ctx, async () => {
      const { details } = await interaction(ctx);
      await form(ctx, details.uid);
      await finish(ctx, { error: 'access_denied', error_description: 'the user cancelled the sign-in' });
    }),
  );

  return router.routes() as unknown as Middleware;
}
