/**
 * Signing key rotation driven by the operator's command, `tessera keys rotate`, as a child
 * process against the same PostgreSQL schema as a running server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { postgresRedisSkipReason } from '../helpers/backends.js';
import { runCli, urlWithSchema } from '../helpers/cli.js';
import { eventually, introspect, jwtAccessToken, kidOf, kids, PUBLISH_BEFORE_SIGN, verifiesAgainstJwks } from '../helpers/keys.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

describe.skipIf(postgresRedisSkipReason !== undefined)('signing key rotation through `tessera keys rotate`', () => {
  let server: TestServer;
  let cliEnv: Record<string, string>;

  beforeAll(async () => {
    // The CLI announces on its own Redis channel; this node also reloads every second, which is
    // how it would catch a rotation whose announcement it missed.
    server = await startTestServer('postgres+redis', { overrides: { ...EXAMPLE_SEED, keys: { publishBeforeSignSeconds: PUBLISH_BEFORE_SIGN, reloadIntervalSeconds: 1 } } });
    cliEnv = {
      DATABASE_URL: urlWithSchema(server.env.DATABASE_URL!, server.schema!),
      REDIS_URL: server.env.REDIS_URL!,
      TESSERA_KEK: server.env.TESSERA_KEK!,
      TESSERA_COOKIE_KEYS: server.env.TESSERA_COOKIE_KEYS!,
      TESSERA_DATA_DIR: server.env.TESSERA_DATA_DIR!,
    };
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('stages, waits, force-promotes, and the running server follows; older tokens still verify', { timeout: 240_000 }, async () => {
    const before = await jwtAccessToken(server);
    const oldKid = kidOf(before);

    const stage = await runCli(['keys', 'rotate'], cliEnv);
    expect(stage.stderr).not.toMatch(/error|cannot/i);
    expect(stage.code).toBe(0);
    const stagedKid = /^ES256: staged (\S+)$/m.exec(stage.stdout)?.[1];
    expect(stagedKid).toBeDefined();
    expect(stagedKid).not.toBe(oldKid);
    expect(await eventually(() => kids(server), (k) => k.includes(stagedKid!))).toContain(stagedKid);
    expect(kidOf(await jwtAccessToken(server))).toBe(oldKid);

    const wait = await runCli(['keys', 'rotate'], cliEnv);
    expect(wait.code).toBe(0);
    expect(wait.stdout).toMatch(new RegExp(`^ES256: waiting ${stagedKid} \\(may be promoted after \\S+Z; run again then\\)$`, 'm'));

    const promote = await runCli(['keys', 'rotate', '--force'], cliEnv);
    expect(promote.code).toBe(0);
    expect(promote.stdout).toMatch(new RegExp(`^ES256: promoted ${stagedKid}$`, 'm'));
    const after = await eventually(() => jwtAccessToken(server), (t) => kidOf(t) === stagedKid);
    expect(kidOf(after)).toBe(stagedKid);

    expect(await kids(server)).toEqual(expect.arrayContaining([oldKid, stagedKid]));
    expect((await verifiesAgainstJwks(server, before)).sub).toBe('worker');
    expect(await introspect(server, before)).toMatchObject({ active: true, sub: 'worker' });
    expect(await introspect(server, after)).toMatchObject({ active: true, sub: 'worker' });
  });
});
