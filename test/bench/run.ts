/**
 * `npm run bench [-- --tokens N --duration S --connections C]`
 *
 * Starts Tessera (a child process, on real PostgreSQL + Redis) and, in the same run, a plain
 * oidc-provider 9 (another child process, in-memory adapter), and drives both with the same
 * load generator (autocannon, a third process) at the same concurrency. Prints one table:
 * requests/s, p50 and p99 latency, Tessera/plain ratios, and the targets of the reference-token
 * issue; then how fast a revocation on one Tessera node reaches a second node.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';

import { secretContext } from '../../src/domain/client-metadata.js';
import { createEnvelope } from '../../src/keys/envelope.js';
import { newId } from '../../src/storage/ids.js';
import { generateToken, hashToken } from '../../src/tokens/format.js';
import { openPostgres, openRedis } from '../helpers/backends.js';
import { sharedNodeEnv, spawnNode } from '../helpers/spawn-node.js';
import type { SpawnedNode } from '../helpers/spawn-node.js';
import { createResourceServer, createServiceAccount, TEST_KEK } from '../helpers/token-fixtures.js';
import { PLAIN_CLIENT, PLAIN_JWT_RESOURCE, PLAIN_OPAQUE_RESOURCE } from './plain-client.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const STORED_TOKENS = arg('tokens', 1000);
const DURATION = arg('duration', 4);
const WARMUP = arg('warmup', 1);
/** Each pair of loads runs this many times, alternating, and the median round counts: the
 * machine may be shared, and alternating spreads any background load over both sides. */
const ROUNDS = arg('rounds', 3);
const CONNECTIONS = arg('connections', 32);
const BASE_TOKENS = 1000;
/** `--profile DIR`: node A writes a V8 CPU profile there when it stops (open it in Chrome DevTools). */
const PROFILE_DIR = argv.includes('--profile') ? resolve(argv[argv.indexOf('--profile') + 1]!) : undefined;
const ROOT = resolve(import.meta.dirname, '../..');
/**
 * Every process of the benchmark runs compiled JavaScript, as the production image does (see the
 * Dockerfile): the TypeScript loader used in development adds work to every function it wraps.
 */
const DIST = resolve(ROOT, 'dist');
const FORM = 'application/x-www-form-urlencoded';

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  total: number;
  /** Server CPU time per request (user + system, whole process tree), in microseconds. */
  cpuUs?: number;
}

/**
 * CPU seconds used so far by a process and its descendants (Linux /proc; clock ticks at 100 Hz).
 * On a shared machine requests/s depend on what else runs; CPU per request does not, so the
 * table shows both, and the CPU ratio says what the throughput ratio is when the server has the
 * cores to itself.
 */
function treeCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    let ticks = Number(fields[11]) + Number(fields[12]);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) ticks += treeCpuSeconds(Number(child)) * 100;
    }
    return ticks / 100;
  } catch {
    return 0;
  }
}

function build(): void {
  execFileSync(resolve(ROOT, 'node_modules/.bin/tsc'), ['-p', resolve(ROOT, 'tsconfig.json'), '--outDir', DIST], { stdio: 'inherit' });
  // The code finds config/ and migrations/ two levels above its module (dist/src/config -> dist/config).
  for (const dir of ['config', 'migrations']) if (!existsSync(resolve(DIST, dir))) symlinkSync(resolve(ROOT, dir), resolve(DIST, dir));
}

