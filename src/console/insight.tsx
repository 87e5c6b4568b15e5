import type Router from '@koa/router';
import type { Middleware } from 'koa';

import { describeEvent } from './audit-words.js';
import type { AuditEventView, NameBook } from './audit-words.js';
import type { PageContext, PageHandler } from './page.js';
import { PAGE_SIZE, fieldErrorsOf, pageErrorOf } from './page.js';
import { BarChart } from './views/chart.js';
import { RiskCell } from './views/tokens.js';
import type { FieldErrors } from './views/ui.js';
import { ErrorSummary, Layout, Pager, SelectField, Table, TextField, Time } from './views/ui.js';

/**
 * Insight: the token inventory, riskiest first, with its reasons in words and a CSV export; and
 * the audit trail with filters, paging, each event as a sentence, and a JSON Lines export. Both
 * are the Management API's own listings (GET /token-inventory, GET /audit-events), so a member
 * sees only their own credentials and needs audit:read for the trail.
 */
type SignedIn = (handler: PageHandler) => Middleware;
const enc = encodeURIComponent;
const DAY = 86_400_000;

/** Passes an export through as the API streams it: same filters, same authority, same file name. */
async function passThrough(page: PageContext, path: string) {
  const answer = await page.call('GET', path);
  if (answer.status !== 200) throw pageErrorOf(answer);
  const koa = page.koa;
  koa.status = 200;
  koa.set('cache-control', 'no-store');
  for (const header of ['content-type', 'content-disposition']) {
    const value = answer.headers[header];
    if (typeof value === 'string') koa.set(header, value);
  }
  koa.body = answer.text;
}

/**
 * Names for the ids of a page of the audit trail, from what the person may read (a refused
 * listing adds nothing): the tokens the events name, by id, and the organization's users,
 * service accounts, clients and APIs.
 */
async function nameBook(page: PageContext, events: AuditEventView[]): Promise<NameBook> {
  const names: NameBook = new Map();
  const add = async (path: string, key: string, name: (item: any) => string) => {
    const answer = await page.call('GET', path);
    if (answer.status === 200) for (const item of answer.body.items as any[]) names.set(item[key], name(item));
  };
  const tokenIds = [...new Set(events.filter((e) => e.target.type === 'reference_token' && e.target.id).map((e) => e.target.id!))];
  await Promise.all([
    tokenIds.length ? add(`/tokens?limit=${tokenIds.length}&ids=${tokenIds.map(enc).join(',')}`, 'id', (t) => `${String(t.type).toUpperCase()} ${t.name}`) : undefined,
    add('/users?limit=1000', 'id', (u) => u.username),
    add('/service-accounts?limit=1000', 'id', (a) => a.name),
    add('/clients?limit=1000', 'client_id', (c) => c.name ?? c.client_id),
    add('/resource-servers?limit=1000', 'id', (r) => r.name ?? r.identifier),
  ]);
  return names;
}

/** A day or instant as the viewer's language writes it, in UTC (the counts are per UTC day). */
function dayLabels(locale: string) {
  const make = (options: Intl.DateTimeFormatOptions) => {
    try {
      return new Intl.DateTimeFormat(locale, { ...options, timeZone: 'UTC' });
    } catch {
      return new Intl.DateTimeFormat('en', { ...options, timeZone: 'UTC' });
    }
  };
  const long = make({ day: 'numeric', month: 'short', year: 'numeric' });
  const short = make({ day: 'numeric', month: 'short' });
  return { long: (iso: string) => long.format(new Date(iso)), short: (iso: string) => short.format(new Date(iso)) };
}

