/**
 * Server-rendered pages of the sign-in flow: plain HTML and one stylesheet, no script at all, so
 * the Content-Security-Policy can forbid every script. Accessibility follows WCAG 2.2: every
 * input has a <label>, errors are text tied to their field with aria-describedby and announced
 * with role="alert", the tab order is the reading order, and the layout fits a phone screen.
 */

export const STYLESHEET_PATH = '/assets/sign-in.css';

/** HTML-escapes text and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The policy of every page here: nothing but this origin's stylesheet, no script, no framing.
 * `form-action` must also name where a form's redirect chain ends: browsers apply it to the
 * redirects that follow a form post, and consent ends at the client's redirect URI.
 */
export function contentSecurityPolicy(formTargets: readonly string[] = []): string {
  const targets = [...new Set(formTargets)].filter((t) => /^[a-z][a-z0-9+.-]*:(\/\/[^\s;,']+)?$/i.test(t));
  return [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    `form-action 'self'${targets.length ? ` ${targets.join(' ')}` : ''}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/** The origin (or, for a private-use scheme of a native app, the scheme) a redirect URI lands on. */
export function formTargetOf(redirectUri: string | undefined): string | undefined {
  if (!redirectUri) return undefined;
  try {
    const url = new URL(redirectUri);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
  } catch {
    return undefined;
  }
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · Tessera</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main class="card">
${body}
</main>
</body>
</html>
`;
}

const csrfField = (csrf: string) => `<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">`;

export interface LoginView {
  uid: string;
  clientName: string;
  csrf: string;
  username?: string;
  /** One message about the whole attempt (wrong credentials, lock-out): never says which part was wrong. */
  formError?: string;
  fieldErrors?: { username?: string; password?: string };
}

export function loginPage(view: LoginView): string {
  const errors = view.fieldErrors ?? {};
  const describedBy = (field: 'username' | 'password') =>
    [errors[field] ? `${field}-error` : '', view.formError ? 'form-error' : ''].filter(Boolean).join(' ');
  const input = (field: 'username' | 'password', attributes: string) => {
    const ids = describedBy(field);
    return `<input id="${field}" name="${field}" ${attributes}${ids ? ` aria-describedby="${ids}"` : ''}${errors[field] || view.formError ? ' aria-invalid="true"' : ''}>`;
  };
  const focusPassword = Boolean(view.username) && !errors.username;
  return layout(
    'Sign in',
    `<h1>Sign in</h1>
<p class="lead">to continue to <strong>${escapeHtml(view.clientName)}</strong></p>
${view.formError ? `<p class="alert" role="alert" id="form-error">${escapeHtml(view.formError)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(view.uid)}/login">
${csrfField(view.csrf)}
<div class="field">
<label for="username">Username</label>
${input('username', `type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="256" value="${escapeHtml(view.username ?? '')}"${focusPassword ? '' : ' autofocus'}`)}
${errors.username ? `<p class="field-error" id="username-error">${escapeHtml(errors.username)}</p>` : ''}
</div>
<div class="field">
<label for="password">Password</label>
${input('password', `type="password" autocomplete="current-password" required maxlength="1024"${focusPassword ? ' autofocus' : ''}`)}
${errors.password ? `<p class="field-error" id="password-error">${escapeHtml(errors.password)}</p>` : ''}
</div>
<button type="submit" class="primary">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(view.uid)}/abort" class="secondary-form">
${csrfField(view.csrf)}
<button type="submit" class="secondary">Cancel</button>
</form>`,
  );
}

export interface ConsentItem {
  title: string;
  description?: string;
}

export interface ConsentView {
  uid: string;
  clientName: string;
  username: string;
  csrf: string;
  /** OpenID Connect items (who you are, profile, email, offline access). */
  identity: ConsentItem[];
  /** Per API: its name and the scopes asked for, in words where the API describes them. */
  apis: { name: string; items: ConsentItem[] }[];
}

const itemList = (items: ConsentItem[]) =>
  `<ul class="scopes">${items
    .map((i) => `<li><span class="scope-title">${escapeHtml(i.title)}</span>${i.description ? `<span class="scope-description">${escapeHtml(i.description)}</span>` : ''}</li>`)
    .join('')}</ul>`;

export function consentPage(view: ConsentView): string {
  const sections: string[] = [];
  if (view.identity.length) sections.push(itemList(view.identity));
  for (const api of view.apis) sections.push(`<h2>${escapeHtml(api.name)}</h2>${itemList(api.items)}`);
  return layout(
    'Allow access',
    `<h1>Allow access?</h1>
<p class="lead"><strong>${escapeHtml(view.clientName)}</strong> asks to:</p>
${sections.join('\n')}
<p class="muted">You are signed in as <strong>${escapeHtml(view.username)}</strong>. Tessera remembers your answer; you will not be asked again for the same access.</p>
<form method="post" action="/interaction/${escapeHtml(view.uid)}/confirm" class="actions">
${csrfField(view.csrf)}
<button type="submit" name="decision" value="allow" class="primary">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>`,
  );
}

export function messagePage(title: string, message: string, link?: { href: string; text: string }): string {
  return layout(
    title,
    `<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>${link ? `\n<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.text)}</a></p>` : ''}`,
  );
}

/** RP-initiated logout confirmation; `form` is the engine's hidden form (id "op.logoutForm"). */
export function logoutPage(form: string, clientName: string | undefined): string {
  return layout(
    'Sign out',
    `<h1>Sign out?</h1>
<p class="lead">${clientName ? `<strong>${escapeHtml(clientName)}</strong> asks to sign you out.` : 'You asked to sign out.'} This ends your Tessera session on this device.</p>
${form}
<div class="actions">
<button type="submit" form="op.logoutForm" name="logout" value="yes" class="primary" autofocus>Sign out</button>
</div>`,
  );
}

/**
 * RFC 8628 §3.3: where a user types the code their device shows. `form` is the engine's hidden
 * form (id "op.deviceInputForm", with its own CSRF field); `problem` replaces the prompt after a
 * wrong, expired or aborted code; `code` is the code verification_uri_complete carried
 * (RFC 8628 §3.3.1, src/interactions/device-code-prefill.ts), shown in the field to be checked
 * and submitted.
 */
export function deviceCodePage(form: string, problem?: string, code?: string): string {
  // The engine's form brings its own code field, unlabelled and with an inline script handler;
  // the page's labelled field below takes its place (form="op.deviceInputForm").
  const field = /<input\s[^>]*name="user_code"[^>]*>(\s*<\/input>)?/.exec(form)?.[0] ?? '';
  const hiddenOnly = form.replace(field, '');
  // After a wrong code the engine puts it back in its field, escaped already; a code from
  // verification_uri_complete is escaped here.
  const prefilled = code !== undefined ? escapeHtml(code) : /\svalue="([^"]*)"/.exec(field)?.[1];
  return layout(
    'Connect a device',
    `<h1>Connect a device</h1>
<p class="lead">Enter the code your device shows.</p>
${problem ? `<p class="alert" role="alert" id="user_code-error">${escapeHtml(problem)}</p>
` : ''}${hiddenOnly}
<div class="field">
<label for="user_code">Code</label>
<input type="text" id="user_code" name="user_code" form="op.deviceInputForm"${prefilled !== undefined ? ` value="${prefilled}"` : ''} autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus${problem ? ' aria-invalid="true" aria-describedby="user_code-error"' : ''}>
</div>
<div class="actions">
<button type="submit" form="op.deviceInputForm" class="primary">Continue</button>
</div>`,
  );
}

/** RFC 8628 §5.4: the user confirms the code and the application before signing in; `form` is "op.deviceConfirmForm". */
export function deviceConfirmPage(form: string, clientName: string, userCode: string): string {
  return layout(
    'Confirm the device',
    `<h1>Confirm the device</h1>
<p class="lead"><strong>${escapeHtml(clientName)}</strong> asks to sign in on a device. Continue only if the device shows this code and you started this yourself:</p>
<p class="user-code"><strong>${escapeHtml(userCode)}</strong></p>
${form}
<div class="actions">
<button type="submit" form="op.deviceConfirmForm" class="primary" autofocus>Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes" class="secondary">Cancel</button>
</div>`,
  );
}

export function loggedOutPage(clientName: string | undefined): string {
  return messagePage('Signed out', clientName ? `You have signed out of ${clientName}. You can close this window.` : 'You have signed out. You can close this window.');
}

/** The stylesheet, served from this origin so the CSP needs no 'unsafe-inline'. */
export const STYLESHEET = `:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--accent:#0a58ca;--accent-fg:#fff;--danger:#b42318;--border:#d0d7de}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--accent:#4493f8;--accent-fg:#0d1117;--danger:#ff7b72;--border:#30363d}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
.card{max-width:26rem;margin:2rem auto;padding:1.5rem;background:var(--card);border:1px solid var(--border);border-radius:.5rem}
@media (max-width:30rem){.card{margin:0;min-height:100vh;border:0;border-radius:0}}
h1{font-size:1.5rem;margin:0 0 .25rem}
h2{font-size:1.1rem;margin:1.25rem 0 .25rem}
.lead{margin:0 0 1.25rem;color:var(--muted)}
.muted{color:var(--muted);font-size:.9rem}
.field{margin-bottom:1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=password]{width:100%;padding:.6rem .7rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--border);border-radius:.375rem}
input[aria-invalid=true]{border-color:var(--danger)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.alert,.field-error{color:var(--danger)}
.alert{border:1px solid var(--danger);border-radius:.375rem;padding:.6rem .75rem;margin:0 0 1rem}
.field-error{margin:.25rem 0 0;font-size:.9rem}
button{width:100%;min-height:2.75rem;padding:.6rem 1rem;font:inherit;font-weight:600;border-radius:.375rem;cursor:pointer}
.primary{background:var(--accent);color:var(--accent-fg);border:1px solid var(--accent)}
.secondary{background:transparent;color:var(--fg);border:1px solid var(--border)}
.secondary-form{margin-top:.75rem}
.actions{display:grid;gap:.75rem;margin-top:1.25rem}
.scopes{list-style:none;padding:0;margin:0}
.scopes li{padding:.6rem 0;border-bottom:1px solid var(--border)}
.scope-title{display:block;font-weight:600}
.scope-description{display:block;color:var(--muted);font-size:.9rem}
`;
