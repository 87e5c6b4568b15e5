import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { ComponentChildren } from 'preact';

import type { PageContext, PageHandler } from './page.js';
import type { ShownOnce } from './session-store.js';
import { fieldErrorsOf, listPage, pageErrorOf } from './page.js';
import { issueToken, tokenActionRoutes, tokenShown } from './token-form.js';
import type { TokenOptions, TokenRow } from './views/tokens.js';
import { NewTokenPage, tokenColumns } from './views/tokens.js';
import type { FieldErrors } from './views/ui.js';
import { Checkboxes, Csrf, ErrorSummary, Layout, Pager, SelectField, Table, TextArea, TextField, Time } from './views/ui.js';

/**
 * The administration pages: users, service accounts and their SATs, clients, APIs, initial
 * access tokens, organization policy and sign-in lock-outs. Each is the Management API's
 * resource, as the signed-in person may see and change it: a member's token lacks the scopes,
 * so the API answers 403 and the page says so.
 */
type SignedIn = (handler: PageHandler) => Middleware;

const enc = encodeURIComponent;
const lines = (text: string | null) => (text ?? '').split(/[\r\n,]+/).map((l) => l.trim()).filter(Boolean);
const words = (text: string | null) => (text ?? '').split(/\s+/).map((l) => l.trim()).filter(Boolean);

/** Sends a form's change; a refused change comes back as field errors, anything else as a page. */
async function submit(page: PageContext, method: string, path: string, body: unknown): Promise<{ ok: true; body: any } | { ok: false; status: number; errors: FieldErrors; formError?: string }> {
  const answer = await page.call(method, path, body);
  if (answer.status >= 200 && answer.status < 300) return { ok: true, body: answer.body };
  if ([400, 409, 422].includes(answer.status)) return { ok: false, status: answer.status, errors: fieldErrorsOf(answer), formError: answer.body?.detail };
  if (answer.status === 403) return { ok: false, status: 403, errors: {}, formError: `Not allowed: ${answer.body?.detail ?? 'your role does not allow this'}` };
  throw pageErrorOf(answer);
}

function Notice(props: { text?: string }) {
  return props.text ? <p class="notice" role="status">{props.text}</p> : null;
}

function ActionButton(props: { csrf: string; action: string; label: string; danger?: boolean; name?: string; value?: string }) {
  return (
    <form method="post" action={props.action} class="inline">
      <Csrf value={props.csrf} />
      <button type="submit" class={props.danger ? 'danger' : 'secondary'} name={props.name} value={props.value}>{props.label}</button>
    </form>
  );
}

const ROLES = [
  { value: 'member', label: 'Member: their own tokens' },
  { value: 'admin', label: 'Admin: everything but organization settings' },
  { value: 'owner', label: 'Owner: everything' },
];

/** The form of an edit page: its errors summarised first, the fields, save and cancel. */
function ChangeForm(props: { action: string; csrf: string; form?: { errors: FieldErrors; formError?: string }; save: string; cancel: string; children: ComponentChildren }) {
  return (
    <>
      <h2>Change</h2>
      <ErrorSummary errors={props.form?.errors ?? {}} formError={props.form?.formError} />
      <form method="post" action={props.action} novalidate>
        <Csrf value={props.csrf} />
        {props.children}
        <div class="actions">
          <button type="submit" class="primary">{props.save}</button>
          <a class="button secondary" href={props.cancel}>Cancel</a>
        </div>
      </form>
    </>
  );
}

/** The fields an API has when added and when changed: name, scopes, token format, lifetime, sensitivity. */
function ApiFields(props: { values: Record<string, string>; errors: FieldErrors }) {
  const { values, errors } = props;
  return (
    <>
      <TextField name="name" label="Name" value={values.name} error={errors.name} />
      <TextArea name="scopes" label="Scopes" hint="One per line: name, then optionally a colon and a description people read at consent." value={values.scopes} error={errors.scopes} />
      <SelectField name="token_format" label="Access token format" value={values.token_format} error={errors.token_format} options={[{ value: 'jwt', label: 'JWT (validated by the API itself)' }, { value: 'opaque', label: 'Opaque (introspected)' }]} />
      <TextField name="access_token_ttl" type="number" label="Access token lifetime (seconds)" hint="30 to 86400." value={values.access_token_ttl} error={errors.access_token_ttl} />
      <Checkboxes name="sensitive" legend="Sensitivity" options={[{ value: 'yes', label: 'Sensitive: only admins and owners may hand out its scopes' }]} checked={values.sensitive ? ['yes'] : []} error={errors.sensitive} />
    </>
  );
}

const apiValues = (f: URLSearchParams) => ({ name: f.get('name') ?? '', scopes: f.get('scopes') ?? '', token_format: f.get('token_format') ?? 'jwt', access_token_ttl: f.get('access_token_ttl') ?? '600', sensitive: f.get('sensitive') ?? '' });

