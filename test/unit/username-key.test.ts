/**
 * usernameKey (src/storage/user-repository.ts): the one normalization of a username, shared by
 * the sign-in lookup and the login throttle. It folds what a stored (ASCII) username can differ
 * by in typing, and nothing that JavaScript and PostgreSQL would fold differently.
 */
import { describe, expect, it } from 'vitest';

import { usernameKey } from '../../src/storage/user-repository.js';

describe('usernameKey', () => {
  it('folds ASCII case, compatibility forms and surrounding spaces; leaves every other letter as typed', () => {
    const cases: [string, string][] = [
      ['Admin', 'admin'],
      ['  ADMIN\t', 'admin'],
      ['Carol.Case+ops@Example_1-2', 'carol.case+ops@example_1-2'],
      ['ＡＤＭＩＮ', 'admin'], // fullwidth letters: NFKC makes them ASCII
      ['\u212Aim', 'kim'], // KELVIN SIGN: NFKC makes it K
      // Folded differently by toLowerCase() ('i' + U+0307) and PostgreSQL's lower() ('i'): not at all here.
      ['İRENE', 'İrene'],
      ['STRAẞE', 'straẞe'],
      ['ΣΑΣ', 'ΣΑΣ'],
      ['ÀLAIN', 'Àlain'],
    ];
    for (const [typed, key] of cases) expect(usernameKey(typed), typed).toBe(key);
  });
});
