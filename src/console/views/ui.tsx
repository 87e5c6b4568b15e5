import type { ComponentChildren } from 'preact';
import { renderToString } from 'preact-render-to-string';

/**
 * The console's building blocks, rendered on the server with Preact, which escapes every text
 * and attribute value: no page builds HTML by hand. No inline script or style anywhere (the
 * Content-Security-Policy forbids both); the one script, /console/assets/console.js, only adds
 * conveniences (copy buttons, local time zones), and every page works without it.
 *
 * Accessibility (WCAG 2.2 AA): one <h1> per page, landmarks (banner, navigation, main), a skip
 * link, a <label> for every control, errors as text tied to their field (aria-describedby,
 * aria-invalid) and summarised at the top in a focusable alert, visible focus, and tables that
 * become labelled cards on narrow screens so nothing scrolls sideways at 360 px.
 */
export const STYLESHEET_URL = '/console/assets/console.css';
export const SCRIPT_URL = '/console/assets/console.js';

export interface NavItem {
  href: string;
  label: string;
}

/** What every signed-in page knows about its viewer. */
export interface Viewer {
  username: string;
  csrf: string;
  nav: NavItem[];
  path: string;
  locale: string;
}

export function html(node: ComponentChildren): string {
  return `<!doctype html>\n${renderToString(<>{node}</>)}`;
}

export function Document(props: { title: string; children: ComponentChildren }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{`${props.title} · Tessera Console`}</title>
        <link rel="stylesheet" href={STYLESHEET_URL} />
        <script src={SCRIPT_URL} defer />
      </head>
      <body>{props.children}</body>
    </html>
  );
}

export function Layout(props: { title: string; viewer: Viewer; children: ComponentChildren }) {
  const { viewer } = props;
  return (
    <Document title={props.title}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/console">Tessera Console</a>
        <form method="post" action="/console/sign-out" class="signout">
          <input type="hidden" name="csrf" value={viewer.csrf} />
          <span class="who">Signed in as <strong>{viewer.username}</strong></span>
          <button type="submit" class="link">Sign out</button>
        </form>
      </header>
      <div class="frame">
        <nav aria-label="Console">
          <ul>
            {viewer.nav.map((item) => {
              const current = viewer.path === item.href || viewer.path.startsWith(`${item.href}/`);
              return (
                <li>
                  <a href={item.href} aria-current={current ? 'page' : undefined}>{item.label}</a>
                </li>
              );
            })}
          </ul>
        </nav>
        <main id="main" tabindex={-1}>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </div>
    </Document>
  );
}

/** A page without the console's navigation: sign-in choices, errors before a session exists. */
export function Bare(props: { title: string; children: ComponentChildren }) {
  return (
    <Document title={props.title}>
      <main id="main" class="bare">
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </Document>
  );
}

export type FieldErrors = Record<string, string>;

/** The summary of a refused form, first in the main region; each entry links to its field. */
export function ErrorSummary(props: { errors: FieldErrors; formError?: string }) {
  const entries = Object.entries(props.errors);
  if (entries.length === 0 && !props.formError) return null;
  return (
    <div class="alert" role="alert" id="error-summary" tabindex={-1}>
      <p><strong>{props.formError ?? 'The form has errors:'}</strong></p>
      {entries.length > 0 && (
        <ul>
          {entries.map(([field, message]) => (
            <li><a href={`#${fieldId(field)}`}>{message}</a></li>
          ))}
        </ul>
      )}
    </div>
  );
}

export const fieldId = (name: string) => `f-${name.replace(/[^\w-]/g, '-')}`;

/** A labelled control with its hint and error tied to it. `control` receives the ARIA attributes. */
export function Field(props: { name: string; label: string; hint?: string; error?: string; children: (aria: Record<string, string | undefined>) => ComponentChildren }) {
  const id = fieldId(props.name);
  const described = [props.hint ? `${id}-hint` : '', props.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div class={props.error ? 'field invalid' : 'field'}>
      <label for={id}>{props.label}</label>
      {props.hint && <p class="hint" id={`${id}-hint`}>{props.hint}</p>}
      {props.children({ id, name: props.name, 'aria-describedby': described || undefined, 'aria-invalid': props.error ? 'true' : undefined })}
      {props.error && <p class="field-error" id={`${id}-error`}>{props.error}</p>}
    </div>
  );
}

export function TextField(props: { name: string; label: string; value?: string; hint?: string; error?: string; type?: 'text' | 'date' | 'url' | 'number' | 'password' | 'email'; required?: boolean; autocomplete?: string }) {
  return (
    <Field {...props}>
      {(aria) => <input {...({ type: props.type ?? 'text' } as { type: 'text' })} value={props.value ?? ''} required={props.required} autocomplete={props.autocomplete ?? 'off'} {...aria} />}
    </Field>
  );
}

export function TextArea(props: { name: string; label: string; value?: string; hint?: string; error?: string }) {
  return <Field {...props}>{(aria) => <textarea rows={4} {...aria}>{props.value ?? ''}</textarea>}</Field>;
}

