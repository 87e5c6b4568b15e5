import { MANAGEMENT_AUDIENCE, MANAGEMENT_SCOPES } from '../domain/types.js';

/**
 * The blast-radius score of a long-lived credential (docs/design.md, "Blast radius is visible"), from 0 to 100: what an
 * attacker holding it could reach, for how long, and how likely its loss is to go unnoticed.
 * Each factor adds points up to its own ceiling and says why; the sum is capped at 100.
 * docs/audit-and-inventory.md, "Token inventory and risk scores", documents the same table.
 *
 * | factor                                   | points                                        |
 * | ---------------------------------------- | --------------------------------------------- |
 * | Management API scope that writes/admins  | 35                                            |
 * | Management API read-only scope           | 20                                            |
 * | write/admin scope on another API         | 15                                            |
 * | an audience marked sensitive             | 15                                            |
 * | remaining lifetime                       | 15 × min(days left, 365) / 365; 15 if none    |
 * | days idle (since last use, or creation)  | 15 × min(idle days, 90) / 90                  |
 * | owner deactivated or disabled            | 20                                            |
 * | secret older than the rotation policy    | 10                                            |
 */
export const RISK_WEIGHTS = {
  managementWrite: 35,
  managementRead: 20,
  writeScope: 15,
  sensitiveAudience: 15,
  lifetime: 15,
  /** A year or more left scores the full lifetime points. */
  lifetimeFullDays: 365,
  idle: 15,
  /** Idle this long scores the full idle points (the default idle-revocation policy is 90 days). */
  idleFullDays: 90,
  ownerInactive: 20,
  rotationOverdue: 10,
} as const;

export interface RiskInput {
  scopes: readonly string[];
  audiences: readonly string[];
  /** Audiences of this organization's resource servers marked `sensitive`. */
  sensitiveAudiences: ReadonlySet<string>;
  now: number;
  createdAt: Date;
  /** When the current secret was set (issue or last rotation); undefined where rotation does not apply. */
  secretSetAt?: Date;
  /** undefined: never expires. */
  expiresAt?: Date;
  /** undefined with `usageKnown`: never used. */
  lastUsedAt?: Date;
  /** false when Tessera records no use of this kind of credential (no idle points, a note instead). */
  usageKnown: boolean;
  ownerStatus: string;
  rotationPolicyDays: number;
}

export interface RiskReason {
  code: string;
  points: number;
  detail: string;
}

export interface RiskScore {
  score: number;
  reasons: RiskReason[];
  /**
   * Until when (epoch ms) the score holds for the same facts: the time-dependent factors (days
   * left, idle days, secret age) step at known times, and this is a little before the first step
   * after `now` (Infinity: none comes). A stored score is recomputed from then on
   * (src/storage/token-inventory-repository.ts); computing earlier than needed is harmless.
   */
  validUntil: number;
  /**
   * From when (epoch ms) a new use would change the score: once idle points are due, a use brings
   * them back to 0; before that, a use changes nothing the score shows (Infinity: uses are not
   * scored). A recorded use before this time leaves a stored score standing, so the usage flush,
   * which updates `last_used_at` on many rows, need not mark their scores stale
   * (migrations/1700000016200_token_risk_scores.sql).
   */
  useMattersFrom: number;
}

const DAY = 86_400_000;
/** A scope that changes or administers something, by the conventions APIs use for scope names. */
const WRITE_SCOPE = /(^|[:._/-])(write|admin|delete|manage|owner|full)([:._/-]|$)|^\*$/i;

export const isWriteScope = (scope: string) => WRITE_SCOPE.test(scope);

/** How much before a step a stored score counts as due, against rounding error and clocks a little apart. */
const STEP_MARGIN_MS = 1000;

