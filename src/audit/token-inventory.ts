import type { Clock } from '../clock.js';
import { exceedsLifetimeCap, tokenLifetimeSeconds } from '../domain/organization-policy.js';
import type { OrganizationPolicy } from '../domain/types.js';
import type { InventoryReferenceToken, ReferenceTokenNarrowing, TokenInventoryRepository } from '../storage/token-inventory-repository.js';
import { riskScore } from './risk-score.js';
import type { RiskInput, RiskReason } from './risk-score.js';

/**
 * The token inventory (docs/design.md, "Blast radius is visible"): every live long-lived credential
 * of an organization — PATs, SATs, client secrets and refresh-token families — with its owner,
 * reach, age, expiry, last use and risk score, most dangerous first.
 */
export type CredentialKind = 'pat' | 'sat' | 'client_secret' | 'refresh_token_family';

export interface InventoryItem {
  id: string;
  kind: CredentialKind;
  name: string | null;
  owner: { type: 'user' | 'service_account' | 'client' | 'resource_server'; id: string; name: string | null; status: string };
  client_id: string | null;
  scopes: string[];
  audiences: string[];
  created_at: string;
  age_days: number;
  expires_at: string | null;
  expires_in_days: number | null;
  last_used_at: string | null;
  idle_days: number | null;
  use_count: number | null;
  risk_score: number;
  risk_reasons: RiskReason[];
  /** Why it does not work now although it is live: `lifetime_exceeds_policy` (a PAT/SAT longer-lived than the organization allows now), or null. */
  blocked_reason: string | null;
  /** A key-bound PAT or SAT: the thumbprint of the DPoP key it is bound to (RFC 7800 confirmation). */
  cnf?: { jkt: string };
}

/** What of the organization's policy the inventory applies: rotation age, and the lifetime caps that block tokens at use. */
export type InventoryPolicy = Pick<OrganizationPolicy, 'secret_rotation_days' | 'max_pat_lifetime_days' | 'max_sat_lifetime_days'>;

export interface InventoryFilter {
  kind?: CredentialKind;
  ownerId?: string;
  ownerStatus?: 'active' | 'inactive';
  minScore?: number;
  /** Unused (or, never used, alive) at least this many days. */
  minIdleDays?: number;
  /** Expiring within this many days (credentials that never expire are left out). */
  expiresWithinDays?: number;
  audience?: string;
  scope?: string;
}

/** The periodic refresh of stored risk scores (src/app/jobs.ts), one node at a time. */
export const TOKEN_RISK_REFRESH_LOCK_KEY = 0x74_6b_72_73; // "tkrs"

const DAY = 86_400_000;
const days = (ms: number) => Math.floor(ms / DAY);
const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const toArray = (value: string | string[] | undefined) => (Array.isArray(value) ? value : value ? [value] : []);

/** Where a page of the inventory starts and how long it is, and whose credentials it may hold. */
export interface InventoryPageRequest {
  /** After this position (risk descending, id ascending), as the previous page's last item. */
  after?: { score: number; id: string };
  limit: number;
  /** Only this user's own credentials (a viewer who does not administer credentials, src/domain/authority.ts). */
  ownUserId?: string;
}

/** The inventory's order: riskiest first, then by id. */
const byRisk = (a: InventoryItem, b: InventoryItem) => b.risk_score - a.risk_score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const isAfter = (item: InventoryItem, after: { score: number; id: string }) => item.risk_score < after.score || (item.risk_score === after.score && item.id > after.id);

type ScoringBase = Pick<RiskInput, 'now' | 'sensitiveAudiences' | 'rotationPolicyDays'>;

/** What riskScore() is given for a PAT or SAT: the one place its facts are mapped, for listing and stored scores alike. */
const referenceTokenRisk = (t: InventoryReferenceToken, base: ScoringBase) =>
  riskScore({
    ...base,
    scopes: t.scopes,
    audiences: t.resources,
    createdAt: t.created_at,
    secretSetAt: t.rotated_at ?? t.issued_at,
    expiresAt: t.expires_at,
    lastUsedAt: t.last_used_at ?? undefined,
    usageKnown: true,
    ownerStatus: t.owner_status,
  });

