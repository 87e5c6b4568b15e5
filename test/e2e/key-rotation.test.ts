/**
 * Signing key rotation as a verifier sees it: a staged key is published before it signs, a
 * promoted key signs, tokens signed by the old key keep verifying until the retired key's
 * removal time, and every node (and the CLI) works on the same key set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends, createTestClock } from '../helpers/backends.js';
import type { TestClock } from '../helpers/backends.js';
import { eventually, introspect, jwtAccessToken, kidOf, kids, PUBLISH_BEFORE_SIGN, signedIntrospectionKid, verifiesAgainstJwks } from '../helpers/keys.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

for (const backend of backends) {
  describe(`signing key rotation through the key service on ${backend.name}`, () => {
    let clock: TestClock;
    let server: TestServer;
    let second: TestServer | undefined;

    beforeAll(async () => {
      clock = createTestClock();
      // A long reload timer: a second node can only learn of the rotation through pub/sub.
      const overrides = { ...EXAMPLE_SEED, keys: { publishBeforeSignSeconds: PUBLISH_BEFORE_SIGN, reloadIntervalSeconds: 3600 } };
      server = await startTestServer(backend.name, { overrides, clock });
      if (backend.name === 'postgres+redis') second = await startTestServer(backend.name, { overrides, clock, shareStorageWith: server });
    });
    afterAll(async () => {
      await second?.stop();
      await server?.stop();
    });

    it('publishes a staged key before it signs, signs with it once promoted, and drops the retired key after the longest token lifetime', async () => {
      const before = await jwtAccessToken(server);
      const oldKid = kidOf(before);
      expect(await kids(server)).toContain(oldKid);
      // Tessera signs some responses itself (RFC 9701 introspection, RS256): the same rules apply.
      const oldRsKid = await signedIntrospectionKid(server, before);
      expect(await kids(server)).toContain(oldRsKid);

      // 1. Stage: the new key is published, but tokens keep the old kid.
      const staged = await server.tessera.keyService.rotate();
      await server.tessera.announceKeyChange();
      const stagedEs = staged.find((s) => s.alg === 'ES256')!;
      expect(stagedEs.action).toBe('staged');
      expect(stagedEs.kid).not.toBe(oldKid);
      expect(await kids(server)).toEqual(expect.arrayContaining([oldKid, stagedEs.kid]));
      expect(kidOf(await jwtAccessToken(server))).toBe(oldKid);
      expect(await signedIntrospectionKid(server, before)).toBe(oldRsKid);
      if (second) {
        // The other node hears the announcement (pub/sub), long before its reload timer.
        expect(await eventually(() => kids(second!), (k) => k.includes(stagedEs.kid))).toContain(stagedEs.kid);
        expect(kidOf(await jwtAccessToken(second))).toBe(oldKid);
      }

      // 2. Too early to promote: the staged key waits until it has been published long enough.
      const early = await server.tessera.keyService.rotate();
      expect(early.find((s) => s.alg === 'ES256')).toMatchObject({ action: 'waiting', kid: stagedEs.kid });
      await server.tessera.announceKeyChange();
      expect(kidOf(await jwtAccessToken(server))).toBe(oldKid);

      // 3. Promote: new tokens carry the new kid; the token issued before rotation still verifies.
      clock.advance((PUBLISH_BEFORE_SIGN + 1) * 1000);
      const promoted = await server.tessera.keyService.rotate();
      expect(promoted.find((s) => s.alg === 'ES256')).toMatchObject({ action: 'promoted', kid: stagedEs.kid });
      await server.tessera.announceKeyChange();
      const after = await jwtAccessToken(server);
      expect(kidOf(after)).toBe(stagedEs.kid);
      expect(await signedIntrospectionKid(server, before)).toBe(promoted.find((s) => s.alg === 'RS256')!.kid);
      expect(await kids(server)).toEqual(expect.arrayContaining([oldKid, stagedEs.kid]));
      expect((await verifiesAgainstJwks(server, before)).sub).toBe('worker');
      expect((await verifiesAgainstJwks(server, after)).sub).toBe('worker');
      expect(await introspect(server, before)).toMatchObject({ active: true, sub: 'worker' });
      expect(await introspect(server, after)).toMatchObject({ active: true, sub: 'worker' });
      if (second) {
        expect(kidOf(await eventually(() => jwtAccessToken(second!), (t) => kidOf(t) === stagedEs.kid))).toBe(stagedEs.kid);
        expect(await introspect(second, before)).toMatchObject({ active: true });
        expect(await introspect(second, after)).toMatchObject({ active: true });
      }

      // 4. Past the retired key's removal time (the longest token lifetime, a day) it is no longer published.
      clock.advance(86_400 * 1000 + 1000);
      await server.tessera.announceKeyChange();
      const published = await kids(server);
      expect(published).not.toContain(oldKid);
      expect(published).toContain(stagedEs.kid);
      expect(kidOf(await jwtAccessToken(server))).toBe(stagedEs.kid);
      if (second) expect(await eventually(() => kids(second!), (k) => !k.includes(oldKid))).not.toContain(oldKid);
    });
  });
}
