/**
 * `npm run bench:console [-- --requests N --tokens N --events N --json FILE]`
 *
 * The web console's page times at the size issue 16 names: 10,000 PATs and SATs and 100,000
 * audit events in one organization. Tessera is `node dist/src/cli.js serve` (one worker) on
 * PostgreSQL and Redis with the shipped configuration, as test/bench/run.ts starts it.
 *
 * - Tokens are seeded in bulk SQL the way the token service stores them (a SHA-256 of a secret
 *   nobody keeps): half SATs of one service account, half PATs (a tenth of them, 500, of the
 *   signed-in administrator, the rest spread over 20 users), created over the last 60 days and
 *   expiring over the next 120.
 * - Audit events go through the audit writer itself (src/audit/audit-writer.ts), with a clock
 *   that spreads them over the last 30 days, so the hash chain is the writer's own and
 *   `tessera audit verify` passes on it; they start the chain, so its order is its time order
 *   as in a real trail.
 * - The administrator signs in to the console over HTTP as a browser would: authorization code
 *   + PKCE through Tessera's sign-in page, cookies kept in a jar.
 * - Every console page is then requested N times, one at a time, with the session cookie; each
 *   answer must be a 200 HTML page holding the page's marker. p50/p95/max per page.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { resolve } from 'node:path';

import { createAuditRepository } from '../../src/storage/audit-repository.js';
import { createAuditWriter } from '../../src/audit/audit-writer.js';
import { createLogger } from '../../src/http/logger.js';
import { newId } from '../../src/storage/ids.js';
import { generateToken, hashToken } from '../../src/tokens/format.js';
import { openPostgres, openRedis } from '../helpers/backends.js';
import { browserless, hiddenField, interactionPath } from '../helpers/sign-in.js';
import { TEST_COOKIE_KEYS, TEST_KEK } from '../helpers/token-fixtures.js';
import { installationEnv, startTessera, tesseraCli } from './processes.js';
import type { Server } from './processes.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const TOKENS = arg('tokens', 10_000);
const EVENTS = arg('events', 100_000);
const REQUESTS = arg('requests', 40);
const WARMUP = 3;
const TARGET_P95_MS = 100;
/** `--keep`: leave the schema in place (its name is printed) to look at the plans afterwards. */
const KEEP = argv.includes('--keep');
const JSON_OUT = argv.includes('--json') ? resolve(argv[argv.indexOf('--json') + 1]!) : undefined;
const DAY = 86_400_000;
const SCOPE = 'orders:read';

if (Number(process.versions.node.split('.')[0]) < 22) {
  console.error(`Node ${process.version}: Tessera runs on Node 22 or newer; run the benchmark through npm run bench:console, which fetches one`);
  process.exit(1);
}

