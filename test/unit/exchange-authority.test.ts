/**
 * The authority rule of token exchange (src/domain/authority.ts, `exchangeDecision`), as a
 * property: whatever the subject holds, the client is allowed and the request asks for, an
 * exchange never hands out a scope the subject token does not hold or the client may not get,
 * never for an API the subject is not for, never across organizations; and it refuses rather
 * than narrows a request for more.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { exchangeDecision } from '../../src/domain/authority.js';

const SCOPES = ['a:read', 'a:write', 'b:read', 'b:write', 'admin'];
const APIS = ['https://a.test', 'https://b.test', 'https://c.test'];
const scopeSet = fc.uniqueArray(fc.constantFrom(...SCOPES), { maxLength: SCOPES.length });

describe('exchangeDecision', () => {
  it('never hands out more than the subject holds and the client may get, for an API the subject is for, in its organization', () => {
    fc.assert(
      fc.property(
        fc.record({
          subjectScopes: scopeSet,
          subjectApis: fc.uniqueArray(fc.constantFrom(...APIS), { minLength: 1 }),
          subjectOrg: fc.constantFrom('org_1', 'org_2'),
          allowed: scopeSet,
          target: fc.constantFrom(...APIS),
          requested: fc.option(scopeSet, { nil: undefined }),
        }),
        ({ subjectScopes, subjectApis, subjectOrg, allowed, target, requested }) => {
          const decision = exchangeDecision(
            { clientId: 'cl', organizationId: 'org_1', scopesAtTarget: allowed },
            { organizationId: subjectOrg, audiences: subjectApis, scopes: subjectScopes },
            target,
            requested,
          );
          if (!decision.ok) return;
          expect(subjectOrg).toBe('org_1');
          expect(subjectApis).toContain(target);
          expect(decision.scopes.length).toBeGreaterThan(0);
          for (const scope of decision.scopes) {
            expect(subjectScopes).toContain(scope);
            expect(allowed).toContain(scope);
          }
          // An explicit request is granted exactly, or refused: never silently narrowed.
          if (requested !== undefined) expect([...decision.scopes].sort()).toEqual([...new Set(requested)].sort());
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('names the error: invalid_target for another API or organization, invalid_scope for more scopes', () => {
    const caller = { clientId: 'cl', organizationId: 'org_1', scopesAtTarget: ['a:read', 'a:write'] };
    const subject = { organizationId: 'org_1', audiences: ['https://a.test'], scopes: ['a:read'] };
    expect(exchangeDecision(caller, subject, 'https://a.test', undefined)).toEqual({ ok: true, scopes: ['a:read'] });
    expect(exchangeDecision(caller, subject, 'https://b.test', undefined)).toMatchObject({ ok: false, error: 'invalid_target' });
    expect(exchangeDecision(caller, { ...subject, organizationId: 'org_2' }, 'https://a.test', undefined)).toMatchObject({ ok: false, error: 'invalid_target' });
    expect(exchangeDecision(caller, subject, 'https://a.test', ['a:write'])).toMatchObject({ ok: false, error: 'invalid_scope' });
    expect(exchangeDecision({ ...caller, scopesAtTarget: ['a:write'] }, subject, 'https://a.test', ['a:read'])).toMatchObject({ ok: false, error: 'invalid_scope' });
    expect(exchangeDecision({ ...caller, scopesAtTarget: ['a:write'] }, subject, 'https://a.test', undefined)).toMatchObject({ ok: false, error: 'invalid_scope' });
  });
});