/** Stored risk scores are recomputed this many rows at a time (one read, one write). */
const SCORING_BATCH = 2000;

export function createTokenInventory(deps: { repository: TokenInventoryRepository; clock: Clock }) {
  const repository = deps.repository;

  /** The scoring inputs that are the organization's, not the token's. */
  async function scoringBase(organizationId: string, policy: InventoryPolicy, nowMs: number): Promise<ScoringBase> {
    const sensitiveList = await repository.sensitiveAudiences(organizationId);
    return { now: nowMs, sensitiveAudiences: new Set(sensitiveList), rotationPolicyDays: policy.secret_rotation_days };
  }

  function referenceTokenItem(t: InventoryReferenceToken, base: ScoringBase, policy: InventoryPolicy): InventoryItem {
    const nowMs = base.now;
    const lastUsedAt = t.last_used_at ?? undefined;
    const risk = referenceTokenRisk(t, base);
    return {
      id: t.id,
      kind: t.type,
      name: t.name,
      owner: { type: t.owner_type, id: t.owner_id, name: t.owner_name, status: t.owner_status },
      client_id: null,
      scopes: t.scopes,
      audiences: t.resources,
      created_at: t.created_at.toISOString(),
      age_days: days(nowMs - t.created_at.getTime()),
      expires_at: t.expires_at.toISOString(),
      expires_in_days: days(t.expires_at.getTime() - nowMs),
      last_used_at: iso(lastUsedAt),
      idle_days: days(nowMs - (lastUsedAt ?? t.created_at).getTime()),
      use_count: Number(t.use_count),
      risk_score: risk.score,
      risk_reasons: risk.reasons,
      blocked_reason: exceedsLifetimeCap(tokenLifetimeSeconds(t), t.type, policy) ? 'lifetime_exceeds_policy' : null,
      ...(t.cnf_jkt ? { cnf: { jkt: t.cnf_jkt } } : {}),
    };
  }

  /** Client secrets and refresh-token families, scored on every read (an organization has few of them next to its PATs and SATs). */
  async function otherItems(organizationId: string, now: Date, base: ScoringBase, filter: InventoryFilter): Promise<InventoryItem[]> {
    const nowMs = base.now;
    const wants = (kind: InventoryItem['kind']) => !filter.kind || filter.kind === kind;
    const [secrets, refresh] = await Promise.all([
      wants('client_secret') ? repository.clientSecrets(organizationId) : [],
      wants('refresh_token_family') ? repository.refreshTokens(organizationId, now) : [],
    ]);
    const items: InventoryItem[] = [];
    for (const c of secrets) {
      const owner: InventoryItem['owner'] = c.service_account_id
        ? { type: 'service_account', id: c.service_account_id, name: c.service_account_name, status: c.service_account_status ?? 'active' }
        : c.kind === 'introspection'
          ? { type: 'resource_server', id: c.resource_server_identifier ?? c.client_id, name: c.resource_server_identifier, status: 'active' }
          : { type: 'client', id: c.client_id, name: c.name, status: 'active' };
      const audiences = c.kind === 'introspection' ? (c.resource_server_identifier ? [c.resource_server_identifier] : []) : c.allowed_resources;
      const setAt = c.secret_rotated_at ?? c.created_at;
      // Each successful secret authentication is counted (batched); a secret never used has no last use.
      const lastUsedAt = c.secret_last_used_at ?? undefined;
      const risk = riskScore({ ...base, scopes: c.kind === 'introspection' ? [] : c.allowed_scopes, audiences: c.kind === 'introspection' ? [] : audiences, createdAt: setAt, secretSetAt: setAt, lastUsedAt, usageKnown: true, ownerStatus: owner.status });
      items.push({
        id: c.client_id,
        kind: 'client_secret',
        name: c.name,
        owner,
        client_id: c.client_id,
        scopes: c.kind === 'introspection' ? [] : c.allowed_scopes,
        audiences,
        created_at: setAt.toISOString(),
        age_days: days(nowMs - setAt.getTime()),
        expires_at: null,
        expires_in_days: null,
        last_used_at: iso(lastUsedAt),
        idle_days: days(nowMs - (lastUsedAt ?? setAt).getTime()),
        use_count: Number(c.secret_use_count),
        risk_score: risk.score,
        risk_reasons: risk.reasons,
        blocked_reason: null,
      });
    }

    // One entry per family (grant): the newest live token stands for it.
    const families = new Map<string, (typeof refresh)[number]>();
    for (const r of refresh) {
      const key = r.grant_id ?? r.id;
      const seen = families.get(key);
      if (!seen || (r.payload.iat ?? 0) > (seen.payload.iat ?? 0)) families.set(key, r);
    }
    for (const [familyId, r] of families) {
      const createdAt = new Date((r.payload.iiat ?? r.payload.iat ?? 0) * 1000);
      // Refresh tokens rotate on every use, so the newest token's issue time is the last use.
      const lastUsedAt = r.payload.iat && r.payload.iiat && r.payload.iat > r.payload.iiat ? new Date(r.payload.iat * 1000) : undefined;
      const expiresAt = r.expires_at ?? (r.payload.exp ? new Date(r.payload.exp * 1000) : undefined);
      const scopes = (r.payload.scope ?? '').split(' ').filter(Boolean);
      const audiences = toArray(r.payload.resource);
      const ownerStatus = r.account_id ? (r.owner_status ?? 'deleted') : 'active';
      const risk = riskScore({ ...base, scopes, audiences, createdAt, expiresAt, lastUsedAt, usageKnown: true, ownerStatus });
      items.push({
        id: familyId,
        kind: 'refresh_token_family',
        name: r.client_name,
        owner: r.account_id ? { type: 'user', id: r.account_id, name: r.owner_name, status: ownerStatus } : { type: 'client', id: r.client_id, name: r.client_name, status: 'active' },
        client_id: r.client_id,
        scopes,
        audiences,
        created_at: createdAt.toISOString(),
        age_days: days(nowMs - createdAt.getTime()),
        expires_at: iso(expiresAt),
        expires_in_days: expiresAt ? days(expiresAt.getTime() - nowMs) : null,
        last_used_at: iso(lastUsedAt),
        idle_days: days(nowMs - (lastUsedAt ?? createdAt).getTime()),
        use_count: null,
        risk_score: risk.score,
        risk_reasons: risk.reasons,
        blocked_reason: null,
      });
    }
    return items;
  }

  /**
   * Brings the stored scores of the organization's live PATs and SATs (those `narrowing` selects)
   * up to `base.now`: the organization-wide inputs are compared with those the scores were
   * computed under, then every score due (stale, or past its next time step) is recomputed by
   * riskScore() and stored. A row changed while it was being scored is read and scored again.
   * A stored score is the score of any time from its computation to its validUntil; a clock set
   * back by more than a minute makes them all stale (syncRiskContext).
   *
   * Rows are read and stored SCORING_BATCH at a time, so an organization with a million tokens
   * due (after a bulk import) is scored in bounded memory; `maxRows` bounds one call's work (the
   * periodic job), the rest being left for the next.
   */
  async function refreshScores(organizationId: string, now: Date, base: ScoringBase, narrowing: ReferenceTokenNarrowing = {}, maxRows = Infinity): Promise<void> {
    const context = JSON.stringify({ rotation_days: base.rotationPolicyDays, sensitive: [...base.sensitiveAudiences].sort() });
    await repository.syncRiskContext(organizationId, context, now);
    let scored = 0;
    let partial = 0;
    while (scored < maxRows) {
      const due = await repository.referenceTokens(organizationId, now, { ...narrowing, due: true, dueLimit: Math.min(SCORING_BATCH, maxRows - scored) });
      if (due.length === 0) return;
      const scores = due.map((t) => {
        const risk = referenceTokenRisk(t, base);
        return { id: t.id, epoch: t.risk_epoch, score: risk.score, validUntil: risk.validUntil, useMattersFrom: risk.useMattersFrom };
      });
      await repository.noteScoredAt(organizationId, now);
      const stored = await repository.storeRiskScores(scores);
      scored += due.length;
      // Rows that changed while being scored stay due and are read again, a few times at most:
      // a token in constant change is scored by a later read.
      if (stored < scores.length && ++partial >= 3) return;
    }
  }

  /** Every live long-lived credential of the organization that matches `filter`, riskiest first (CSV, the CLI). */
  async function list(organizationId: string, policy: InventoryPolicy, filter: InventoryFilter = {}): Promise<InventoryItem[]> {
    const nowMs = deps.clock.now();
    const now = new Date(nowMs);
    // A kind filter leaves the other kinds unread; PATs and SATs are narrowed in the statement.
    const wantsReference = !filter.kind || filter.kind === 'pat' || filter.kind === 'sat';
    const referenceKind = filter.kind === 'pat' || filter.kind === 'sat' ? filter.kind : undefined;
    const base = await scoringBase(organizationId, policy, nowMs);
    const [tokens, others] = await Promise.all([
      wantsReference ? repository.referenceTokens(organizationId, now, { type: referenceKind, ownerId: filter.ownerId, minIdleDays: filter.minIdleDays, expiresWithinDays: filter.expiresWithinDays }) : [],
      otherItems(organizationId, now, base, filter),
    ]);
    const items = tokens.map((t) => referenceTokenItem(t, base, policy));
    items.push(...others);
    return items.filter((item) => matches(item, filter)).sort(byRisk);
  }

  /**
   * One page of the inventory in the same order as list(). PATs and SATs, the many, come from
   * the database by their stored score (reference_tokens_risk_idx), only the page's rows read;
   * client secrets and refresh-token families are scored on the read and merged in.
   */
  async function page(organizationId: string, policy: InventoryPolicy, filter: InventoryFilter, request: InventoryPageRequest): Promise<{ items: InventoryItem[]; more: boolean }> {
    const nowMs = deps.clock.now();
    const now = new Date(nowMs);
    const own = request.ownUserId;
    const wantsReference = !filter.kind || filter.kind === 'pat' || filter.kind === 'sat';
    const referenceKind = filter.kind === 'pat' || filter.kind === 'sat' ? filter.kind : undefined;
    const base = await scoringBase(organizationId, policy, nowMs);
    const narrowing: ReferenceTokenNarrowing = { type: referenceKind, ownerId: filter.ownerId, userId: own };
    const readReference = async () => {
      if (!wantsReference) return [];
      await refreshScores(organizationId, now, base, narrowing);
      return repository.referenceTokens(organizationId, now, {
        ...narrowing,
        minIdleDays: filter.minIdleDays,
        expiresWithinDays: filter.expiresWithinDays,
        page: { ownerStatus: filter.ownerStatus, minScore: filter.minScore, audience: filter.audience, scope: filter.scope, after: request.after, limit: request.limit + 1 },
      });
    };
    const [tokens, others] = await Promise.all([readReference(), otherItems(organizationId, now, base, filter)]);
    const candidates = tokens.map((t) => referenceTokenItem(t, base, policy));
    for (const item of others) {
      if (own !== undefined && !(item.owner.type === 'user' && item.owner.id === own)) continue;
      if (request.after && !isAfter(item, request.after)) continue;
      candidates.push(item);
    }
    const items = candidates.filter((item) => matches(item, filter)).sort(byRisk);
    return { items: items.slice(0, request.limit), more: items.length > request.limit };
  }

  /**
   * Recomputes stored scores that are due, at most `maxRows` of them, for the periodic job
   * (src/app/jobs.ts): a page read then finds them current.
   */
  async function refresh(organizationId: string, policy: InventoryPolicy, maxRows = Infinity): Promise<void> {
    const nowMs = deps.clock.now();
    await refreshScores(organizationId, new Date(nowMs), await scoringBase(organizationId, policy, nowMs), {}, maxRows);
  }

  return { list, page, refresh };
}
export type TokenInventory = ReturnType<typeof createTokenInventory>;

