import type { ShownOnce } from '../session-store.js';
import type { FieldErrors, Viewer } from './ui.js';
import { Checkboxes, Csrf, ErrorSummary, Layout, Pager, SecretOnce, SelectField, Table, TextField, Time } from './ui.js';

/** A PAT or SAT as GET /api/v1/tokens lists it, with its inventory risk when it is live. */
export interface TokenRow {
  id: string;
  type: 'pat' | 'sat';
  name: string;
  owner: { type: string; id: string; name?: string };
  scopes: string[];
  resources: string[];
  state: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
  use_count: number;
  revoked_reason: string | null;
  risk?: { score: number; reasons: { detail: string }[] };
}

export interface TokenOptions {
  type: 'pat' | 'sat';
  max_lifetime_days: number;
  rotation_grace_seconds: number;
  resources: { identifier: string; name: string | null; sensitive: boolean; scopes: { name: string; description: string | null; grantable: boolean; refusal?: string }[] }[];
}

export function RiskCell(props: { risk?: TokenRow['risk'] }) {
  if (!props.risk) return <span class="muted">—</span>;
  return (
    <>
      <span class={props.risk.score >= 50 ? 'badge risk-high' : 'badge'}>{props.risk.score}</span>
      {props.risk.reasons.length > 0 && <ul class="reasons">{props.risk.reasons.map((r) => <li>{r.detail}</li>)}</ul>}
    </>
  );
}

export function tokenColumns(viewer: Viewer, base: string, showOwner: boolean) {
  const columns = [
    { label: 'Name', cell: (t: TokenRow) => <strong>{t.name}</strong> },
    ...(showOwner ? [{ label: 'Owner', cell: (t: TokenRow) => t.owner.name ?? t.owner.id }] : []),
    { label: 'Status', cell: (t: TokenRow) => <>{t.state}{t.revoked_reason ? `: ${t.revoked_reason}` : ''}</> },
    { label: 'Scopes', cell: (t: TokenRow) => <span class="mono">{t.scopes.join(' ') || '(none)'}</span> },
    { label: 'Created', cell: (t: TokenRow) => <Time iso={t.created_at} locale={viewer.locale} /> },
    { label: 'Expires', cell: (t: TokenRow) => <Time iso={t.expires_at} locale={viewer.locale} /> },
    { label: 'Last used', cell: (t: TokenRow) => <Time iso={t.last_used_at} locale={viewer.locale} /> },
    { label: 'Uses', cell: (t: TokenRow) => String(t.use_count) },
    { label: 'Risk', cell: (t: TokenRow) => <RiskCell risk={t.risk} /> },
    {
      label: 'Actions',
      cell: (t: TokenRow) =>
        t.state === 'active' ? (
          <div class="actions">
            <a class="button secondary" href={`${base}/${encodeURIComponent(t.id)}/rotate`} aria-label={`Rotate ${t.name}`}>Rotate</a>
            <a class="button secondary" href={`${base}/${encodeURIComponent(t.id)}/revoke`} aria-label={`Revoke ${t.name}`}>Revoke</a>
          </div>
        ) : <span class="muted">—</span>,
    },
  ];
  return columns;
}

export function MyTokensPage(props: { viewer: Viewer; tokens: TokenRow[]; notice?: string; next: string | null; cursor: string }) {
  const { viewer } = props;
  return (
    <Layout title="My tokens" viewer={viewer}>
      {props.notice && <p class="notice" role="status">{props.notice}</p>}
      <p>Personal access tokens (PATs) act as you, for scripts and tools. Each has an expiry, and you can rotate or revoke it at any time.</p>
      <p><a class="button primary" href="/console/tokens/new">Create a token</a></p>
      <Table caption="Your personal access tokens" rows={props.tokens} empty="You have no personal access tokens yet." columns={tokenColumns(viewer, '/console/tokens', false)} />
      <Pager path="/console/tokens" label="your tokens" next={props.next} cursor={props.cursor} />
    </Layout>
  );
}

export interface NewTokenValues {
  name: string;
  expiry: string;
  expires_on: string;
  scopes: string[];
  service_account_id?: string;
}

export const EXPIRY_PRESETS = [7, 30, 90, 365];

