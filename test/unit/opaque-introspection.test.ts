/**
 * Opaque access tokens are introspected from what the engine's models return
 * (src/oidc/engine-tokens.ts), with the engine's grant-binding rules and its token type and
 * confirmation: a DPoP-bound token answers `token_type: DPoP` and its `cnf` (RFC 9449 §6.2).
 */
import { describe, expect, it } from 'vitest';

import type { EngineGrant, OpaqueAccessToken } from '../../src/tokens/introspection.js';
import { createIntrospection } from '../../src/tokens/introspection.js';
import type { ReferenceTokenLookup } from '../../src/tokens/reference-token-lookup.js';
import type { RevocationList } from '../../src/tokens/revocation-list.js';
import { createTestClock } from '../helpers/test-clock.js';

describe('opaque access-token introspection through the engine models', () => {
  const clock = createTestClock();
  const now = Math.floor(clock.now() / 1000);
  const caller = { clientId: 'rs-introspector', organizationId: 'org', audiences: ['https://api.test'] };
  const base: OpaqueAccessToken = {
    kind: 'AccessToken', clientId: 'app', accountId: 'user-1', grantId: 'g1', aud: 'https://api.test', scope: 'read',
    exp: now + 600, iat: now, extra: { org_id: 'org' },
  };

  function introspection(tokens: Record<string, OpaqueAccessToken>, grants: Record<string, EngineGrant>) {
    return createIntrospection({
      issuer: 'https://issuer.test',
      referenceTokens: {} as ReferenceTokenLookup,
      revocations: { isRevoked: () => false } as unknown as RevocationList,
      clock,
      publicJwks: () => ({ keys: [] }),
      opaqueTokens: {
        find: async (token) => tokens[token],
        grant: async (grantId) => grants[grantId],
        destroy: async () => {},
      },
    });
  }

  it('answers the token type and confirmation of a sender-constrained token', async () => {
    const bound = { ...base, cnf: { jkt: 'thumbprint' }, sid: 'session-1' };
    const answer = await introspection({ bound, plain: base }, { g1: { clientId: 'app', accountId: 'user-1' } });
    expect(await answer.introspect('bound', caller)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: 'thumbprint' }, sid: 'session-1', sub: 'user-1', org_id: 'org' });
    const plain = (await answer.introspect('plain', caller))!;
    expect(plain).toMatchObject({ active: true, token_type: 'Bearer' });
    expect(JSON.parse(JSON.stringify(plain))).not.toHaveProperty('cnf');
  });

  it('applies the engine\'s grant binding: the grant exists, is unexpired, and is the token\'s client\'s and user\'s', async () => {
    const cases: Array<[string, Record<string, EngineGrant>]> = [
      ['no grant', {}],
      ['expired grant', { g1: { clientId: 'app', accountId: 'user-1', exp: now - 1 } }],
      ['another client\'s grant', { g1: { clientId: 'other', accountId: 'user-1' } }],
      ['another user\'s grant', { g1: { clientId: 'app', accountId: 'user-2' } }],
    ];
    for (const [name, grants] of cases) {
      expect(await introspection({ t: base }, grants).introspect('t', caller), name).toEqual({ active: false });
    }
    expect(await introspection({ t: base }, { g1: { clientId: 'app', accountId: 'user-1', exp: now + 60 } }).introspect('t', caller)).toMatchObject({ active: true });
  });

  it('leaves a value the engine does not hold to the engine, and judges expiry on its own clock', async () => {
    const tokens = introspection({ t: { ...base, exp: now - 1 } }, { g1: { clientId: 'app', accountId: 'user-1' } });
    expect(await tokens.introspect('unknown', caller)).toBeUndefined();
    expect(await tokens.introspect('t', caller)).toEqual({ active: false });
  });
});
