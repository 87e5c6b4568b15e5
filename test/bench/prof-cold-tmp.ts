import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { openPostgres, openRedis } from '../helpers/backends.js';
import { TEST_COOKIE_KEYS, TEST_KEK } from '../helpers/token-fixtures.js';
import { freePort, tesseraCli, CLI } from './processes.js';
import { runWrk } from './wrk.js';
import { newId } from '../../src/storage/ids.js';
import { generateToken, hashToken } from '../../src/tokens/format.js';
const pg = await openPostgres({ max: 4 });
const redis = await openRedis();
const dataDir = mkdtempSync(resolve(tmpdir(), 'prof-'));
const env: Record<string, string> = { NODE_ENV: 'bench', DATABASE_URL: `${pg.url}?options=${encodeURIComponent(`-c search_path=${pg.schema}`)}`, REDIS_URL: redis.url, TESSERA_REDIS_PREFIX: redis.prefix, TESSERA_KEK: TEST_KEK, TESSERA_COOKIE_KEYS: TEST_COOKIE_KEYS, TESSERA_DATA_DIR: dataDir, TESSERA_ISSUER: 'http://127.0.0.1:3999' };
const b = JSON.parse(await tesseraCli(env, ['bootstrap', '--json']));
const port = await freePort();
const child = spawn(process.execPath, [...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), CLI, 'serve', '--workers', '1'], { env: { PATH: process.env.PATH!, ...env, PORT: String(port) }, stdio: 'inherit' });
const url = `http://127.0.0.1:${port}`;
for (;;) { if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 200)); }
const m = (p: string, body: unknown) => fetch(`${url}/api/v1${p}`, { method: 'POST', headers: { authorization: `Bearer ${b.management_token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as any);
const api = await m('/resource-servers', { identifier: 'https://o.b.test', name: 'O', scopes: ['orders:read'], token_format: 'jwt' });
const sa = await m('/service-accounts', { name: 'b' });
const N = Number(process.argv[2] ?? 100000);
const cold: string[] = [];
for (let done = 0; done < N; done += 20000) {
  const tokens = Array.from({ length: 20000 }, () => generateToken('sat'));
  cold.push(...tokens);
  await pg.db.query(`INSERT INTO reference_tokens (id, organization_id, type, name, service_account_id, scopes, resources, secret_hash, created_by, expires_at, lifetime_seconds)
   SELECT id, $1, 'sat', 'seed', $2, '["orders:read"]'::jsonb, $3::jsonb, hash, 'bench', now() + interval '30 days', 2592000 FROM unnest($4::text[], $5::bytea[]) AS k(id, hash)`,
   [b.organization_id, sa.id, JSON.stringify([api.identifier]), tokens.map(() => newId('tok')), tokens.map((t) => hashToken(t))]);
}
await pg.db.query('VACUUM (ANALYZE) reference_tokens');
const stats = async () => (await pg.db.query(`SELECT relname, seq_scan, seq_tup_read, idx_scan, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND (seq_scan > 0 OR idx_scan > 0) ORDER BY seq_tup_read DESC LIMIT 8`, [pg.schema])).rows;
console.log(await stats());
const spec = { url: `${url}/token/introspection`, headers: { authorization: 'Basic ' + Buffer.from(`${api.introspection_client_id}:${api.introspection_client_secret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, bodies: cold.map((t) => `token=${t}`), expect: ['"active":true'] };
const r = await runWrk({ ...spec, connections: 32, seconds: Number(process.argv[3] ?? 5) });
console.log('cold', Math.round(r.rps), r.p50, r.p99, r.wrong, r.sample, r.wrapped);
await new Promise((r) => setTimeout(r, 6000));
console.log(await stats());
const ex = await pg.db.query(`EXPLAIN ANALYZE SELECT t.*, COALESCE(u.username, sa.name) AS owner_name FROM reference_tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN service_accounts sa ON sa.id = t.service_account_id WHERE t.secret_hash = $1 OR t.previous_secret_hash = $1`, [hashToken(cold[N - 1]!)]);
console.log(ex.rows.map((x: any) => x['QUERY PLAN']).join('\n'));
child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
await pg.close(); await redis.close();
