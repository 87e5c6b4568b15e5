/** The blast-radius score, factor by factor, as docs/audit-and-inventory.md documents it. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { isWriteScope, RISK_WEIGHTS, riskScore } from '../../src/audit/risk-score.js';
import type { RiskInput } from '../../src/audit/risk-score.js';
import { csvCell } from '../../src/audit/token-inventory.js';
import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

/** A credential that scores nothing: read-only, short, just used, active owner, fresh secret. */
const quiet = (over: Partial<RiskInput> = {}): RiskInput => ({
  scopes: ['orders:read'],
  audiences: ['https://orders.test'],
  sensitiveAudiences: new Set(),
  now: NOW,
  createdAt: new Date(NOW - DAY),
  secretSetAt: new Date(NOW - DAY),
  expiresAt: new Date(NOW + DAY / 24),
  lastUsedAt: new Date(NOW - 60_000),
  usageKnown: true,
  ownerStatus: 'active',
  rotationPolicyDays: 90,
  ...over,
});

const points = (input: RiskInput, code: string) => riskScore(input).reasons.find((r) => r.code === code)?.points ?? 0;

describe('risk score', () => {
  it('is 0 for a short-lived, read-only, just-used credential of an active owner', () => {
    expect(riskScore(quiet())).toMatchObject({ score: 0, reasons: [] });
  });

  it('weighs Management API write above Management read above other writes', () => {
    const mgmt = { audiences: [MANAGEMENT_AUDIENCE] };
    expect(points(quiet({ ...mgmt, scopes: ['audit:read', 'clients:write'] }), 'management_write')).toBe(RISK_WEIGHTS.managementWrite);
    expect(points(quiet({ ...mgmt, scopes: ['organizations:admin'] }), 'management_write')).toBe(RISK_WEIGHTS.managementWrite);
    expect(points(quiet({ ...mgmt, scopes: ['audit:read'] }), 'management_read')).toBe(RISK_WEIGHTS.managementRead);
    expect(points(quiet({ scopes: ['orders:write'] }), 'write_scope')).toBe(RISK_WEIGHTS.writeScope);
    // A Management scope name on another API's token is that API's scope, not the Management API's.
    expect(points(quiet({ scopes: ['clients:write'] }), 'management_write')).toBe(0);
    expect(['orders:write', 'admin', 'repo.delete', 'billing:manage', '*'].every(isWriteScope)).toBe(true);
    expect(['orders:read', 'openid', 'profile', 'writers:list', 'administration-docs:read'].some(isWriteScope)).toBe(false);
  });

  it('adds sensitive audiences, remaining lifetime, idleness, an inactive owner, an overdue secret and shared use', () => {
    expect(points(quiet({ sensitiveAudiences: new Set(['https://orders.test']) }), 'sensitive_audience')).toBe(15);
    expect(points(quiet({ expiresAt: new Date(NOW + 365 * DAY) }), 'lifetime')).toBe(15);
    expect(points(quiet({ expiresAt: new Date(NOW + 3 * 365 * DAY) }), 'lifetime')).toBe(15);
    expect(points(quiet({ expiresAt: new Date(NOW + 73 * DAY) }), 'lifetime')).toBe(3);
    expect(points(quiet({ expiresAt: undefined }), 'no_expiry')).toBe(15);
    expect(points(quiet({ lastUsedAt: new Date(NOW - 60 * DAY) }), 'idle')).toBe(10);
    expect(points(quiet({ lastUsedAt: new Date(NOW - 400 * DAY) }), 'idle')).toBe(15);
    expect(points(quiet({ lastUsedAt: undefined, createdAt: new Date(NOW - 45 * DAY) }), 'idle')).toBe(8);
    expect(riskScore(quiet({ usageKnown: false, lastUsedAt: undefined })).reasons).toEqual([expect.objectContaining({ code: 'usage_unknown', points: 0 })]);
    expect(points(quiet({ ownerStatus: 'disabled' }), 'owner_inactive')).toBe(20);
    expect(points(quiet({ secretSetAt: new Date(NOW - 91 * DAY) }), 'rotation_overdue')).toBe(10);
    expect(points(quiet({ secretSetAt: new Date(NOW - 89 * DAY) }), 'rotation_overdue')).toBe(0);
  });

  it('caps the sum at 100 and lists reasons heaviest first', () => {
    const worst = riskScore(quiet({
      scopes: ['organization:write'],
      audiences: [MANAGEMENT_AUDIENCE, 'https://vault.test'],
      sensitiveAudiences: new Set(['https://vault.test']),
      expiresAt: undefined,
      lastUsedAt: undefined,
      createdAt: new Date(NOW - 500 * DAY),
      secretSetAt: new Date(NOW - 500 * DAY),
      ownerStatus: 'deactivated',
    }));
    expect(worst.reasons.reduce((sum, r) => sum + r.points, 0)).toBe(110);
    expect(worst.score).toBe(100);
    expect(worst.reasons.map((r) => r.points)).toEqual([...worst.reasons.map((r) => r.points)].sort((a, b) => b - a));
  });

  it('ranks the issue\'s example: a year-long Management-write SAT idle 60 days over a week-long read-only PAT used an hour ago', () => {
    const sat = riskScore(quiet({ scopes: ['tokens:write'], audiences: [MANAGEMENT_AUDIENCE], createdAt: new Date(NOW - 61 * DAY), secretSetAt: new Date(NOW - 61 * DAY), expiresAt: new Date(NOW + 304 * DAY), lastUsedAt: new Date(NOW - 60 * DAY) }));
    const pat = riskScore(quiet({ expiresAt: new Date(NOW + 7 * DAY), lastUsedAt: new Date(NOW - 3_600_000) }));
    expect(sat.score).toBe(35 + 12 + 10);
    expect(pat.score).toBe(0);
  });
});