/** The API's fields as the Management API takes them; what it refuses comes back to its field. */
function apiBody(values: ReturnType<typeof apiValues>) {
  // One scope a line; a scope name may hold a colon (orders:read), so its description follows ": ".
  const scopes = values.scopes.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).map((line) => {
    const split = line.indexOf(': ');
    return split > 0 ? { name: line.slice(0, split).trim(), description: line.slice(split + 2).trim() } : line;
  });
  const ttl = Number(values.access_token_ttl);
  return {
    ...(values.name ? { name: values.name } : {}),
    scopes,
    token_format: values.token_format,
    access_token_ttl: Number.isFinite(ttl) ? ttl : values.access_token_ttl,
    sensitive: values.sensitive === 'yes',
  };
}

/** The fields a client has when created and when changed: name, grant types, redirect URIs, scopes, APIs. */
function ClientFields(props: { values: Record<string, string | string[]>; errors: FieldErrors; children?: ComponentChildren }) {
  const { values, errors } = props;
  const v = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : '');
  return (
    <>
      <TextField name="name" label="Name" value={v('name')} error={errors.name} required />
      {props.children}
      <Checkboxes name="grant_types" legend="Grant types" error={errors.grant_types} checked={(values.grant_types as string[]) ?? []} options={[
        { value: 'authorization_code', label: 'Authorization code', description: 'People sign in through the application.' },
        { value: 'refresh_token', label: 'Refresh token' },
        { value: 'client_credentials', label: 'Client credentials', description: 'The application acts for itself (confidential only).' },
      ]} />
      <TextArea name="redirect_uris" label="Redirect URIs" hint="One per line; https, or http on a loopback address." value={v('redirect_uris')} error={errors.redirect_uris} />
      <TextField name="scopes" label="Scopes" hint="Separated by spaces, for example openid profile orders:read." value={v('scopes')} error={errors.scopes} />
      <TextField name="resources" label="APIs (identifiers)" hint="Separated by spaces: the APIs whose scopes it may ask for." value={v('resources')} error={errors.resources} />
    </>
  );
}

const clientValues = (f: URLSearchParams) => ({ name: f.get('name') ?? '', grant_types: f.getAll('grant_types'), redirect_uris: f.get('redirect_uris') ?? '', scopes: f.get('scopes') ?? '', resources: f.get('resources') ?? '' });
const clientBody = (values: ReturnType<typeof clientValues>) => ({ name: values.name, grant_types: values.grant_types, redirect_uris: lines(values.redirect_uris), scopes: words(values.scopes), resources: words(values.resources) });

/** New introspection credentials of an API as their page shows them once. */
const introspectionShown = (notice: string, clientId: string, secret: string, grace?: string | null): ShownOnce => ({
  title: 'Introspection credentials',
  notice,
  facts: [{ label: 'Introspection client id', value: clientId }],
  secrets: [{ label: 'Introspection client secret', value: secret }],
  grace,
  back: '/console/apis',
});

/** A new client, or its new secret, as the page shows it once (a public client has none). */
const clientShown = (notice: string, clientId: string, secret: string | undefined, grace?: string | null): ShownOnce => ({
  title: 'Client credentials',
  notice,
  facts: [{ label: 'Client id', value: clientId }],
  secrets: secret ? [{ label: 'Client secret', value: secret }] : [],
  grace,
  back: '/console/clients',
});