export function riskScore(input: RiskInput): RiskScore {
  const reasons: RiskReason[] = [];
  let validUntil = Infinity;
  let useMattersFrom = Infinity;
  /** The factor's rounded points change at `at` (or just after it). */
  const stepAt = (at: number) => {
    validUntil = Math.min(validUntil, at - STEP_MARGIN_MS);
  };
  const add = (code: string, points: number, detail: string) => {
    const rounded = Math.round(points);
    if (rounded > 0) reasons.push({ code, points: rounded, detail });
  };

  const management = input.audiences.includes(MANAGEMENT_AUDIENCE) ? input.scopes.filter((s) => MANAGEMENT_SCOPES.includes(s)) : [];
  const managementWrites = management.filter(isWriteScope);
  const otherWrites = input.scopes.filter((s) => !management.includes(s) && isWriteScope(s));
  if (managementWrites.length > 0) add('management_write', RISK_WEIGHTS.managementWrite, `writes or administers through the Management API (${managementWrites.join(' ')})`);
  else if (management.length > 0) add('management_read', RISK_WEIGHTS.managementRead, `reads through the Management API (${management.join(' ')})`);
  else if (otherWrites.length > 0) add('write_scope', RISK_WEIGHTS.writeScope, `scopes that write or administer (${otherWrites.join(' ')})`);

  const sensitive = input.audiences.filter((a) => input.sensitiveAudiences.has(a));
  if (sensitive.length > 0) add('sensitive_audience', RISK_WEIGHTS.sensitiveAudience, `reaches an API marked sensitive (${sensitive.join(' ')})`);

  if (!input.expiresAt) {
    add('no_expiry', RISK_WEIGHTS.lifetime, 'never expires');
  } else {
    const daysLeft = Math.max(0, (input.expiresAt.getTime() - input.now) / DAY);
    const points = (RISK_WEIGHTS.lifetime * Math.min(daysLeft, RISK_WEIGHTS.lifetimeFullDays)) / RISK_WEIGHTS.lifetimeFullDays;
    add('lifetime', points, `valid for ${Math.floor(daysLeft)} more days`);
    // Rounded points r drop to r - 1 once the points fall below r - 0.5.
    const rounded = Math.round(points);
    if (rounded > 0) stepAt(input.expiresAt.getTime() - (((rounded - 0.5) * RISK_WEIGHTS.lifetimeFullDays) / RISK_WEIGHTS.lifetime) * DAY);
  }

  if (input.usageKnown) {
    const since = input.lastUsedAt ?? input.createdAt;
    const idleDays = Math.max(0, (input.now - since.getTime()) / DAY);
    const how = input.lastUsedAt ? `last used ${Math.floor(idleDays)} days ago` : `never used in ${Math.floor(idleDays)} days`;
    const points = (RISK_WEIGHTS.idle * Math.min(idleDays, RISK_WEIGHTS.idleFullDays)) / RISK_WEIGHTS.idleFullDays;
    add('idle', points, how);
    // Rounded points r rise to r + 1 once the points reach r + 0.5.
    const rounded = Math.round(points);
    if (rounded < RISK_WEIGHTS.idle) stepAt(since.getTime() + (((rounded + 0.5) * RISK_WEIGHTS.idleFullDays) / RISK_WEIGHTS.idle) * DAY);
    // The idle points round to 0 until they reach 0.5: up to then a use leaves them at 0.
    useMattersFrom = since.getTime() + ((0.5 * RISK_WEIGHTS.idleFullDays) / RISK_WEIGHTS.idle) * DAY - STEP_MARGIN_MS;
  } else {
    reasons.push({ code: 'usage_unknown', points: 0, detail: 'no use is recorded for this kind of credential yet, so idleness is not scored' });
  }

  if (input.ownerStatus !== 'active') add('owner_inactive', RISK_WEIGHTS.ownerInactive, `owner is ${input.ownerStatus}`);

  if (input.secretSetAt) {
    const secretAgeDays = (input.now - input.secretSetAt.getTime()) / DAY;
    if (secretAgeDays > input.rotationPolicyDays) add('rotation_overdue', RISK_WEIGHTS.rotationOverdue, `secret is ${Math.floor(secretAgeDays)} days old; policy rotates every ${input.rotationPolicyDays} days`);
    else stepAt(input.secretSetAt.getTime() + input.rotationPolicyDays * DAY);
  }

  const score = Math.min(100, reasons.reduce((sum, r) => sum + r.points, 0));
  reasons.sort((a, b) => b.points - a.points);
  return { score, reasons, validUntil, useMattersFrom };
}