describe('risk score validity (the stored scores of migrations/1700000016200_token_risk_scores.sql)', () => {
  const pointsOf = (input: RiskInput) => Object.fromEntries(riskScore(input).reasons.map((r) => [r.code, r.points]));
  /** Any credential: creation, last use, secret age and expiry anywhere from years ago to years ahead. */
  const credential = fc.record({
    createdDaysAgo: fc.double({ min: 0, max: 800, noNaN: true }),
    usedDaysAgo: fc.option(fc.double({ min: 0, max: 800, noNaN: true }), { nil: undefined }),
    secretDaysAgo: fc.option(fc.double({ min: 0, max: 800, noNaN: true }), { nil: undefined }),
    expiresInDays: fc.option(fc.double({ min: 0.001, max: 1200, noNaN: true }), { nil: undefined }),
    rotationPolicyDays: fc.integer({ min: 1, max: 400 }),
  }).map((c): RiskInput => quiet({
    createdAt: new Date(NOW - c.createdDaysAgo * DAY),
    lastUsedAt: c.usedDaysAgo === undefined ? undefined : new Date(NOW - c.usedDaysAgo * DAY),
    secretSetAt: c.secretDaysAgo === undefined ? undefined : new Date(NOW - c.secretDaysAgo * DAY),
    expiresAt: c.expiresInDays === undefined ? undefined : new Date(NOW + c.expiresInDays * DAY),
    rotationPolicyDays: c.rotationPolicyDays,
  }));

  it('holds every factor\'s points from now until validUntil, and a factor steps soon after it', () => {
    fc.assert(fc.property(credential, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }), (input, fractions) => {
      const { validUntil } = riskScore(input);
      expect(validUntil).toBeGreaterThan(NOW - 2000);
      const end = Math.min(validUntil, NOW + 2000 * DAY);
      for (const f of [0, 1, ...fractions]) expect(pointsOf({ ...input, now: NOW + Math.max(0, end - NOW) * f })).toEqual(pointsOf(input));
      // Not long after it (and before expiry, when the credential leaves the inventory), something steps.
      if (Number.isFinite(validUntil) && (!input.expiresAt || validUntil + 4000 < input.expiresAt.getTime())) {
        expect(pointsOf({ ...input, now: validUntil + 4000 })).not.toEqual(pointsOf(input));
      }
    }), { numRuns: 2000 });
  });

  it('is not changed by a use before useMattersFrom, at any time the score holds', () => {
    fc.assert(fc.property(credential, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (input, useAt, lookAt) => {
      const { score, validUntil, useMattersFrom } = riskScore(input);
      const last = Math.min(validUntil, useMattersFrom, NOW + 2000 * DAY);
      if (last <= NOW) return;
      const used = NOW + (last - NOW) * useAt;
      const seen = used + (Math.min(validUntil, NOW + 2000 * DAY) - used) * lookAt;
      expect(riskScore({ ...input, lastUsedAt: new Date(used), now: seen }).score).toBe(score);
    }), { numRuns: 2000 });
    // Idle points already counted: the use clears them, so it matters at once.
    const idle = quiet({ createdAt: new Date(NOW - 30 * DAY), lastUsedAt: new Date(NOW - 30 * DAY), expiresAt: new Date(NOW + 30 * DAY) });
    const { score, useMattersFrom } = riskScore(idle);
    expect(useMattersFrom).toBeLessThanOrEqual(NOW);
    expect(riskScore({ ...idle, lastUsedAt: new Date(NOW) }).score).toBeLessThan(score);
  });

  it('has no step to wait for once every time-dependent factor is at its end', () => {
    expect(riskScore(quiet({ expiresAt: undefined, lastUsedAt: new Date(NOW - 100 * DAY), secretSetAt: new Date(NOW - 100 * DAY) })).validUntil).toBe(Infinity);
  });
});

describe('inventory CSV cells', () => {
  it('quotes separators and neutralizes spreadsheet formulas', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell(null)).toBe('');
    expect(csvCell(42)).toBe('42');
  });
});
