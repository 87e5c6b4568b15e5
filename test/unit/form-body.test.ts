/**
 * parseForm takes a shortcut for bodies without escapes; for any body it must give exactly the
 * parameters URLSearchParams gives (the WHATWG form-urlencoded parser), since both the fast path
 * and the Koa path read requests through it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { parseForm, single } from '../../src/http/form-body.js';

const names = ['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', ''];
const piece = fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 }), fc.stringMatching(/^[A-Za-z0-9._~=&-]{0,20}$/));
const body = fc.array(fc.tuple(piece, fc.constantFrom('=', '', '==')).map(([p, sep]) => `${p}${sep}`), { maxLength: 6 }).map((parts) => parts.join('&'));

describe('parseForm', () => {
  it('gives the same parameters as URLSearchParams for any body', () => {
    fc.assert(
      fc.property(fc.oneof(body, fc.string({ maxLength: 40 })), (text) => {
        const reference = new URLSearchParams(text);
        const parsed = parseForm(text);
        for (const name of new Set([...names, ...reference.keys()])) {
          expect(parsed.getAll(name), `${JSON.stringify(text)} ${name}`).toEqual(reference.getAll(name));
          expect(parsed.get(name)).toBe(reference.get(name));
          expect(parsed.has(name)).toBe(reference.has(name));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps the rule that a parameter must not be repeated (RFC 6749 §3.2)', () => {
    expect(() => single(parseForm('token=a&token=b'), 'token')).toThrow(/must not be provided twice/);
    expect(single(parseForm('token=a&&token_type_hint=x'), 'token')).toBe('a');
  });
});
