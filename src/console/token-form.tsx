import type Router from '@koa/router';
import type { Middleware } from 'koa';

import type { PageContext, PageHandler } from './page.js';
import { fieldErrorsOf, pageErrorOf } from './page.js';
import type { FieldErrors } from './views/ui.js';
import type { NewTokenValues, TokenOptions, TokenRow } from './views/tokens.js';
import type { ShownOnce } from './session-store.js';
import { ConfirmTokenPage } from './views/tokens.js';

/**
 * Issues a PAT or SAT from the token form: presets or a date become `expires_in`, checked scopes
 * ("<api> <scope>") become resources and scopes; the Management API decides the rest and its
 * problem+json `errors` come back to their fields.
 */
export async function issueToken(page: PageContext, form: URLSearchParams, target: { type: 'pat' } | { type: 'sat'; serviceAccountId: string }) {
  const values: NewTokenValues = {
    name: (form.get('name') ?? '').slice(0, 200),
    expiry: form.get('expiry') ?? '30',
    expires_on: (form.get('expires_on') ?? '').slice(0, 10),
    scopes: form.getAll('scopes').slice(0, 500),
  };
  const options = (await page.expect('GET', `/token-options?type=${target.type}`)) as TokenOptions;
  const errors: FieldErrors = {};
  let expiresIn: number | undefined;
  const now = page.now();
  if (values.expiry === 'date') {
    const day = /^\d{4}-\d{2}-\d{2}$/.test(values.expires_on) ? Date.parse(`${values.expires_on}T23:59:59Z`) : Number.NaN;
    if (Number.isNaN(day)) errors.expires_on = 'Enter the expiry date as a date, for example 2030-01-31.';
    else if (day <= now) errors.expires_on = 'The expiry date must be in the future.';
    else expiresIn = Math.floor((day - now) / 1000);
  } else if (/^\d{1,5}$/.test(values.expiry)) {
    expiresIn = Number(values.expiry) * 86400;
  } else {
    errors.expiry = 'Choose when the token expires.';
  }
  if (!values.name.trim()) errors.name = 'Enter a name.';
  if (values.scopes.length === 0) errors.scopes = 'Choose at least one scope.';
  if (Object.keys(errors).length > 0) return { ok: false as const, status: 422, options, values, errors, formError: undefined };

  const resources = [...new Set(values.scopes.map((s) => s.split(' ')[0]!))];
  const scopes = [...new Set(values.scopes.map((s) => s.split(' ').slice(1).join(' ')))];
  const answer = await page.call('POST', '/tokens', {
    type: target.type,
    ...(target.type === 'sat' ? { service_account_id: target.serviceAccountId } : {}),
    name: values.name.trim(),
    scopes,
    resources,
    expires_in: expiresIn,
  });
  if (answer.status === 201) return { ok: true as const, body: answer.body };
  if (answer.status === 422 || answer.status === 400 || answer.status === 409) {
    const fieldErrors = fieldErrorsOf(answer);
    // The lifetime belongs to whichever expiry control was used.
    if (fieldErrors.expires_in) fieldErrors[values.expiry === 'date' ? 'expires_on' : 'expiry'] = fieldErrors.expires_in;
    delete fieldErrors.expires_in;
    return { ok: false as const, status: answer.status, options, values, errors: fieldErrors, formError: undefined };
  }
  if (answer.status === 403) {
    return { ok: false as const, status: 403, options, values, errors: {}, formError: `Not allowed: ${answer.body?.detail ?? 'your role does not allow this token'}` };
  }
  throw pageErrorOf(answer);
}

/** A new PAT or SAT secret as its page shows it once. */
export const tokenShown = (title: string, token: { name: string; token: string; expires_at: string }, back: string, grace?: string | null): ShownOnce => ({
  title,
  secrets: [{ label: `Secret of ${token.name}`, value: token.token }],
  expiresAt: token.expires_at,
  bearer: true,
  grace,
  back,
});

/**
 * The confirmation pages of rotating and revoking a PAT or SAT under `base`, and the rotation
 * itself (new secret shown once, with the grace of the old one). `back` says where the person
 * returns to once done.
 */
export function tokenActionRoutes(router: Router, signedIn: (handler: PageHandler) => Middleware, path: string, type: 'pat' | 'sat', back: (token: { owner: { id: string } }) => string): void {
  const base = `/console${path}`;
  for (const action of ['rotate', 'revoke'] as const) {
    router.get(`${path}/:id/${action}`, signedIn(async (page) => {
      const token = (await page.expect('GET', `/tokens/${encodeURIComponent(page.koa.params.id!)}`)) as TokenRow;
      const options = action === 'rotate' ? ((await page.expect('GET', `/token-options?type=${type}`)) as TokenOptions) : undefined;
      page.render(200, <ConfirmTokenPage viewer={page.viewer} token={token} action={action} base={base} graceSeconds={options?.rotation_grace_seconds} />);
    }));
  }
  router.post(`${path}/:id/rotate`, signedIn(async (page) => {
    const rotated = await page.expect('POST', `/tokens/${encodeURIComponent(page.koa.params.id!)}/rotate`, {});
    await page.showOnce(tokenShown(`New secret for ${rotated.name}`, rotated, back(rotated), rotated.previous_secret_expires_at));
  }));
}