function runChild(script: string, args: string[]): { child: ChildProcess; firstLine: Promise<string> } {
  const child = spawn(process.execPath, [resolve(DIST, 'test/bench', script.replace(/\.ts$/, '.js')), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const firstLine = new Promise<string>((ok, fail) => {
    lines.once('line', ok);
    child.once('exit', (code) => fail(new Error(`${script} exited with ${code}`)));
  });
  return { child, firstLine };
}

async function load(spec: { url: string; headers: Record<string, string>; body?: string; bodies?: string[]; serverPid?: number }): Promise<LoadResult> {
  const { serverPid, ...rest } = spec;
  const measure = { method: 'POST', connections: CONNECTIONS, durationSeconds: DURATION, warmupSeconds: 0, ...rest };
  if (WARMUP > 0) {
    const warm = runChild('load.ts', [JSON.stringify({ ...measure, durationSeconds: WARMUP })]);
    await warm.firstLine;
    warm.child.kill();
  }
  const cpuBefore = serverPid ? treeCpuSeconds(serverPid) : 0;
  const { child, firstLine } = runChild('load.ts', [JSON.stringify(measure)]);
  const line = await firstLine;
  child.kill();
  const result = JSON.parse(line) as LoadResult;
  if (serverPid && result.total > 0) result.cpuUs = ((treeCpuSeconds(serverPid) - cpuBefore) / result.total) * 1e6;
  return result;
}

/** Waits (at most a minute) until the cores are at least 90% idle over a second. */
async function untilIdle(): Promise<void> {
  const sample = () => readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  for (let i = 0; i < 60; i += 1) {
    const before = sample();
    await new Promise((r) => setTimeout(r, 1000));
    const delta = sample().map((v, k) => v - before[k]!);
    const total = delta.reduce((x, y) => x + y, 0);
    if (total > 0 && (delta[3]! + delta[4]!) / total >= 0.9) return;
  }
  log('the machine did not become idle within a minute; measuring anyway');
}

async function post(url: string, authorization: string, form: Record<string, string>) {
  const response = await fetch(url, { method: 'POST', headers: { authorization, 'content-type': FORM }, body: new URLSearchParams(form).toString() });
  const body = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${url}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

const pg = await openPostgres({ max: 4 });
const redis = await openRedis();
const dataDir = mkdtempSync(resolve(tmpdir(), 'tessera-bench-'));
const children: ChildProcess[] = [];
const nodes: SpawnedNode[] = [];
try {
  // The shipped log level (config/default.json): successful answers are not logged at it.
  const env = sharedNodeEnv(pg, redis, { NODE_ENV: 'bench', LOG_LEVEL: 'info', TESSERA_DATA_DIR: dataDir });
  log('compiling');
  build();
  log('starting Tessera node A and the plain oidc-provider');
  const a = await spawnNode(env, { timeoutMs: 120_000, compiled: DIST, nodeArgs: PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [] });
  nodes.push(a);
  const plainProcess = runChild('plain-provider.ts', []);
  children.push(plainProcess.child);
  const plainUrl = (JSON.parse(await plainProcess.firstLine) as { url: string }).url;

  // Fixtures, written the way the Management API would (resource servers, a service account, a client).
  const organizationId = a.bootstrapped!.organization_id;
  const envelope = createEnvelope(Buffer.from(TEST_KEK, 'base64'));
  const jwtApi = await createResourceServer({ db: pg.db, envelope }, organizationId, { scopes: ['orders:read'], tokenFormat: 'jwt' });
  const opaqueApi = await createResourceServer({ db: pg.db, envelope }, organizationId, { scopes: ['orders:read'], tokenFormat: 'opaque' });
  const account = await createServiceAccount(pg.db, organizationId);
  const worker = { id: `worker-${randomBytes(3).toString('hex')}`, secret: randomBytes(24).toString('base64url') };
  await pg.db.query(
    `INSERT INTO clients (client_id, organization_id, kind, name, metadata, allowed_scopes, allowed_resources, secret_enc)
     VALUES ($1, $2, 'oauth', 'bench worker', $3, $4, $5, $6)`,
    [
      worker.id, organizationId,
      JSON.stringify({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }),
      JSON.stringify(['orders:read']), JSON.stringify([jwtApi.identifier, opaqueApi.identifier]),
      envelope.seal(worker.secret, secretContext(worker.id)),
    ],
  );

  // The stored reference tokens: BASE_TOKENS SATs whose secrets we know (the distinct-token load cycles through them).
  const known = Array.from({ length: BASE_TOKENS }, () => generateToken('sat'));
  await pg.db.query(
    `INSERT INTO reference_tokens (id, organization_id, type, name, service_account_id, scopes, resources, secret_hash, created_by, expires_at, lifetime_seconds)
     SELECT id, $1, 'sat', 'bench', $2, '["orders:read"]'::jsonb, $3::jsonb, hash, 'bench', now() + interval '30 days', 2592000
       FROM unnest($4::text[], $5::bytea[]) AS k(id, hash)`,
    [organizationId, account.id, JSON.stringify([jwtApi.identifier]), known.map(() => newId('tok')), known.map((t) => hashToken(t))],
  );
  const sat = known[0]!;

  const tesseraOpaque = String((await post(`${a.url}/token`, basic(worker.id, worker.secret), { grant_type: 'client_credentials', resource: opaqueApi.identifier, scope: 'orders:read' })).access_token);
  const tesseraJwt = String((await post(`${a.url}/token`, basic(worker.id, worker.secret), { grant_type: 'client_credentials', resource: jwtApi.identifier, scope: 'orders:read' })).access_token);
  const plainBasic = basic(PLAIN_CLIENT.client_id, PLAIN_CLIENT.client_secret);
  const plainOpaque = String((await post(`${plainUrl}/token`, plainBasic, { grant_type: 'client_credentials', resource: PLAIN_OPAQUE_RESOURCE, scope: 'orders:read' })).access_token);

  // Every load below must be measuring real, active answers.
  for (const [name, url, auth, token] of [
    ['plain opaque', plainUrl, plainBasic, plainOpaque],
    ['Tessera SAT', a.url, jwtApi.basic, sat],
    ['Tessera opaque', a.url, opaqueApi.basic, tesseraOpaque],
    ['Tessera JWT', a.url, jwtApi.basic, tesseraJwt],
  ] as const) {
    const answer = await post(`${url}/token/introspection`, auth, { token });
    if (answer.active !== true) throw new Error(`${name}: introspection is not active: ${JSON.stringify(answer)}`);
  }

  const pidOf = (url: string) => (url === plainUrl ? plainProcess.child.pid : a.child.pid);
  const introspection = (url: string, auth: string, token: string) => ({ url: `${url}/token/introspection`, serverPid: pidOf(url), headers: { authorization: auth, 'content-type': FORM }, body: new URLSearchParams({ token }).toString() });
  const distinct = { url: `${a.url}/token/introspection`, serverPid: pidOf(a.url), headers: { authorization: jwtApi.basic, 'content-type': FORM }, bodies: known.map((token) => new URLSearchParams({ token }).toString()) };
  const issuance = (url: string, auth: string, resource: string) => ({ url: `${url}/token`, serverPid: pidOf(url), headers: { authorization: auth, 'content-type': FORM }, body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'orders:read' }).toString() });

  log(`each load: ${WARMUP}s warm-up + ${DURATION}s measured, ${CONNECTIONS} connections, ${ROUNDS} alternating rounds (median)`);
  const median = (results: LoadResult[]) => [...results].sort((x, y) => x.rps - y.rps)[Math.floor(results.length / 2)]!;
  type Spec = Parameters<typeof load>[0];
  /** Runs the specs in turn, ROUNDS times, and returns each one's median round. */
  async function alternate(specs: [string, Spec][]): Promise<LoadResult[]> {
    const results: LoadResult[][] = specs.map(() => []);
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const [i, [name, spec]] of specs.entries()) {
        const result = await load(spec);
        log(`round ${round}: ${name}: ${Math.round(result.rps)} req/s, p99 ${result.p99} ms`);
        results[i]!.push(result);
      }
    }
    return results.map(median);
  }
  const [plainIntrospection, satResult, distinctResult, opaqueResult, jwtResult] = await alternate([
    ['plain: opaque introspection', introspection(plainUrl, plainBasic, plainOpaque)],
    ['Tessera: SAT introspection', introspection(a.url, jwtApi.basic, sat)],
    [`Tessera: SAT introspection over ${BASE_TOKENS} distinct tokens`, distinct],
    ['Tessera: opaque introspection', introspection(a.url, opaqueApi.basic, tesseraOpaque)],
    ['Tessera: JWT introspection', introspection(a.url, jwtApi.basic, tesseraJwt)],
  ]) as [LoadResult, LoadResult, LoadResult, LoadResult, LoadResult];
  const [plainIssuance, issuanceResult] = await alternate([
    ['plain: client credentials (ES256 JWT)', issuance(plainUrl, plainBasic, PLAIN_JWT_RESOURCE)],
    ['Tessera: client credentials (ES256 JWT, with audit trail)', issuance(a.url, basic(worker.id, worker.secret), jwtApi.identifier)],
  ]) as [LoadResult, LoadResult];

  let scaled: { sat: LoadResult; distinct: LoadResult } | undefined;
  if (STORED_TOKENS > BASE_TOKENS) {
    const extra = STORED_TOKENS - BASE_TOKENS;
    log(`seeding ${extra} more reference tokens in bulk`);
    const started = performance.now();
    for (let done = 0; done < extra; done += 25_000) {
      const n = Math.min(25_000, extra - done);
      await pg.db.query(
        `INSERT INTO reference_tokens (id, organization_id, type, name, service_account_id, scopes, resources, secret_hash, created_by, expires_at)
         SELECT 'tok_seed_' || ($3 + g), $1, 'sat', 'seed', $2, '["orders:read"]'::jsonb, '[]'::jsonb,
                sha256(convert_to('seed:' || ($3 + g) || ':' || $4, 'UTF8')), 'bench', now() + interval '30 days'
           FROM generate_series(1, $5) AS g`,
        [organizationId, account.id, done, randomBytes(8).toString('hex'), n],
      );
    }
    // PostgreSQL's own follow-up work on a million new rows (hint bits, autovacuum, the
    // checkpoint) would otherwise run during the measurement on the same two cores.
    await pg.db.query('VACUUM (ANALYZE) reference_tokens');
    await pg.db.query('CHECKPOINT').catch(() => log('CHECKPOINT needs a superuser; skipped'));
    log(`seeded in ${Math.round((performance.now() - started) / 1000)} s; waiting for the machine to be idle`);
    await untilIdle();
    const [satScaled, distinctScaled] = await alternate([
      [`Tessera: SAT introspection with ${STORED_TOKENS} stored tokens`, introspection(a.url, jwtApi.basic, sat)],
      [`Tessera: SAT introspection over ${BASE_TOKENS} distinct tokens with ${STORED_TOKENS} stored`, distinct],
    ]) as [LoadResult, LoadResult];
    scaled = { sat: satScaled, distinct: distinctScaled };
  }

  log('starting Tessera node B for revocation propagation');
  const b = await spawnNode(env, { timeoutMs: 120_000, compiled: DIST });
  nodes.push(b);
  const management = a.bootstrapped!.management_token;
  const samples: number[] = [];
  for (let i = 0; i < 50; i += 1) {
    const issued = await fetch(`${a.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${management}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'sat', service_account_id: account.id, name: 'propagation', scopes: ['orders:read'], resources: [jwtApi.identifier], expires_in: 3600 }),
    });
    const { id, token } = (await issued.json()) as { id: string; token: string };
    if ((await post(`${b.url}/token/introspection`, jwtApi.basic, { token })).active !== true) throw new Error('node B does not see a fresh token');
    const deleted = await fetch(`${a.url}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${management}` } });
    if (deleted.status !== 204) throw new Error(`revocation failed: ${deleted.status}`);
    const since = performance.now();
    while ((await post(`${b.url}/token/introspection`, jwtApi.basic, { token })).active === true) {
      if (performance.now() - since > 5000) throw new Error('node B never saw the revocation');
    }
    samples.push(performance.now() - since);
  }
  samples.sort((x, y) => x - y);
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)]!;

  // The table.
  const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows: string[][] = [];
  const cpuRatio = (t: LoadResult, p: LoadResult | undefined) => (t.cpuUs && p?.cpuUs ? p.cpuUs / t.cpuUs : undefined);
  const row = (scenario: string, t: LoadResult, p: LoadResult | undefined, target: string, met: boolean) =>
    rows.push([
      scenario,
      fmt(t.rps), fmt(t.p50, 1), fmt(t.p99, 1), t.cpuUs ? fmt(t.cpuUs) : '',
      p ? fmt(p.rps) : '', p ? fmt(p.p50, 1) : '', p ? fmt(p.p99, 1) : '', p?.cpuUs ? fmt(p.cpuUs) : '',
      p ? `${fmt(t.rps / p.rps, 2)}×` : '',
      cpuRatio(t, p) ? `${fmt(cpuRatio(t, p)!, 2)}×` : '',
      target, met ? 'yes' : 'NO',
      t.errors + t.non2xx > 0 || (p && p.errors + p.non2xx > 0) ? `errors ${t.errors + t.non2xx}/${p ? p.errors + p.non2xx : 0}` : '',
    ]);
  row('introspection: SAT vs plain opaque', satResult, plainIntrospection, '≥ 6×, p99 ≤ 5 ms', satResult.rps >= 6 * plainIntrospection.rps && satResult.p99 <= 5);
  row(`introspection: ${BASE_TOKENS} distinct SATs`, distinctResult, plainIntrospection, '≥ 6×', distinctResult.rps >= 6 * plainIntrospection.rps);
  row('introspection: Tessera opaque vs plain opaque', opaqueResult, plainIntrospection, '≥ 2×', opaqueResult.rps >= 2 * plainIntrospection.rps);
  row('introspection: Tessera JWT vs plain opaque', jwtResult, plainIntrospection, '≥ 2×', jwtResult.rps >= 2 * plainIntrospection.rps);
  row('client credentials, ES256 JWT (+ audit)', issuanceResult, plainIssuance, '≥ 1×', issuanceResult.rps >= plainIssuance.rps);
  if (scaled) {
    row(`introspection: SAT, ${fmt(STORED_TOKENS)} stored`, scaled.sat, satResult, 'within 10% of 1k', scaled.sat.rps >= 0.9 * satResult.rps);
    row(`introspection: ${BASE_TOKENS} distinct SATs, ${fmt(STORED_TOKENS)} stored`, scaled.distinct, distinctResult, 'within 10% of 1k', scaled.distinct.rps >= 0.9 * distinctResult.rps);
  }
  const header = ['scenario', 'Tessera req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'baseline req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'req/s ratio', 'CPU ratio', 'target (req/s)', 'met', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\nTessera vs plain oidc-provider 9 — ${CONNECTIONS} connections, median of ${ROUNDS} alternating ${DURATION}s loads, ${fmt(STORED_TOKENS)} stored reference tokens`);
  console.log('(baseline: the plain provider; in the "stored" rows, the same Tessera load at 1,000 stored tokens.');
  console.log(' CPU ratio = baseline CPU per request / Tessera CPU per request: the req/s ratio a CPU-bound server reaches with the cores to itself.');
  console.log(` load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${(await import('node:os')).cpus().length} cores)\n`);
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
  console.log(`\nrevocation on node A seen by node B (${samples.length} samples, measured from A's 204): p50 ${fmt(pct(50), 1)} ms, p99 ${fmt(pct(99), 1)} ms, max ${fmt(samples.at(-1)!, 1)} ms — target p99 ≤ 100 ms: ${pct(99) <= 100 ? 'yes' : 'NO'}`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([pg.close(), redis.close()]);
  rmSync(dataDir, { recursive: true, force: true });
}
