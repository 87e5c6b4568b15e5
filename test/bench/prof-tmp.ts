import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { openPostgres, openRedis } from '../helpers/backends.js';
import { TEST_COOKIE_KEYS, TEST_KEK } from '../helpers/token-fixtures.js';
import { freePort, tesseraCli, CLI } from './processes.js';
import { runWrk } from './wrk.js';
const pg = await openPostgres({ max: 4 });
const redis = await openRedis();
const dataDir = mkdtempSync(resolve(tmpdir(), 'prof-'));
const env: Record<string, string> = { NODE_ENV: 'bench', DATABASE_URL: `${pg.url}?options=${encodeURIComponent(`-c search_path=${pg.schema}`)}`, REDIS_URL: redis.url, TESSERA_REDIS_PREFIX: redis.prefix, TESSERA_KEK: TEST_KEK, TESSERA_COOKIE_KEYS: TEST_COOKIE_KEYS, TESSERA_DATA_DIR: dataDir, TESSERA_ISSUER: 'http://127.0.0.1:3999' };
const b = JSON.parse(await tesseraCli(env, ['bootstrap', '--json']));
const port = await freePort();
const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/prof', CLI, 'serve', '--workers', '1'], { env: { PATH: process.env.PATH!, ...env, PORT: String(port) }, stdio: 'inherit' });
const url = `http://127.0.0.1:${port}`;
for (;;) { if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break; await new Promise((r) => setTimeout(r, 200)); }
const m = (p: string, body: unknown) => fetch(`${url}/api/v1${p}`, { method: 'POST', headers: { authorization: `Bearer ${b.management_token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as any);
const api = await m('/resource-servers', { identifier: 'https://o.b.test', name: 'O', scopes: ['orders:read'], token_format: 'jwt' });
const sa = await m('/service-accounts', { name: 'b' });
const w = await m('/clients', { name: 'w', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scopes: ['orders:read'], resources: [api.identifier], service_account_id: sa.id });
const mode = process.argv[2] ?? 'cc';
let spec: any;
if (mode === 'cc') spec = { url: `${url}/token`, headers: { authorization: 'Basic ' + Buffer.from(`${w.client_id}:${w.client_secret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&resource=${encodeURIComponent(api.identifier)}&scope=orders:read`, expect: ['"access_token":"ey'] };
else { const t = await m('/tokens', { type: 'sat', service_account_id: sa.id, name: 'x', scopes: ['orders:read'], resources: [api.identifier], expires_in: 86400 }); spec = { url: `${url}/token/introspection`, headers: { authorization: 'Basic ' + Buffer.from(`${api.introspection_client_id}:${api.introspection_client_secret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${t.token}`, expect: ['"active":true'] }; }
const r = await runWrk({ ...spec, connections: 32, seconds: Number(process.argv[3] ?? 8) });
console.log(mode, Math.round(r.rps), r.p99, r.wrong, r.sample);
child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
await pg.close(); await redis.close();