export function adminPages(router: Router, signedIn: SignedIn): void {
  // ---------------------------------------------------------------- users
  async function usersPage(page: PageContext, status = 200, form?: { values: Record<string, string>; errors: FieldErrors; formError?: string }) {
    const list = await listPage(page, '/users');
    const values = form?.values ?? { role: 'member' };
    page.render(status, (
      <Layout title="Users" viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'changed' ? 'The user was changed.' : page.koa.query.done === 'created' ? 'The user was created.' : undefined} />
        <Table caption="Users of the organization" rows={list.items as any[]} empty="No users." columns={[
          { label: 'Username', cell: (u) => <a href={`/console/users/${enc(u.id)}`}>{u.username}</a> },
          { label: 'Name', cell: (u) => u.name ?? '' },
          { label: 'Role', cell: (u) => u.role },
          { label: 'Status', cell: (u) => u.status },
          { label: 'Created', cell: (u) => <Time iso={u.created_at} locale={page.viewer.locale} /> },
        ]} />
        <Pager path="/console/users" label="users" next={list.next} cursor={list.cursor} />
        <h2>Create a user</h2>
        <ErrorSummary errors={form?.errors ?? {}} formError={form?.formError} />
        <form method="post" action="/console/users" novalidate>
          <Csrf value={page.viewer.csrf} />
          <TextField name="username" label="Username" value={values.username} error={form?.errors.username} required />
          <TextField name="name" label="Full name (optional)" value={values.name} error={form?.errors.name} />
          <TextField name="email" type="email" label="Email (optional)" value={values.email} error={form?.errors.email} />
          <SelectField name="role" label="Role" value={values.role} error={form?.errors.role} options={ROLES} />
          <TextField name="password" type="password" label="Password (optional)" hint="At least 12 characters. Leave empty and Tessera makes one, shown once." error={form?.errors.password} autocomplete="new-password" />
          <button type="submit" class="primary">Create user</button>
        </form>
      </Layout>
    ));
  }
  router.get('/users', signedIn((page) => usersPage(page)));
  router.post('/users', signedIn(async (page) => {
    const f = await page.form();
    const values = { username: f.get('username') ?? '', name: f.get('name') ?? '', email: f.get('email') ?? '', role: f.get('role') ?? 'member' };
    const password = f.get('password') ?? '';
    const result = await submit(page, 'POST', '/users', { username: values.username, role: values.role, ...(values.name ? { name: values.name } : {}), ...(values.email ? { email: values.email } : {}), ...(password ? { password } : {}) });
    if (!result.ok) return usersPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    if (!result.body.password) return page.redirect('/console/users?done=created');
    await page.showOnce({ title: `New user ${result.body.username}`, notice: `User ${result.body.username} was created.`, secrets: [{ label: `Password of ${result.body.username}`, value: result.body.password }], back: '/console/users' });
  }));

  async function userPage(page: PageContext, status = 200, errors: FieldErrors = {}, formError?: string) {
    const user = await page.expect('GET', `/users/${enc(page.koa.params.id!)}`);
    const base = `/console/users/${enc(user.id)}`;
    page.render(status, (
      <Layout title={`User ${user.username}`} viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'password' ? 'The password was set.' : page.koa.query.done === 'changed' ? 'The user was changed.' : undefined} />
        <ErrorSummary errors={errors} formError={formError} />
        <dl class="facts">
          <dt>Name</dt><dd>{user.name ?? '—'}</dd>
          <dt>Role</dt><dd>{user.role}</dd>
          <dt>Status</dt><dd>{user.status}</dd>
          <dt>Created</dt><dd><Time iso={user.created_at} locale={page.viewer.locale} /></dd>
        </dl>
        <h2>Role</h2>
        <form method="post" action={`${base}/role`} novalidate>
          <Csrf value={page.viewer.csrf} />
          <SelectField name="role" label="Role" value={user.role} error={errors.role} options={ROLES} />
          <button type="submit" class="primary">Change role</button>
        </form>
        <h2>Status</h2>
        <p>{user.status === 'active' ? 'Deactivating stops every token of this user at once.' : 'This user cannot sign in.'}</p>
        <ActionButton csrf={page.viewer.csrf} action={`${base}/status`} name="status" value={user.status === 'active' ? 'deactivated' : 'active'} label={user.status === 'active' ? 'Deactivate user' : 'Reactivate user'} danger={user.status === 'active'} />
        <h2>Reset password</h2>
        <form method="post" action={`${base}/password`} novalidate>
          <Csrf value={page.viewer.csrf} />
          <TextField name="password" type="password" label="New password" hint="At least 12 characters." error={errors.password} autocomplete="new-password" required />
          <button type="submit" class="primary">Set password</button>
        </form>
      </Layout>
    ));
  }
  router.get('/users/:id', signedIn((page) => userPage(page)));
  for (const [path, field] of [['role', 'role'], ['status', 'status']] as const) {
    router.post(`/users/:id/${path}`, signedIn(async (page) => {
      const value = (await page.form()).get(field) ?? '';
      const result = await submit(page, 'PATCH', `/users/${enc(page.koa.params.id!)}`, { [field]: value });
      if (!result.ok) return userPage(page, result.status, result.errors, result.formError);
      page.redirect(`/console/users/${enc(page.koa.params.id!)}?done=changed`);
    }));
  }
  router.post('/users/:id/password', signedIn(async (page) => {
    const password = (await page.form()).get('password') ?? '';
    const result = await submit(page, 'PUT', `/users/${enc(page.koa.params.id!)}/password`, { password });
    if (!result.ok) return userPage(page, result.status, result.errors, result.formError);
    page.redirect(`/console/users/${enc(page.koa.params.id!)}?done=password`);
  }));

  // ---------------------------------------------------------------- service accounts and SATs
  async function accountsPage(page: PageContext, status = 200, form?: { values: Record<string, string>; errors: FieldErrors; formError?: string }) {
    const list = await listPage(page, '/service-accounts');
    page.render(status, (
      <Layout title="Service accounts" viewer={page.viewer}>
        <p>Service accounts are identities for automation: they own SATs and clients, and disabling one stops them all.</p>
        <Table caption="Service accounts" rows={list.items as any[]} empty="No service accounts." columns={[
          { label: 'Name', cell: (a) => <a href={`/console/service-accounts/${enc(a.id)}`}>{a.name}</a> },
          { label: 'Description', cell: (a) => a.description ?? '' },
          { label: 'Status', cell: (a) => a.status },
          { label: 'Created', cell: (a) => <Time iso={a.created_at} locale={page.viewer.locale} /> },
        ]} />
        <Pager path="/console/service-accounts" label="service accounts" next={list.next} cursor={list.cursor} />
        <h2>Create a service account</h2>
        <ErrorSummary errors={form?.errors ?? {}} formError={form?.formError} />
        <form method="post" action="/console/service-accounts" novalidate>
          <Csrf value={page.viewer.csrf} />
          <TextField name="name" label="Name" value={form?.values.name} error={form?.errors.name} required />
          <TextField name="description" label="Description (optional)" value={form?.values.description} error={form?.errors.description} />
          <button type="submit" class="primary">Create service account</button>
        </form>
      </Layout>
    ));
  }
  router.get('/service-accounts', signedIn((page) => accountsPage(page)));
  router.post('/service-accounts', signedIn(async (page) => {
    const f = await page.form();
    const values = { name: f.get('name') ?? '', description: f.get('description') ?? '' };
    const result = await submit(page, 'POST', '/service-accounts', { name: values.name, ...(values.description ? { description: values.description } : {}) });
    if (!result.ok) return accountsPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    page.redirect(`/console/service-accounts/${enc(result.body.id)}?done=created`);
  }));

  router.get('/service-accounts/:id', signedIn(async (page) => {
    const account = await page.expect('GET', `/service-accounts/${enc(page.koa.params.id!)}`);
    const sats = await listPage(page, '/tokens', { kind: 'sat', owner: account.id });
    const base = `/console/service-accounts/${enc(account.id)}`;
    const done = page.koa.query.done;
    page.render(200, (
      <Layout title={`Service account ${account.name}`} viewer={page.viewer}>
        <Notice text={done === 'created' ? 'The service account was created.' : done === 'revoked' ? 'The SAT was revoked.' : done === 'changed' ? 'The service account was changed.' : undefined} />
        <dl class="facts">
          <dt>Status</dt><dd>{account.status}</dd>
          <dt>Description</dt><dd>{account.description ?? '—'}</dd>
          <dt>Created</dt><dd><Time iso={account.created_at} locale={page.viewer.locale} /></dd>
        </dl>
        <div class="actions">
          <a class="button primary" href={`${base}/tokens/new`}>Issue a SAT</a>
          <ActionButton csrf={page.viewer.csrf} action={`${base}/status`} name="status" value={account.status === 'active' ? 'disabled' : 'active'} label={account.status === 'active' ? 'Disable service account' : 'Enable service account'} danger={account.status === 'active'} />
        </div>
        <Table caption={`Service access tokens of ${account.name}`} rows={sats.items as TokenRow[]} empty="This service account has no SATs." columns={tokenColumns(page.viewer, '/console/sats', false)} />
        <Pager path={base} label={`the SATs of ${account.name}`} next={sats.next} cursor={sats.cursor} />
      </Layout>
    ));
  }));
  router.post('/service-accounts/:id/status', signedIn(async (page) => {
    const status = (await page.form()).get('status') ?? '';
    await page.expect('PATCH', `/service-accounts/${enc(page.koa.params.id!)}`, { status });
    page.redirect(`/console/service-accounts/${enc(page.koa.params.id!)}?done=changed`);
  }));

  async function newSat(page: PageContext, account: { id: string; name: string }, options: TokenOptions, values = { name: '', expiry: '30', expires_on: '', scopes: [] as string[] }, errors: FieldErrors = {}, formError?: string, status = 200) {
    page.render(status, <NewTokenPage viewer={page.viewer} options={options} values={values} errors={errors} formError={formError} action={`/console/service-accounts/${enc(account.id)}/tokens`} title="Issue a service access token" serviceAccount={account} />);
  }
  router.get('/service-accounts/:id/tokens/new', signedIn(async (page) => {
    const account = await page.expect('GET', `/service-accounts/${enc(page.koa.params.id!)}`);
    await newSat(page, account, await page.expect('GET', '/token-options?type=sat'));
  }));
  router.post('/service-accounts/:id/tokens', signedIn(async (page) => {
    const account = await page.expect('GET', `/service-accounts/${enc(page.koa.params.id!)}`);
    const result = await issueToken(page, await page.form(), { type: 'sat', serviceAccountId: account.id });
    if (result.ok) return page.showOnce(tokenShown(`New SAT for ${account.name}`, result.body, `/console/service-accounts/${enc(account.id)}`));
    await newSat(page, account, result.options, result.values, result.errors, result.formError, result.status);
  }));
  tokenActionRoutes(router, signedIn, '/sats', 'sat', (token) => `/console/service-accounts/${enc(token.owner.id)}`);
  router.post('/sats/:id/revoke', signedIn(async (page) => {
    const token = (await page.expect('GET', `/tokens/${enc(page.koa.params.id!)}`)) as TokenRow;
    const reason = ((await page.form()).get('reason') ?? '').trim().slice(0, 200);
    await page.expect('DELETE', `/tokens/${enc(token.id)}${reason ? `?reason=${enc(reason)}` : ''}`);
    page.redirect(`/console/service-accounts/${enc(token.owner.id)}?done=revoked`);
  }));

  // ---------------------------------------------------------------- APIs (resource servers)
  async function apisPage(page: PageContext, status = 200, form?: { values: Record<string, string>; errors: FieldErrors; formError?: string }) {
    const list = await listPage(page, '/resource-servers');
    const values = form?.values ?? { token_format: 'jwt', access_token_ttl: '600' };
    page.render(status, (
      <Layout title="APIs" viewer={page.viewer}>
        <Table caption="APIs (resource servers)" rows={list.items as any[]} empty="No APIs yet." columns={[
          { label: 'Name', cell: (r) => <a href={`/console/apis/${enc(r.id)}`}>{r.name ?? r.identifier}</a> },
          { label: 'Identifier', cell: (r) => <span class="mono">{r.identifier}</span> },
          { label: 'Scopes', cell: (r) => <ul class="reasons">{(r.scopes as { name: string; description?: string }[]).map((s) => <li><span class="mono">{s.name}</span>{s.description ? `: ${s.description}` : ''}</li>)}</ul> },
          { label: 'Tokens', cell: (r) => `${r.token_format}, ${r.access_token_ttl} s${r.sensitive ? ', sensitive' : ''}` },
          { label: 'Introspection', cell: (r) => <><span class="mono">{r.introspection_client_id}</span><ActionButton csrf={page.viewer.csrf} action={`/console/apis/${enc(r.id)}/credentials`} label={`Rotate secret of ${r.name ?? r.identifier}`} /></> },
        ]} />
        <Pager path="/console/apis" label="APIs" next={list.next} cursor={list.cursor} />
        <h2>Add an API</h2>
        <ErrorSummary errors={form?.errors ?? {}} formError={form?.formError} />
        <form method="post" action="/console/apis" novalidate>
          <Csrf value={page.viewer.csrf} />
          <TextField name="identifier" type="url" label="Identifier" hint="A URI, the audience of its tokens; permanent, for example https://api.example.com/orders." value={values.identifier} error={form?.errors.identifier} required />
          <ApiFields values={values} errors={form?.errors ?? {}} />
          <button type="submit" class="primary">Add API</button>
        </form>
      </Layout>
    ));
  }
  router.get('/apis', signedIn((page) => apisPage(page)));
  router.post('/apis', signedIn(async (page) => {
    const f = await page.form();
    const values = { identifier: f.get('identifier') ?? '', ...apiValues(f) };
    const result = await submit(page, 'POST', '/resource-servers', { identifier: values.identifier, ...apiBody(values) });
    if (!result.ok) return apisPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    await page.showOnce(introspectionShown(`The API ${result.body.name ?? result.body.identifier} was added.`, result.body.introspection_client_id, result.body.introspection_client_secret));
  }));
  router.post('/apis/:id/credentials', signedIn(async (page) => {
    const rotated = await page.expect('POST', `/resource-servers/${enc(page.koa.params.id!)}/credentials`, {});
    await page.showOnce(introspectionShown('New introspection credentials.', rotated.introspection_client_id ?? rotated.client_id, rotated.introspection_client_secret, rotated.introspection_previous_secret_expires_at ?? rotated.previous_secret_expires_at));
  }));

  async function apiPage(page: PageContext, status = 200, form?: { values: Record<string, string>; errors: FieldErrors; formError?: string }) {
    const api = await page.expect('GET', `/resource-servers/${enc(page.koa.params.id!)}`);
    const values = form?.values ?? {
      name: api.name ?? '',
      scopes: (api.scopes as { name: string; description?: string | null }[]).map((sc) => (sc.description ? `${sc.name}: ${sc.description}` : sc.name)).join('\n'),
      token_format: api.token_format,
      access_token_ttl: String(api.access_token_ttl),
      sensitive: api.sensitive ? 'yes' : '',
    };
    page.render(status, (
      <Layout title={`API ${api.name ?? api.identifier}`} viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'changed' ? 'The API was changed.' : undefined} />
        <dl class="facts">
          <dt>Identifier</dt><dd class="mono">{api.identifier}</dd>
          <dt>Introspection client id</dt><dd class="mono">{api.introspection_client_id}</dd>
        </dl>
        <ChangeForm action={`/console/apis/${enc(api.id)}`} csrf={page.viewer.csrf} form={form} save="Save API" cancel="/console/apis">
          <ApiFields values={values} errors={form?.errors ?? {}} />
        </ChangeForm>
      </Layout>
    ));
  }
  router.get('/apis/:id', signedIn((page) => apiPage(page)));
  router.post('/apis/:id', signedIn(async (page) => {
    const values = apiValues(await page.form());
    const body = apiBody(values);
    const result = await submit(page, 'PATCH', `/resource-servers/${enc(page.koa.params.id!)}`, { ...body, name: body.name ?? null });
    if (!result.ok) return apiPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    page.redirect(`/console/apis/${enc(page.koa.params.id!)}?done=changed`);
  }));

  // ---------------------------------------------------------------- clients
  async function clientsPage(page: PageContext, status = 200, form?: { values: Record<string, string | string[]>; errors: FieldErrors; formError?: string }) {
    const [list, accounts] = await Promise.all([listPage(page, '/clients'), page.call('GET', '/service-accounts?limit=1000')]);
    const values = form?.values ?? { type: 'confidential', grant_types: ['authorization_code', 'refresh_token'] };
    const v = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : '');
    page.render(status, (
      <Layout title="Clients" viewer={page.viewer}>
        <Table caption="Clients" rows={list.items as any[]} empty="No clients." columns={[
          { label: 'Name', cell: (c) => <><a href={`/console/clients/${enc(c.client_id)}`}>{c.name ?? c.client_id}</a>{c.built_in ? ' (built in)' : ''}</> },
          { label: 'Client id', cell: (c) => <span class="mono">{c.client_id}</span> },
          { label: 'Type', cell: (c) => (c.token_endpoint_auth_method === 'none' ? 'public' : `confidential (${c.token_endpoint_auth_method})`) },
          { label: 'Grants', cell: (c) => (c.grant_types as string[]).join(', ') },
          { label: 'Redirect URIs', cell: (c) => <span class="mono">{(c.redirect_uris as string[]).join(' ')}</span> },
          { label: 'Scopes', cell: (c) => <span class="mono">{(c.scopes as string[]).join(' ')}</span> },
          {
            label: 'Actions',
            cell: (c) => (c.built_in || c.token_endpoint_auth_method === 'none' || c.token_endpoint_auth_method === 'private_key_jwt' ? <span class="muted">—</span> : <ActionButton csrf={page.viewer.csrf} action={`/console/clients/${enc(c.client_id)}/secret`} label={`Rotate secret of ${c.name ?? c.client_id}`} />),
          },
        ]} />
        <Pager path="/console/clients" label="clients" next={list.next} cursor={list.cursor} />
        <h2>Create a client</h2>
        <ErrorSummary errors={form?.errors ?? {}} formError={form?.formError} />
        <form method="post" action="/console/clients" novalidate>
          <Csrf value={page.viewer.csrf} />
          <ClientFields values={values} errors={form?.errors ?? {}}>
            <SelectField name="type" label="Type" value={v('type')} error={form?.errors.token_endpoint_auth_method} options={[{ value: 'confidential', label: 'Confidential: a server that keeps a secret' }, { value: 'public', label: 'Public: a browser or mobile app (PKCE, no secret)' }]} />
          </ClientFields>
          <SelectField name="service_account_id" label="Owned by service account (optional)" value={v('service_account_id')} error={form?.errors.service_account_id}
            options={[{ value: '', label: 'None' }, ...((accounts.status === 200 ? accounts.body.items : []) as { id: string; name: string }[]).map((a) => ({ value: a.id, label: a.name }))]} />
          <button type="submit" class="primary">Create client</button>
        </form>
      </Layout>
    ));
  }
  router.get('/clients', signedIn((page) => clientsPage(page)));
  router.post('/clients', signedIn(async (page) => {
    const f = await page.form();
    const values = { ...clientValues(f), type: f.get('type') ?? 'confidential', service_account_id: f.get('service_account_id') ?? '' };
    const result = await submit(page, 'POST', '/clients', {
      ...clientBody(values),
      token_endpoint_auth_method: values.type === 'public' ? 'none' : 'client_secret_basic',
      ...(values.service_account_id ? { service_account_id: values.service_account_id } : {}),
    });
    if (!result.ok) return clientsPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    await page.showOnce(clientShown(`The client ${result.body.name} was created.`, result.body.client_id, result.body.client_secret));
  }));
  router.post('/clients/:id/secret', signedIn(async (page) => {
    const rotated = await page.expect('POST', `/clients/${enc(page.koa.params.id!)}/secret`, {});
    await page.showOnce(clientShown('A new client secret was made.', rotated.client_id, rotated.client_secret, rotated.previous_secret_expires_at));
  }));

  async function clientPage(page: PageContext, status = 200, form?: { values: Record<string, string | string[]>; errors: FieldErrors; formError?: string }) {
    const client = await page.expect('GET', `/clients/${enc(page.koa.params.id!)}`);
    const values = form?.values ?? {
      name: client.name ?? '',
      grant_types: client.grant_types,
      redirect_uris: (client.redirect_uris as string[]).join('\n'),
      scopes: (client.scopes as string[]).join(' '),
      resources: (client.resources as string[] | undefined ?? []).join(' '),
    };
    page.render(status, (
      <Layout title={`Client ${client.name ?? client.client_id}`} viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'changed' ? 'The client was changed.' : undefined} />
        <dl class="facts">
          <dt>Client id</dt><dd class="mono">{client.client_id}</dd>
          <dt>Type</dt><dd>{client.token_endpoint_auth_method === 'none' ? 'public' : `confidential (${client.token_endpoint_auth_method})`}</dd>
        </dl>
        {client.built_in ? (
          <p>Tessera's own built-in client: it cannot be changed.</p>
        ) : (
          <ChangeForm action={`/console/clients/${enc(client.client_id)}`} csrf={page.viewer.csrf} form={form} save="Save client" cancel="/console/clients">
            <ClientFields values={values} errors={form?.errors ?? {}} />
          </ChangeForm>
        )}
      </Layout>
    ));
  }
  router.get('/clients/:id', signedIn((page) => clientPage(page)));
  router.post('/clients/:id', signedIn(async (page) => {
    const values = clientValues(await page.form());
    const result = await submit(page, 'PATCH', `/clients/${enc(page.koa.params.id!)}`, clientBody(values));
    if (!result.ok) return clientPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    page.redirect(`/console/clients/${enc(page.koa.params.id!)}?done=changed`);
  }));

  // ---------------------------------------------------------------- initial access tokens
  async function iatsPage(page: PageContext, status = 200, form?: { values: Record<string, string>; errors: FieldErrors; formError?: string }) {
    const list = await listPage(page, '/initial-access-tokens');
    const values = form?.values ?? { days: '1' };
    page.render(status, (
      <Layout title="Initial access tokens" viewer={page.viewer}>
        <p>An initial access token lets an application register itself (RFC 7591) with at most its scopes and APIs.</p>
        <Notice text={page.koa.query.done === 'revoked' ? 'The initial access token was revoked.' : undefined} />
        <Table caption="Initial access tokens" rows={list.items as any[]} empty="No initial access tokens." columns={[
          { label: 'Id', cell: (t) => <span class="mono">{t.id}</span> },
          { label: 'Scopes', cell: (t) => <span class="mono">{(t.scopes as string[]).join(' ')}</span> },
          { label: 'APIs', cell: (t) => <span class="mono">{(t.resources as string[]).join(' ')}</span> },
          { label: 'Expires', cell: (t) => <Time iso={t.expires_at} locale={page.viewer.locale} /> },
          { label: 'Uses', cell: (t) => String(t.use_count) },
          { label: 'Actions', cell: (t) => (t.revoked_at ? 'revoked' : <ActionButton csrf={page.viewer.csrf} action={`/console/initial-access-tokens/${enc(t.id)}/revoke`} label={`Revoke ${t.id}`} danger />) },
        ]} />
        <Pager path="/console/initial-access-tokens" label="initial access tokens" next={list.next} cursor={list.cursor} />
        <h2>Issue an initial access token</h2>
        <ErrorSummary errors={form?.errors ?? {}} formError={form?.formError} />
        <form method="post" action="/console/initial-access-tokens" novalidate>
          <Csrf value={page.viewer.csrf} />
          <SelectField name="days" label="Expires in" value={values.days} error={form?.errors.expires_in} options={[{ value: '1', label: '1 day' }, { value: '7', label: '7 days' }, { value: '30', label: '30 days' }]} />
          <TextField name="scopes" label="Scopes" hint="Separated by spaces." value={values.scopes} error={form?.errors.scopes} />
          <TextField name="resources" label="APIs (identifiers)" hint="Separated by spaces." value={values.resources} error={form?.errors.resources} />
          <button type="submit" class="primary">Issue token</button>
        </form>
      </Layout>
    ));
  }
  router.get('/initial-access-tokens', signedIn((page) => iatsPage(page)));
  router.post('/initial-access-tokens', signedIn(async (page) => {
    const f = await page.form();
    const values = { days: f.get('days') ?? '1', scopes: f.get('scopes') ?? '', resources: f.get('resources') ?? '' };
    const result = await submit(page, 'POST', '/initial-access-tokens', { expires_in: Number(values.days) * 86400, scopes: words(values.scopes), resources: words(values.resources) });
    if (!result.ok) return iatsPage(page, result.status, { values, errors: result.errors, formError: result.formError });
    await page.showOnce({ title: 'New initial access token', secrets: [{ label: 'Initial access token', value: result.body.token }], expiresAt: result.body.expires_at, back: '/console/initial-access-tokens' });
  }));
  router.post('/initial-access-tokens/:id/revoke', signedIn(async (page) => {
    await page.expect('DELETE', `/initial-access-tokens/${enc(page.koa.params.id!)}`);
    page.redirect('/console/initial-access-tokens?done=revoked');
  }));

  // ---------------------------------------------------------------- organization policy
  const POLICY_FIELDS: { name: string; label: string; hint: string }[] = [
    { name: 'max_pat_lifetime_days', label: 'Longest PAT lifetime (days)', hint: 'The cap of every new personal access token.' },
    { name: 'max_sat_lifetime_days', label: 'Longest SAT lifetime (days)', hint: 'The cap of every new service access token.' },
    { name: 'idle_revocation_days', label: 'Revoke PATs and SATs unused for (days)', hint: 'Idle long-lived tokens are revoked.' },
    { name: 'token_rotation_grace_seconds', label: 'Token rotation grace (seconds)', hint: 'How long a rotated PAT or SAT secret keeps working.' },
    { name: 'client_secret_rotation_grace_seconds', label: 'Client secret rotation grace (seconds)', hint: 'How long a rotated client secret keeps working.' },
  ];
  async function organizationPage(page: PageContext, status = 200, errors: FieldErrors = {}, formError?: string, values?: Record<string, string>) {
    const org = await page.expect('GET', '/organization');
    const policy = (org.policy ?? {}) as Record<string, unknown>;
    page.render(status, (
      <Layout title={`Organization ${org.name}`} viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'changed' ? 'The policy was changed.' : undefined} />
        <dl class="facts">
          <dt>Id</dt><dd class="mono">{org.id}</dd>
          <dt>Command-line client</dt><dd class="mono">{org.cli_client_id}</dd>
        </dl>
        <h2>Policy</h2>
        <ErrorSummary errors={errors} formError={formError} />
        <form method="post" action="/console/organization" novalidate>
          <Csrf value={page.viewer.csrf} />
          {POLICY_FIELDS.map((f) => <TextField name={f.name} type="number" label={f.label} hint={f.hint} value={values?.[f.name] ?? String(policy[f.name] ?? '')} error={errors[f.name] ?? errors[`policy`]} />)}
          <button type="submit" class="primary">Save policy</button>
        </form>
      </Layout>
    ));
  }
  router.get('/organization', signedIn((page) => organizationPage(page)));
  router.post('/organization', signedIn(async (page) => {
    const f = await page.form();
    const values = Object.fromEntries(POLICY_FIELDS.map((p) => [p.name, (f.get(p.name) ?? '').trim()]));
    const policy = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== '').map(([k, v]) => [k, Number.isFinite(Number(v)) ? Number(v) : v]));
    const answer = await page.call('PATCH', '/organization', { policy });
    if (answer.status === 200) return page.redirect('/console/organization?done=changed');
    if ([400, 403, 422].includes(answer.status)) {
      // Policy members come back as policy.<member>: each goes to its own field.
      const errors: FieldErrors = {};
      for (const e of (answer.body?.errors ?? []) as { field?: string; message?: string }[]) errors[String(e.field ?? '').replace(/^policy\./, '')] = String(e.message);
      return organizationPage(page, answer.status, errors, answer.status === 403 ? `Not allowed: ${answer.body?.detail}` : answer.body?.detail, values);
    }
    throw pageErrorOf(answer);
  }));

  // ---------------------------------------------------------------- sign-in lock-outs
  router.get('/lockouts', signedIn(async (page) => {
    const list = await page.expect('GET', '/sign-in-lockouts');
    page.render(200, (
      <Layout title="Sign-in lock-outs" viewer={page.viewer}>
        <Notice text={page.koa.query.done === 'lifted' ? 'The lock-out was lifted.' : undefined} />
        <p>Usernames locked after repeated failed sign-ins. Lifting one lets the person try again at once.</p>
        <Table caption="Locked usernames and addresses" rows={list.items as any[]} empty="Nobody is locked out." columns={[
          { label: 'Locked', cell: (l) => (l.kind === 'user' ? `username ${l.username}` : `address ${l.address}`) },
          { label: 'Failures', cell: (l) => String(l.failures) },
          { label: 'Actions', cell: (l) => (l.kind === 'user' ? <ActionButton csrf={page.viewer.csrf} action={`/console/lockouts/${enc(l.username)}/lift`} label={`Lift lock-out of ${l.username}`} /> : <span class="muted">ends by itself</span>) },
        ]} />
      </Layout>
    ));
  }));
  router.post('/lockouts/:username/lift', signedIn(async (page) => {
    await page.expect('DELETE', `/sign-in-lockouts/${enc(page.koa.params.username!)}`);
    page.redirect('/console/lockouts?done=lifted');
  }));
}