/** The form for a new PAT (or, with `serviceAccount`, a SAT): APIs and scopes come from /token-options. */
export function NewTokenPage(props: { viewer: Viewer; options: TokenOptions; values: NewTokenValues; errors: FieldErrors; formError?: string; action: string; title: string; serviceAccount?: { id: string; name: string } }) {
  const { viewer, options, values, errors } = props;
  const cap = options.max_lifetime_days;
  const presets = EXPIRY_PRESETS.filter((d) => d <= cap);
  return (
    <Layout title={props.title} viewer={viewer}>
      <ErrorSummary errors={errors} formError={props.formError} />
      <form method="post" action={props.action} novalidate>
        <Csrf value={viewer.csrf} />
        {props.serviceAccount && <p>For the service account <strong>{props.serviceAccount.name}</strong>.</p>}
        <TextField name="name" label="Name" hint="What the token is for, so you recognise it later." value={values.name} error={errors.name} required />
        <SelectField
          name="expiry"
          label="Expires in"
          hint={`Organization policy allows at most ${cap} days.`}
          value={values.expiry}
          error={errors.expiry ?? errors.expires_in}
          options={[...presets.map((d) => ({ value: String(d), label: `${d} days` })), ...(presets.includes(cap) ? [] : [{ value: String(cap), label: `${cap} days (the maximum)` }]), { value: 'date', label: 'On a date…' }]}
        />
        <TextField name="expires_on" type="date" label="Expiry date (when “On a date…” is chosen)" hint={`At most ${cap} days from today.`} value={values.expires_on} error={errors.expires_on} />
        {options.resources.map((api, i) => {
          const grantable = api.scopes.filter((s) => s.grantable);
          const refused = api.scopes.filter((s) => !s.grantable);
          return (
            <>
              <Checkboxes
                name="scopes"
                legend={`${api.name ?? api.identifier}${api.sensitive ? ' (sensitive)' : ''}`}
                hint={api.identifier}
                error={i === 0 ? errors.scopes ?? errors.resources : undefined}
                options={grantable.map((s) => ({ value: `${api.identifier} ${s.name}`, label: s.name, description: s.description ?? undefined }))}
                checked={values.scopes}
              />
              {refused.length > 0 && <p class="hint">Not available to you here: {refused.map((s) => s.name).join(', ')}.</p>}
            </>
          );
        })}
        <div class="actions">
          <button type="submit" class="primary">Create token</button>
          <a class="button secondary" href={props.serviceAccount ? `/console/service-accounts/${encodeURIComponent(props.serviceAccount.id)}` : '/console/tokens'}>Cancel</a>
        </div>
      </form>
    </Layout>
  );
}

/**
 * The page that shows a new secret, reached by a redirect after the POST that made it
 * (post/redirect/get): the secret was taken from the session store as this page was made, so a
 * reload shows that it is gone instead of making another.
 */
export function ShownOncePage(props: { viewer: Viewer; shown: ShownOnce }) {
  const { viewer, shown } = props;
  return (
    <Layout title={shown.title} viewer={viewer}>
      {shown.notice && <p class="notice" role="status">{shown.notice}</p>}
      {shown.facts && shown.facts.length > 0 && (
        <dl class="facts">{shown.facts.map((f) => <><dt>{f.label}</dt><dd class="mono">{f.value}</dd></>)}</dl>
      )}
      {shown.secrets.map((secret, i) => <SecretOnce label={secret.label} value={secret.value} id={i === 0 ? 'secret' : `secret-${i}`} />)}
      {shown.expiresAt && <p>It expires <Time iso={shown.expiresAt} locale={viewer.locale} />.{shown.bearer && <> Use it as a Bearer token: <code>Authorization: Bearer tsr_…</code></>}</p>}
      {shown.grace && <p>The previous secret keeps working until <Time iso={shown.grace} locale={viewer.locale} /> so that whatever uses it can switch over.</p>}
      <p><a href={shown.back}>Done</a></p>
    </Layout>
  );
}

/** The page of a secret already shown (a reload, a second tab, or a link opened too late). */
export function ShownAlreadyPage(props: { viewer: Viewer }) {
  return (
    <Layout title="Already shown" viewer={props.viewer}>
      <p>Tessera shows a new secret once, and this one has been shown or waited too long. Nothing was created again.</p>
      <p>If you did not copy it, rotate the credential to get a new secret.</p>
      <p><a href="/console/tokens">Back to your tokens</a></p>
    </Layout>
  );
}

export function ConfirmTokenPage(props: { viewer: Viewer; token: TokenRow; action: 'rotate' | 'revoke'; base: string; graceSeconds?: number; error?: string }) {
  const { viewer, token } = props;
  const revoke = props.action === 'revoke';
  return (
    <Layout title={revoke ? `Revoke ${token.name}?` : `Rotate ${token.name}?`} viewer={viewer}>
      <ErrorSummary errors={props.error ? { reason: props.error } : {}} />
      {revoke ? (
        <p>Anything using this token stops working at once, on every node. This cannot be undone.</p>
      ) : (
        <p>
          A new secret is made and shown once. The current one keeps working for
          {' '}{props.graceSeconds !== undefined ? `${Math.round(props.graceSeconds / 3600 * 10) / 10} hours` : 'the grace period of organization policy'}, never past the token's expiry.
        </p>
      )}
      <form method="post" action={`${props.base}/${encodeURIComponent(token.id)}/${props.action}`}>
        <Csrf value={viewer.csrf} />
        {revoke && <TextField name="reason" label="Reason (optional)" hint="Recorded in the audit trail, for example “leaked” or “no longer needed”." error={props.error} />}
        <div class="actions">
          <button type="submit" class={revoke ? 'danger' : 'primary'}>{revoke ? 'Revoke token' : 'Rotate token'}</button>
          <a class="button secondary" href={props.base}>Cancel</a>
        </div>
      </form>
    </Layout>
  );
}
