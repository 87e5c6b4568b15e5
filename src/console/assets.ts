/**
 * The console's stylesheet and script, served as static files from this origin so the
 * Content-Security-Policy allows no inline style or script and nothing `unsafe-*`. Colours meet
 * WCAG 2.2 AA contrast in both schemes; focus is always visible.
 */
export const CONSOLE_CSS = `:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--accent:#0a58ca;--accent-fg:#fff;--danger:#b42318;--warn-bg:#fff8c5;--border:#8c959f;--line:#d0d7de}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--accent:#4493f8;--accent-fg:#0d1117;--danger:#ff7b72;--warn-bg:#3b2e00;--border:#6e7681;--line:#30363d}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}
a{color:var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:var(--card);padding:.5rem}
.skip:focus{left:.5rem}
.top{display:flex;flex-wrap:wrap;gap:.5rem;justify-content:space-between;align-items:center;padding:.75rem 1rem;background:var(--card);border-bottom:1px solid var(--line)}
.brand{font-weight:700;text-decoration:none;color:var(--fg)}
.signout{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap}
.frame{display:flex;gap:1rem;max-width:80rem;margin:0 auto;padding:1rem}
nav ul{list-style:none;margin:0;padding:0;min-width:12rem}
nav li a{display:block;padding:.4rem .6rem;border-radius:.375rem;text-decoration:none}
nav a[aria-current=page]{background:var(--accent);color:var(--accent-fg)}
main{flex:1;min-width:0;background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem 1.25rem}
main.bare{max-width:32rem;margin:2rem auto}
@media (max-width:48rem){.frame{flex-direction:column;padding:.5rem}nav ul{display:flex;flex-wrap:wrap;gap:.25rem;min-width:0}main.bare{margin:0}}
h1{font-size:1.5rem;margin:0 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.muted,.hint{color:var(--muted)}
.hint{font-size:.9rem;margin:.1rem 0 .3rem}
.field{margin:0 0 1rem;border:0;padding:0}
fieldset.field{border:1px solid var(--line);border-radius:.375rem;padding:.5rem .75rem}
legend,label{font-weight:600}
label{display:block;margin-bottom:.2rem}
.check{display:grid;grid-template-columns:auto 1fr;gap:0 .5rem;align-items:start;margin:.3rem 0}
.check label{font-weight:400;margin:0}
.check .hint{grid-column:2}
input[type=text],input[type=date],input[type=url],input[type=number],input[type=password],input[type=email],select,textarea{width:100%;max-width:40rem;padding:.5rem .6rem;font:inherit;color:inherit;background:var(--card);border:1px solid var(--border);border-radius:.375rem}
input[type=checkbox]{width:1.25rem;height:1.25rem;margin:.15rem 0}
.invalid input,.invalid select,[aria-invalid=true]{border-color:var(--danger)}
.field-error,.alert{color:var(--danger)}
.alert{border:1px solid var(--danger);border-radius:.375rem;padding:.5rem .75rem;margin:0 0 1rem}
.notice{border:1px solid var(--accent);border-radius:.375rem;padding:.5rem .75rem;margin:0 0 1rem}
.warning{background:var(--warn-bg);border-radius:.375rem;padding:.5rem .75rem}
button,.button{display:inline-block;min-height:2.75rem;padding:.55rem 1rem;font:inherit;font-weight:600;border-radius:.375rem;cursor:pointer;text-decoration:none;border:1px solid var(--accent)}
button.primary,.button.primary{background:var(--accent);color:var(--accent-fg)}
button.secondary,.button.secondary{background:transparent;color:var(--fg);border-color:var(--border)}
button.danger{background:var(--danger);color:#fff;border-color:var(--danger)}
button.link{background:none;border:0;color:var(--accent);text-decoration:underline;min-height:2.75rem;padding:0 .25rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0}
.inline{display:inline}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9rem}
.secret-row{display:flex;gap:.5rem;flex-wrap:wrap}
.secret-row input{flex:1 1 16rem}
table.cards{width:100%;border-collapse:collapse;margin:.5rem 0 1rem}
table.cards caption{text-align:left;font-weight:600;padding:.25rem 0}
table.cards th,table.cards td{text-align:left;vertical-align:top;padding:.45rem .5rem;border-bottom:1px solid var(--line)}
@media (max-width:60rem){table.cards thead{position:absolute;left:-9999px}table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}table.cards tr{border:1px solid var(--line);border-radius:.375rem;margin:0 0 .75rem;padding:.25rem .5rem}table.cards td{border:0;padding:.2rem 0;display:grid;grid-template-columns:9rem 1fr;gap:.5rem}table.cards td::before{content:attr(data-label);font-weight:600;color:var(--muted)}}
.badge{display:inline-block;padding:0 .4rem;border-radius:.75rem;border:1px solid var(--border);font-size:.85rem}
.risk-high{border-color:var(--danger);color:var(--danger)}
ul.reasons{margin:0;padding-left:1.1rem}
.chart{margin:0 0 1.5rem}
.chart svg{display:block;width:100%;height:auto;max-width:48rem}
.chart-bar{fill:var(--accent)}
.chart-axis{stroke:var(--border);stroke-width:1}
.chart-grid{stroke:var(--line);stroke-width:1;stroke-dasharray:4 4}
.chart-label{fill:var(--muted);font-size:12px}
.chart-y{text-anchor:end}
.chart-x{text-anchor:middle}
table.numbers{border-collapse:collapse;margin:.5rem 0}
table.numbers th,table.numbers td{text-align:left;padding:.15rem .75rem .15rem 0;border-bottom:1px solid var(--line);font-weight:400}
table.numbers td{text-align:right}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.pager{display:flex;gap:1.5rem;margin:.5rem 0 1rem}
.filters{display:flex;flex-wrap:wrap;gap:0 1rem;align-items:end}
.filters .field{flex:1 1 12rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
.empty{color:var(--muted)}
`;

/**
 * Progressive enhancement only: copy buttons for secrets, dates in the browser's own time zone,
 * and focus on the error summary of a refused form. Every page works without it.
 */
export const CONSOLE_JS = `(function () {
  'use strict';
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('button[data-copy]').forEach(function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener('click', function () {
        var id = button.getAttribute('data-copy');
        var input = document.getElementById(id);
        var note = document.querySelector('[data-copied-for="' + id + '"]');
        navigator.clipboard.writeText(input.value).then(function () {
          if (note) note.textContent = 'Copied to the clipboard.';
        }, function () {
          input.select();
          if (note) note.textContent = 'Select the text and copy it.';
        });
      });
    });
    var format = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    document.querySelectorAll('time[datetime]').forEach(function (time) {
      var date = new Date(time.getAttribute('datetime'));
      if (!isNaN(date.getTime())) time.textContent = format.format(date);
    });
    var summary = document.getElementById('error-summary');
    if (summary) summary.focus();
  });
})();
`;