const log = (message: string) => process.stderr.write(`[bench:console] ${message}\n`);
const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function management(server: Server, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

/** Signs in to the console as a browser does; returns the browser's request function, cookies kept. */
async function signInToConsole(server: Server, username: string, password: string) {
  const b = browserless(server);
  let step = await b.follow('/console/sign-in');
  for (let pages = 0; pages < 4 && !new URL(step.url).pathname.startsWith('/console/'); pages++) {
    const path = interactionPath(step.url);
    const html = step.html!;
    if (!html.includes(`action="${path}/login"`)) throw new Error(`unexpected page ${step.url}:\n${html.slice(0, 1000)}`);
    const response = await b.request(`${path}/login`, { form: { csrf: hiddenField(html, 'csrf'), username, password } });
    if (response.status !== 303) throw new Error(`console sign-in refused: ${response.status}`);
    step = await b.follow(response.headers.get('location')!);
  }
  if (step.response.status !== 200 || !step.html?.includes('<h1>My tokens</h1>')) throw new Error(`the console did not open: ${step.url} ${step.response.status}`);
  return b;
}

const pg = await openPostgres({ max: 4 });
const redis = await openRedis();
const dataDir = mkdtempSync(resolve(tmpdir(), 'tessera-bench-console-'));
let server: Server | undefined;
try {
  const env = installationEnv(pg, redis, { kek: TEST_KEK, cookieKeys: TEST_COOKIE_KEYS }, dataDir);
  log(`Node ${process.version}, ${availableParallelism()} cores; bootstrapping a PostgreSQL + Redis installation`);
  const bootstrap = JSON.parse(await tesseraCli(env, ['bootstrap', '--json'])) as { organization_id: string; management_token: string; admin: { id?: string; username: string; password: string } };
  const org = bootstrap.organization_id;
  const admin = (await pg.db.query<{ id: string }>('SELECT id FROM users WHERE organization_id = $1 AND username = $2', [org, bootstrap.admin.username])).rows[0]!;
  /** The seeded tokens' ids, known up front so the seeded events can name them. */
  const tokenIds = Array.from({ length: TOKENS }, () => newId('tok'));

  // A trail whose order is its time order, as the writer makes it: the seeded events come first
  // in the chain (the few bootstrap wrote are set aside), then whatever the running server adds.
  await pg.db.query('DELETE FROM audit_events WHERE organization_id = $1', [org]);
  await pg.db.query('DELETE FROM audit_chain_heads WHERE organization_id = $1', [org]);
  // Audit events through the writer, spread evenly over the last 30 days, oldest first.
  log(`writing ${EVENTS.toLocaleString('en-US')} audit events through the audit writer`);
  let at = Date.now() - 30 * DAY;
  const step = (30 * DAY - 60_000) / EVENTS;
  const writer = createAuditWriter({ db: pg.db, repository: createAuditRepository(pg.db), clock: { now: () => at }, logger: createLogger({ level: 'warn' }), batchSize: 5000, maxQueue: EVENTS + 10_000, intervalMs: 60_000 });
  const actions = ['token.issued', 'token.issued', 'token.issued', 'login.succeeded', 'token.revoked', 'token.rotated', 'client.updated', 'login.failed'];
  for (let i = 0; i < EVENTS; i += 1) {
    at += step;
    const action = actions[i % actions.length]!;
    const user = action.startsWith('login.') || i % 2 === 0;
    writer.record({
      organizationId: org,
      actor: user ? { type: 'user', id: admin.id, name: bootstrap.admin.username } : { type: 'client', id: `tessera-cli.${org}` },
      action,
      target: action === 'client.updated' ? { type: 'client', id: `tessera-cli.${org}` } : action.startsWith('login.') ? { type: 'user', id: admin.id } : { type: 'reference_token', id: tokenIds[i % TOKENS]! },
      outcome: action === 'login.failed' ? 'failure' : 'success',
      ip: '127.0.0.1',
      details: action === 'token.issued' ? { grant_type: 'client_credentials', scopes: [SCOPE] } : action === 'token.revoked' ? { reason: 'revoked_by_api' } : {},
    });
    if (writer.pending() >= 20_000) await writer.flush();
  }
  await writer.close();

  server = await startTessera('Tessera, 1 worker', env, { workers: 1 });
  const mt = bootstrap.management_token;

  // A little of everything an organization has, through the Management API.
  const api = await management(server, mt, 'POST', '/resource-servers', { identifier: 'https://orders.bench.test', name: 'Orders', scopes: [{ name: SCOPE, description: 'Read orders' }, 'orders:write'], token_format: 'jwt' });
  const account = await management(server, mt, 'POST', '/service-accounts', { name: 'deploy-bot', description: 'Deploys' });
  const users: string[] = [];
  for (let i = 0; i < 20; i += 1) users.push((await management(server, mt, 'POST', '/users', { username: `user${i}`, role: i < 2 ? 'admin' : 'member', password: 'correct horse battery staple' })).id);
  const client = await management(server, mt, 'POST', '/clients', { name: 'Order sync', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scopes: [SCOPE], resources: [api.identifier], service_account_id: account.id });
  await management(server, mt, 'POST', '/initial-access-tokens', { expires_in: 86400, scopes: [SCOPE], resources: [api.identifier] });

  // Tokens, in bulk: half PATs of the administrator, half SATs of the service account.
  log(`seeding ${TOKENS.toLocaleString('en-US')} PATs and SATs`);
  const now = Date.now();
  for (let done = 0; done < TOKENS; done += 5000) {
    const n = Math.min(5000, TOKENS - done);
    const ids = tokenIds.slice(done, done + n);
    const index = Array.from({ length: n }, (_, k) => done + k);
    await pg.db.query(
      `INSERT INTO reference_tokens (id, organization_id, type, name, user_id, service_account_id, scopes, resources, secret_hash, created_by, created_at, issued_at, expires_at, lifetime_seconds, last_used_at, use_count)
       SELECT k.id, $1, CASE WHEN k.i % 2 = 0 THEN 'pat' ELSE 'sat' END, 'seed ' || k.i,
              CASE WHEN k.i % 20 = 0 THEN $2 WHEN k.i % 2 = 0 THEN ($10::text[])[1 + (k.i / 2) % 20] END, CASE WHEN k.i % 2 = 1 THEN $3 END,
              $4::jsonb, $5::jsonb, k.hash, 'bench', c.at, c.at, c.at + interval '120 days' + (k.i % 60) * interval '1 day', 10368000,
              CASE WHEN k.i % 3 = 0 THEN NULL ELSE c.at + interval '1 day' END, k.i % 50
         FROM unnest($6::text[], $7::bytea[], $8::int[]) AS k(id, hash, i),
              LATERAL (SELECT to_timestamp($9::double precision / 1000) - (k.i % 60) * interval '1 day' - interval '60 days' AS at) c`,
      [org, admin.id, account.id, JSON.stringify([SCOPE]), JSON.stringify([api.identifier]), ids, ids.map(() => hashToken(generateToken('pat'))), index, now, users],
    );
  }

  // Thirty days of PAT and SAT uses, as the batched usage write counts them per day.
  await pg.db.query(
    `INSERT INTO reference_token_usage_daily (organization_id, day, uses)
     SELECT $1, d::date, 20000 + (extract(doy FROM d)::int % 7) * 3000 FROM generate_series(now() - interval '29 days', now(), interval '1 day') AS d
     ON CONFLICT (organization_id, day) DO UPDATE SET uses = reference_token_usage_daily.uses + EXCLUDED.uses`,
    [org],
  );
  await pg.db.query('VACUUM (ANALYZE) reference_tokens');
  await pg.db.query('VACUUM (ANALYZE) audit_events');
  const verify = await tesseraCli(env, ['audit', 'verify', '--organization', org]);
  log(`audit chain: ${verify.trim()}`);

  // The administrator signs in to the console.
  const browser = await signInToConsole(server, bootstrap.admin.username, bootstrap.admin.password);
  const firstPat = (await pg.db.query<{ id: string }>("SELECT id FROM reference_tokens WHERE user_id = $1 AND type = 'pat' ORDER BY created_at DESC LIMIT 1", [admin.id])).rows[0]!.id;
  const pages: { path: string; marker: string }[] = [
    { path: '/console/tokens', marker: '<h1>My tokens</h1>' },
    { path: '/console/tokens/new', marker: '<h1>Create a personal access token</h1>' },
    { path: `/console/tokens/${firstPat}/rotate`, marker: '<h1>Rotate seed' },
    { path: '/console/users', marker: '<h1>Users</h1>' },
    { path: `/console/users/${admin.id}`, marker: `<h1>User ${bootstrap.admin.username}</h1>` },
    { path: '/console/service-accounts', marker: '<h1>Service accounts</h1>' },
    { path: `/console/service-accounts/${account.id}`, marker: '<h1>Service account deploy-bot</h1>' },
    { path: '/console/clients', marker: '<h1>Clients</h1>' },
    { path: '/console/apis', marker: '<h1>APIs</h1>' },
    { path: '/console/initial-access-tokens', marker: '<h1>Initial access tokens</h1>' },
    { path: '/console/organization', marker: '<h1>Organization ' },
    { path: '/console/lockouts', marker: '<h1>Sign-in lock-outs</h1>' },
    { path: `/console/clients/${client.client_id}`, marker: '<h1>Client Order sync</h1>' },
    { path: `/console/apis/${api.id}`, marker: '<h1>API Orders</h1>' },
    { path: '/console/inventory', marker: '<h1>Token inventory</h1>' },
    { path: '/console/inventory?kind=sat&expiring=30', marker: '<h1>Token inventory</h1>' },
    { path: '/console/activity', marker: 'Tokens issued per day</title>' },
    { path: '/console/audit', marker: '<h1>Audit trail</h1>' },
    { path: '/console/audit?action=token.revoked', marker: '<h1>Audit trail</h1>' },
  ];

  log(`requesting each of ${pages.length} pages ${REQUESTS} times (after ${WARMUP} unmeasured), one request at a time`);
  const results: { path: string; p50: number; p95: number; max: number; bytes: number }[] = [];
  for (const page of pages) {
    const samples: number[] = [];
    let bytes = 0;
    for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
      const started = performance.now();
      const response = await browser.request(page.path);
      const html = await response.text();
      const elapsed = performance.now() - started;
      if (response.status !== 200 || !(response.headers.get('content-type') ?? '').startsWith('text/html') || !html.includes(page.marker)) {
        throw new Error(`${page.path}: ${response.status} ${response.headers.get('content-type')}, marker ${JSON.stringify(page.marker)} ${html.includes(page.marker) ? 'found' : 'missing'}:\n${html.slice(0, 1500)}`);
      }
      if (i >= WARMUP) samples.push(elapsed);
      bytes = html.length;
    }
    samples.sort((x, y) => x - y);
    const pct = (p: number) => samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)]!;
    results.push({ path: page.path.replace(firstPat, ':id').replace(admin.id, ':id').replace(account.id, ':id').replace(client.client_id, ':id').replace(api.id, ':id'), p50: pct(50), p95: pct(95), max: samples.at(-1)!, bytes });
    log(`${page.path}: p50 ${fmt(pct(50))} ms, p95 ${fmt(pct(95))} ms`);
  }

  const header = ['page', 'p50 ms', 'p95 ms', 'max ms', 'HTML KiB', `p95 ≤ ${TARGET_P95_MS} ms`];
  const lines = [header, header.map(() => '---')];
  for (const r of results) lines.push([`\`${r.path}\``, fmt(r.p50), fmt(r.p95), fmt(r.max), fmt(r.bytes / 1024), r.p95 <= TARGET_P95_MS ? 'yes' : '**no**']);
  const table = lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
  console.log(`\nConsole pages: Tessera compiled (\`tessera serve\`, 1 worker, PostgreSQL + Redis, log level info), Node ${process.version}, ${availableParallelism()} cores shared by server, databases and client.`);
  console.log(`${TOKENS.toLocaleString('en-US')} PATs and SATs and ${EVENTS.toLocaleString('en-US')} audit events in the organization; each page ${REQUESTS} times one after another (after ${WARMUP} unmeasured), every answer checked (200, HTML, the page's heading).\n`);
  console.log(table);
  console.log(`\nload average at the end: ${(await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  if (JSON_OUT) writeFileSync(JSON_OUT, `${JSON.stringify({ node: process.version, tokens: TOKENS, events: EVENTS, requests: REQUESTS, results, table }, null, 2)}\n`);
  const missed = results.filter((r) => r.p95 > TARGET_P95_MS);
  if (missed.length) {
    log(`${missed.length} page(s) over ${TARGET_P95_MS} ms at p95: ${missed.map((r) => r.path).join(', ')}`);
    process.exitCode = 1;
  }
} finally {
  await server?.stop();
  if (KEEP) log(`schema kept: ${pg.schema}`);
  await Promise.all([KEEP ? pg.db.close() : pg.close(), redis.close()]);
  rmSync(dataDir, { recursive: true, force: true });
}