export function SelectField(props: { name: string; label: string; value?: string; hint?: string; error?: string; options: { value: string; label: string }[] }) {
  return (
    <Field {...props}>
      {(aria) => (
        <select {...aria}>
          {props.options.map((o) => <option value={o.value} selected={o.value === props.value}>{o.label}</option>)}
        </select>
      )}
    </Field>
  );
}

/** A group of checkboxes in a fieldset whose legend names it; the error is tied to the group. */
export function Checkboxes(props: { name: string; legend: string; hint?: string; error?: string; options: { value: string; label: string; description?: string }[]; checked: string[] }) {
  const id = fieldId(props.name);
  const described = [props.hint ? `${id}-hint` : '', props.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <fieldset class={props.error ? 'field invalid' : 'field'} id={id} aria-describedby={described || undefined} tabindex={-1}>
      <legend>{props.legend}</legend>
      {props.hint && <p class="hint" id={`${id}-hint`}>{props.hint}</p>}
      {props.error && <p class="field-error" id={`${id}-error`}>{props.error}</p>}
      {props.options.map((o, i) => (
        <div class="check">
          <input type="checkbox" id={`${id}-${i}`} name={props.name} value={o.value} checked={props.checked.includes(o.value)} aria-describedby={o.description ? `${id}-${i}-d` : undefined} />
          <label for={`${id}-${i}`}>{o.label}</label>
          {o.description && <span class="hint" id={`${id}-${i}-d`}>{o.description}</span>}
        </div>
      ))}
    </fieldset>
  );
}

export function Csrf(props: { value: string }) {
  return <input type="hidden" name="csrf" value={props.value} />;
}

/** One formatter per language, made once: a page of 50 rows shows 150 times. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterOf(locale: string): Intl.DateTimeFormat {
  let formatter = formatters.get(locale);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
    // The locale comes from the request (Accept-Language): the map stays small whatever is sent.
    if (formatters.size < 100) formatters.set(locale, formatter);
  }
  return formatter;
}

/**
 * A time in the viewer's language (Accept-Language), in UTC; the script turns it into the
 * browser's own time zone. The exact instant is the `datetime` and the hover text.
 */
export function Time(props: { iso: string | null | undefined; locale: string; empty?: string }) {
  if (!props.iso) return <span class="muted">{props.empty ?? 'never'}</span>;
  const date = new Date(props.iso);
  let text: string;
  try {
    text = `${formatterOf(props.locale).format(date)} UTC`;
  } catch {
    text = props.iso;
  }
  return <time datetime={props.iso} title={props.iso}>{text}</time>;
}

/** A table that becomes one labelled card per row on narrow screens (each cell names its column). */
export function Table<T>(props: { caption: string; rows: T[]; empty: string; columns: { label: string; cell: (row: T) => ComponentChildren }[] }) {
  if (props.rows.length === 0) return <p class="empty">{props.empty}</p>;
  return (
    <table class="cards">
      <caption>{props.caption}</caption>
      <thead>
        <tr>{props.columns.map((c) => <th scope="col">{c.label}</th>)}</tr>
      </thead>
      <tbody>
        {props.rows.map((row) => (
          <tr>{props.columns.map((c) => <td data-label={c.label}>{c.cell(row)}</td>)}</tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * Links to the next page of a listing (cursor pagination) and back to its first; `query` keeps
 * the page's filters. `label` names the listing, so two pagers never share a landmark name.
 */
export function Pager(props: { path: string; label: string; next: string | null; cursor?: string; query?: URLSearchParams }) {
  if (!props.next && !props.cursor) return null;
  const at = (cursor?: string) => {
    const query = new URLSearchParams(props.query);
    query.delete('cursor');
    if (cursor) query.set('cursor', cursor);
    return query.size ? `${props.path}?${query}` : props.path;
  };
  return (
    <nav class="pager" aria-label={`Pages of ${props.label}`}>
      {props.cursor && <a href={at()}>First page</a>}
      {props.next && <a href={at(props.next)} rel="next">Next page</a>}
    </nav>
  );
}

/** A secret shown this once, with a copy button (the script) and the warning that goes with it. */
export function SecretOnce(props: { label: string; value: string; id: string }) {
  return (
    <div class="secret">
      <p class="warning" role="status"><strong>Copy it now.</strong> This is the only time Tessera shows it: Tessera keeps only its digest, so nobody can show it again.</p>
      <label for={props.id}>{props.label}</label>
      <div class="secret-row">
        <input id={props.id} type="text" readonly value={props.value} class="mono" spellcheck={false} autocomplete="off" />
        <button type="button" class="secondary" data-copy={props.id} hidden>Copy</button>
      </div>
      <p class="hint" data-copied-for={props.id} aria-live="polite"></p>
    </div>
  );
}

export function ErrorPage(props: { status: number; title: string; detail: string; viewer?: Viewer }) {
  const body = (
    <>
      <p>{props.detail}</p>
      <p class="muted">Status {props.status}</p>
      <p><a href="/console">Back to the console</a></p>
    </>
  );
  return props.viewer ? <Layout title={props.title} viewer={props.viewer}>{body}</Layout> : <Bare title={props.title}>{body}</Bare>;
}
