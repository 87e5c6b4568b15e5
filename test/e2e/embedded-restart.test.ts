/**
 * An embedded install (PGlite under the data directory, generated KEK and cookie keys) keeps
 * its organizations, signing keys and credentials across a restart, and writes bootstrap.json
 * only on the very first start.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { introspect, jwtAccessToken, kids } from '../helpers/keys.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

describe('restarting the embedded server', () => {
  let first: TestServer;
  let second: TestServer | undefined;

  beforeAll(async () => {
    // No TESSERA_KEK / TESSERA_COOKIE_KEYS: the embedded install generates and keeps its own.
    first = await startTestServer('pglite+memory', { overrides: EXAMPLE_SEED, env: { TESSERA_KEK: '', TESSERA_COOKIE_KEYS: '' } });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  it('keeps organizations, keys and credentials; bootstrap.json is not rewritten', { timeout: 90_000 }, async () => {
    const file = join(first.config.dataDir, 'bootstrap.json');
    const secrets = join(first.config.dataDir, 'secrets.json');
    const before = { bootstrap: readFileSync(file, 'utf8'), mtime: statSync(file).mtimeMs, secrets: readFileSync(secrets, 'utf8') };
    expect(JSON.parse(before.bootstrap)).toEqual(first.bootstrap);
    const token = await jwtAccessToken(first);
    const publishedBefore = (await kids(first)).sort();

    await first.running.stop();
    second = await startTestServer('pglite+memory', { overrides: EXAMPLE_SEED, shareStorageWith: first });

    expect(second.tessera.bootstrapped).toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe(before.bootstrap);
    expect(statSync(file).mtimeMs).toBe(before.mtime);
    expect(readFileSync(secrets, 'utf8')).toBe(before.secrets);
    expect((await kids(second)).sort()).toEqual(publishedBefore);

    const organization = await api(second, first.managementToken, 'GET', '/organization');
    expect(organization.status).toBe(200);
    expect(organization.body).toMatchObject({ id: first.bootstrap.organization_id, name: 'default' });
    expect(await introspect(second, token)).toMatchObject({ active: true, sub: 'worker' });
  });
});