export function insightPages(router: Router, signedIn: SignedIn): void {
  // Activity: issuance, use and expiry as charts, from GET /token-activity (audit:read).
  router.get('/activity', signedIn(async (page) => {
    const activity = (await page.expect('GET', '/token-activity?days=30&weeks=12')) as { days: { day: string; issued: number; uses: number; introspections: number }[]; weeks: { from: string; to: string; expiring: number }[] };
    const label = dayLabels(page.viewer.locale);
    const perDay = (key: 'issued' | 'introspections') => activity.days.map((d) => ({ label: label.long(d.day), short: label.short(d.day), value: d[key] }));
    page.render(200, (
      <Layout title="Activity" viewer={page.viewer}>
        <p>The organization's tokens over the last 30 days (UTC), and what expires in the coming weeks. Every bar's number is also in the table under its chart.</p>
        <BarChart id="issued" title="Tokens issued per day" unit="tokens issued" column="Day" points={perDay('issued')} />
        <BarChart id="introspections" title="Introspections per day" unit="introspections (every kind of token)" column="Day" points={perDay('introspections')} />
        <BarChart id="expiring" title="Live PATs and SATs expiring per week" unit="tokens expiring" column="Week starting" points={activity.weeks.map((w) => ({ label: `week of ${label.long(w.from)}`, short: label.short(w.from), value: w.expiring }))} />
        <p><a href="/console/inventory?expiring=30">See the tokens expiring within 30 days</a></p>
      </Layout>
    ));
  }));

  router.get('/inventory', signedIn(async (page) => {
    const q = page.koa.query;
    const pick = (k: string) => (typeof q[k] === 'string' ? (q[k] as string) : '');
    const filters = { kind: pick('kind'), owner: pick('owner'), idle: pick('idle'), expiring: pick('expiring') };
    // Every filter is the API's, so a page of 50 is a page of what matches.
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filters.kind) params.set('kind', filters.kind);
    if (filters.owner) params.set('owner', filters.owner);
    if (filters.idle) params.set('min_idle_days', filters.idle);
    if (filters.expiring) params.set('expires_within_days', filters.expiring);
    const cursor = pick('cursor').slice(0, 512);
    if (cursor) params.set('cursor', cursor);
    const answer = await page.call('GET', `/token-inventory?${params}`);
    let errors: FieldErrors = {};
    let items: any[] = [];
    let next: string | null = null;
    if (answer.status === 200) ({ items, next_cursor: next } = answer.body);
    else if (answer.status === 400) errors = fieldErrorsOf(answer);
    else throw pageErrorOf(answer);
    const kept = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    page.render(answer.status === 400 ? 400 : 200, (
      <Layout title="Token inventory" viewer={page.viewer}>
        <p>Every live long-lived credential you may see, riskiest first, with why it scores as it does.</p>
        <ErrorSummary errors={errors} />
        <form method="get" action="/console/inventory" class="filters">
          <SelectField name="kind" label="Kind" value={filters.kind} error={errors.kind} options={[{ value: '', label: 'Any' }, { value: 'pat', label: 'PAT' }, { value: 'sat', label: 'SAT' }, { value: 'client_secret', label: 'Client secret' }, { value: 'refresh_token_family', label: 'Refresh tokens' }]} />
          <TextField name="owner" label="Owner id" value={filters.owner} error={errors.owner} />
          <SelectField name="idle" label="Idle" value={filters.idle} options={[{ value: '', label: 'Any' }, { value: '30', label: 'Unused 30+ days' }, { value: '90', label: 'Unused 90+ days' }]} />
          <SelectField name="expiring" label="Expiring" value={filters.expiring} options={[{ value: '', label: 'Any' }, { value: '7', label: 'Within 7 days' }, { value: '30', label: 'Within 30 days' }]} />
          <div class="field"><button type="submit" class="primary">Filter</button></div>
        </form>
        <p><a href={`/console/inventory.csv${kept.size ? `?${kept}` : ''}`}>Download as CSV</a></p>
        <Table caption="Credentials by risk" rows={items} empty="No credentials match." columns={[
          { label: 'Risk', cell: (i) => <RiskCell risk={{ score: i.risk_score, reasons: i.risk_reasons }} /> },
          { label: 'Kind', cell: (i) => String(i.kind).replace(/_/g, ' ') },
          { label: 'Name', cell: (i) => i.name ?? i.client_id ?? i.id },
          { label: 'Owner', cell: (i) => `${i.owner.name ?? i.owner.id} (${String(i.owner.type).replace(/_/g, ' ')}, ${i.owner.status})` },
          { label: 'Scopes', cell: (i) => <span class="mono">{(i.scopes as string[]).join(' ')}</span> },
          { label: 'Expires', cell: (i) => <Time iso={i.expires_at} locale={page.viewer.locale} /> },
          { label: 'Last used', cell: (i) => <Time iso={i.last_used_at} locale={page.viewer.locale} /> },
        ]} />
        <Pager path="/console/inventory" label="the inventory" next={next} cursor={cursor} query={kept} />
      </Layout>
    ));
  }));
  router.get('/inventory.csv', signedIn(async (page) => {
    const params = new URLSearchParams({ format: 'csv' });
    for (const [k, api] of [['kind', 'kind'], ['owner', 'owner'], ['idle', 'min_idle_days'], ['expiring', 'expires_within_days']]) if (typeof page.koa.query[k] === 'string' && page.koa.query[k]) params.set(api!, page.koa.query[k] as string);
    await passThrough(page, `/token-inventory?${params}`);
  }));

  /** The audit filters as the API takes them: dates from the form become RFC 3339 instants. */
  function auditQuery(page: PageContext) {
    const q = page.koa.query;
    const pick = (k: string) => (typeof q[k] === 'string' ? (q[k] as string).trim() : '');
    const values = { actor: pick('actor'), action: pick('action'), target: pick('target'), from: pick('from') || new Date(page.now() - 7 * DAY).toISOString().slice(0, 10), to: pick('to'), cursor: pick('cursor') };
    const params = new URLSearchParams();
    const errors: FieldErrors = {};
    for (const k of ['actor', 'action', 'target'] as const) if (values[k]) params.set(k, values[k]);
    for (const [k, end] of [['from', 'T00:00:00Z'], ['to', 'T23:59:59Z']] as const) {
      if (!values[k]) continue;
      if (/^\d{4}-\d{2}-\d{2}$/.test(values[k])) params.set(k, `${values[k]}${end}`);
      else errors[k] = 'Enter a date, for example 2030-01-31.';
    }
    return { values, params, errors };
  }

  router.get('/audit', signedIn(async (page) => {
    const { values, params, errors: own } = auditQuery(page);
    params.set('limit', String(PAGE_SIZE));
    if (values.cursor) params.set('cursor', values.cursor);
    let errors = own;
    let items: (AuditEventView & { seq: number; time: string })[] = [];
    let next: string | null = null;
    if (Object.keys(errors).length === 0) {
      const answer = await page.call('GET', `/audit-events?${params}`);
      if (answer.status === 200) {
        items = answer.body.items;
        next = answer.body.next_cursor;
      } else if (answer.status === 400) errors = fieldErrorsOf(answer);
      else throw pageErrorOf(answer);
    }
    const names = items.length ? await nameBook(page, items) : new Map<string, string>();
    const keep = new URLSearchParams(Object.entries(values).filter(([k, v]) => v && k !== 'cursor'));
    page.render(Object.keys(errors).length ? 400 : 200, (
      <Layout title="Audit trail" viewer={page.viewer}>
        <ErrorSummary errors={errors} />
        <form method="get" action="/console/audit" class="filters">
          <TextField name="actor" label="Actor id" value={values.actor} error={errors.actor} />
          <TextField name="action" label="Action" hint="For example token.revoked" value={values.action} error={errors.action} />
          <TextField name="target" label="Target id" value={values.target} error={errors.target} />
          <TextField name="from" type="date" label="From" value={values.from} error={errors.from} />
          <TextField name="to" type="date" label="To" value={values.to} error={errors.to} />
          <div class="field"><button type="submit" class="primary">Filter</button></div>
        </form>
        <p><a href={`/console/audit.jsonl?${keep}`}>Download as JSON Lines</a></p>
        <Table caption="Events, oldest first" rows={items} empty="No events match." columns={[
          { label: 'Time', cell: (e) => <Time iso={e.time} locale={page.viewer.locale} /> },
          { label: 'What happened', cell: (e) => describeEvent(e, names) },
          { label: 'Outcome', cell: (e) => e.outcome },
          { label: 'Action', cell: (e) => <span class="mono">{e.action}</span> },
        ]} />
        {next && <p><a href={`/console/audit?${keep}&cursor=${enc(next)}`}>Next page</a></p>}
      </Layout>
    ));
  }));
  router.get('/audit.jsonl', signedIn(async (page) => {
    const { params, errors } = auditQuery(page);
    if (Object.keys(errors).length) throw pageErrorOf({ status: 400, headers: {}, text: '', body: { detail: Object.values(errors)[0] } });
    params.set('format', 'jsonl');
    await passThrough(page, `/audit-events?${params}`);
  }));
}
