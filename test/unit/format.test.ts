import { crc32 } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { BASE62, checksum, generateToken, hashToken, parseToken, toBase62 } from '../../src/tokens/format.js';

describe('reference token format', () => {
  it('has the documented shape: prefix, 43 base62 characters, 6-character checksum', () => {
    for (const kind of ['pat', 'sat', 'rk'] as const) {
      const token = generateToken(kind);
      expect(token).toMatch(new RegExp(`^tsr_${kind}_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}$`));
      expect(parseToken(token)).toBe(kind);
    }
  });

  it('computes the checksum as CRC-32 of the text before the last underscore, base62, MSB first, zero-padded', () => {
    const body = `tsr_sat_${'A'.repeat(43)}`;
    let value = crc32(body) >>> 0;
    let expected = '';
    while (value > 0) {
      expected = BASE62[value % 62] + expected;
      value = Math.floor(value / 62);
    }
    expect(checksum(body)).toBe(expected.padStart(6, '0'));
    expect(toBase62(0, 6)).toBe('000000');
    expect(toBase62(61, 6)).toBe('00000z');
    expect(toBase62(62, 6)).toBe('000010');
  });

  it('rejects garbage, wrong prefixes, a flipped character and truncation without any lookup', () => {
    const token = generateToken('pat');
    const flipped = token.slice(0, 20) + (token[20] === 'a' ? 'b' : 'a') + token.slice(21);
    for (const bad of ['', 'tsr_', 'tsr_xyz_abc_def', token.replace('tsr_pat', 'tsr_pot'), flipped, token.slice(0, -1), `${token}x`, 'x'.repeat(10_000)]) {
      expect(parseToken(bad)).toBeUndefined();
    }
  });

  it('draws secrets uniformly enough that 1000 tokens never repeat and use the whole alphabet', () => {
    const secrets = new Set(Array.from({ length: 1000 }, () => generateToken('sat').slice(8, 51)));
    expect(secrets.size).toBe(1000);
    const seen = new Set([...secrets].join(''));
    expect(seen.size).toBe(62);
  });

  it('stores SHA-256 digests, never the token', () => {
    const token = generateToken('sat');
    expect(hashToken(token)).toHaveLength(32);
    expect(hashToken(token).toString('hex')).not.toContain(token);
  });
});