function matches(item: InventoryItem, filter: InventoryFilter): boolean {
  if (filter.kind && item.kind !== filter.kind) return false;
  if (filter.ownerId !== undefined && item.owner.id !== filter.ownerId) return false;
  if (filter.ownerStatus === 'active' && item.owner.status !== 'active') return false;
  if (filter.ownerStatus === 'inactive' && item.owner.status === 'active') return false;
  if (filter.minScore !== undefined && item.risk_score < filter.minScore) return false;
  if (filter.minIdleDays !== undefined && (item.idle_days ?? item.age_days) < filter.minIdleDays) return false;
  if (filter.expiresWithinDays !== undefined && (item.expires_in_days === null || item.expires_in_days > filter.expiresWithinDays)) return false;
  if (filter.audience !== undefined && !item.audiences.includes(filter.audience)) return false;
  if (filter.scope !== undefined && !item.scopes.includes(filter.scope)) return false;
  return true;
}

const CSV_COLUMNS = ['risk_score', 'kind', 'id', 'name', 'owner_type', 'owner_id', 'owner_name', 'owner_status', 'client_id', 'scopes', 'audiences', 'created_at', 'age_days', 'expires_at', 'expires_in_days', 'last_used_at', 'idle_days', 'use_count', 'risk_reasons', 'blocked_reason'] as const;

