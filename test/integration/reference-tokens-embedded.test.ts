/**
 * The PAT/SAT lifecycle on the embedded default (PGlite + in-process store): issue, introspect,
 * usage written in a batch, rotate, revoke, idle revocation. Same code paths as production, the
 * other backend.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestClock } from '../helpers/backends.js';
import { createResourceServer, createServiceAccount, startTessera } from '../helpers/token-fixtures.js';
import type { ResourceServerFixture, RunningTessera } from '../helpers/token-fixtures.js';

const clock = createTestClock();
let dataDir: string;
let running: RunningTessera;
let token: string;
let orders: ResourceServerFixture;

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${running.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function introspect(value: string) {
  const response = await fetch(`${running.url}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: value, client_id: orders.clientId, client_secret: orders.clientSecret }).toString(),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { active: boolean };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tessera-embedded-'));
  running = await startTessera({ clock, dataDir });
  token = running.tessera.bootstrapped!.management_token;
  const org = running.tessera.bootstrapped!.organization_id;
  orders = await createResourceServer({ db: running.tessera.db, envelope: running.tessera.envelope }, org, { scopes: ['orders:read'] });
}, 60_000);

afterAll(async () => {
  await running?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('reference tokens on PGlite + the in-process store', () => {
  it('issues, introspects (client_secret_post), counts use, rotates, revokes and revokes idle tokens', async () => {
    const account = await createServiceAccount(running.tessera.db, running.tessera.bootstrapped!.organization_id);
    const issued = await api('POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'embedded', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 86400 });
    expect(issued.status).toBe(201);
    expect(await introspect(issued.body.token)).toMatchObject({ active: true, token_kind: 'sat', sub: account.id });
    expect(await introspect(issued.body.token)).toMatchObject({ active: true });
    await running.tessera.usage.flush();
    expect((await api('GET', `/tokens/${issued.body.id}`)).body).toMatchObject({ use_count: 2, usage: [{ resource: orders.identifier, use_count: 2 }] });

    const rotated = await api('POST', `/tokens/${issued.body.id}/rotate`, {});
    expect(rotated.status).toBe(200);
    expect((await introspect(rotated.body.token)).active).toBe(true);
    expect((await introspect(issued.body.token)).active).toBe(true);
    expect((await api('DELETE', `/tokens/${issued.body.id}`)).status).toBe(204);
    expect((await introspect(rotated.body.token)).active).toBe(false);

    const idle = await api('POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'idle', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 200 * 86400 });
    const busy = await api('POST', '/tokens', { type: 'sat', service_account_id: account.id, name: 'busy', scopes: ['orders:read'], resources: [orders.identifier], expires_in: 200 * 86400 });
    clock.advance(91 * 86_400_000);
    // Used just now, and only counted in memory: the job must see that use and spare it.
    expect((await introspect(busy.body.token)).active).toBe(true);
    // The idle SAT and the bootstrap management SAT.
    expect(await running.tessera.tokenService.revokeIdle()).toBe(2);
    expect((await introspect(idle.body.token)).active).toBe(false);
    expect((await introspect(busy.body.token)).active).toBe(true);
    // The bootstrap management SAT was idle too.
    expect((await api('GET', '/tokens?limit=1')).status).toBe(401);
  });
});