/**
 * RFC 4180 CSV. A cell that a spreadsheet would run as a formula (=, +, -, @ first) gets a
 * leading apostrophe: token names are chosen by users and the file is opened by admins.
 */
export function csvCell(value: unknown): string {
  let text = value == null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

export function inventoryCsvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function inventoryCsvRow(item: InventoryItem): string {
  const flat: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    risk_score: item.risk_score,
    kind: item.kind,
    id: item.id,
    name: item.name,
    owner_type: item.owner.type,
    owner_id: item.owner.id,
    owner_name: item.owner.name,
    owner_status: item.owner.status,
    client_id: item.client_id,
    scopes: item.scopes.join(' '),
    audiences: item.audiences.join(' '),
    created_at: item.created_at,
    age_days: item.age_days,
    expires_at: item.expires_at,
    expires_in_days: item.expires_in_days,
    last_used_at: item.last_used_at,
    idle_days: item.idle_days,
    use_count: item.use_count,
    risk_reasons: item.risk_reasons.filter((r) => r.points > 0).map((r) => `${r.code}+${r.points}`).join(' '),
    blocked_reason: item.blocked_reason,
  };
  return `${CSV_COLUMNS.map((c) => csvCell(flat[c])).join(',')}\r\n`;
}

/** A fixed-width table for the terminal (`tessera tokens audit`). */
export function inventoryTable(items: InventoryItem[]): string {
  const header = ['RISK', 'KIND', 'ID', 'NAME', 'OWNER', 'STATUS', 'SCOPES', 'AGE', 'EXPIRES', 'IDLE', 'REASONS'];
  const rows = items.map((i) => [
    String(i.risk_score),
    i.kind,
    i.id,
    i.name ?? '',
    `${i.owner.type}:${i.owner.name ?? i.owner.id}`,
    i.owner.status,
    i.scopes.join(' ') || '-',
    `${i.age_days}d`,
    i.expires_in_days === null ? 'never' : `${i.expires_in_days}d`,
    i.idle_days === null ? '?' : `${i.idle_days}d`,
    i.risk_reasons.filter((r) => r.points > 0).map((r) => r.code).join(',') || '-',
  ]);
  const clipCell = (s: string) => (s.length > 40 ? `${s.slice(0, 39)}…` : s);
  const all = [header, ...rows].map((r) => r.map(clipCell));
  const widths = header.map((_h, c) => Math.max(...all.map((r) => r[c]!.length)));
  return `${all.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n')}\n`;
}
