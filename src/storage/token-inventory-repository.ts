import type { Database } from './database.js';

/**
 * What the token inventory reads: every live long-lived credential of one organization, with
 * its owner; one statement per credential kind. It writes only the stored risk scores of PATs
 * and SATs (migrations/1700000016200_token_risk_scores.sql), which src/audit/token-inventory.ts
 * computes.
 */
export interface InventoryReferenceToken {
  id: string;
  type: 'pat' | 'sat';
  name: string;
  owner_type: 'user' | 'service_account';
  owner_id: string;
  owner_name: string;
  owner_status: string;
  scopes: string[];
  resources: string[];
  created_at: Date;
  issued_at: Date;
  rotated_at: Date | null;
  expires_at: Date;
  last_used_at: Date | null;
  use_count: number;
  lifetime_seconds: number | null;
  /** Key-bound tokens: the thumbprint of the DPoP key (src/tokens/key-binding.ts), else null. */
  cnf_jkt: string | null;
  /** The stored risk score (null until first scored) and its invalidation count (migrations/1700000016200_token_risk_scores.sql). */
  risk_score: number | null;
  risk_epoch: number;
}

export interface InventoryClientSecret {
  client_id: string;
  name: string | null;
  kind: 'oauth' | 'introspection';
  service_account_id: string | null;
  service_account_name: string | null;
  service_account_status: string | null;
  resource_server_identifier: string | null;
  allowed_scopes: string[];
  allowed_resources: string[];
  created_at: Date;
  secret_rotated_at: Date | null;
  secret_last_used_at: Date | null;
  secret_use_count: string | number;
}

export interface InventoryRefreshToken {
  id: string;
  grant_id: string | null;
  client_id: string;
  client_name: string | null;
  account_id: string | null;
  owner_name: string | null;
  owner_status: string | null;
  payload: { scope?: string; resource?: string | string[]; iat?: number; iiat?: number; exp?: number };
  expires_at: Date | null;
}

/** How the statement may narrow the live PATs and SATs it reads. */
export interface ReferenceTokenNarrowing {
  type?: 'pat' | 'sat';
  ownerId?: string;
  /** Only PATs of this user (a viewer who sees only their own credentials, src/domain/authority.ts). */
  userId?: string;
  minIdleDays?: number;
  expiresWithinDays?: number;
}

/** A page of live PATs and SATs by their stored risk score: the inventory's order, in the statement. */
export interface ReferenceTokenPage {
  ownerStatus?: 'active' | 'inactive';
  minScore?: number;
  audience?: string;
  scope?: string;
  /** After this position (risk descending, id ascending). */
  after?: { score: number; id: string };
  limit: number;
}

/** A score as riskScore() computed it, to store on the token row read with `epoch`. */
export interface StoredRiskScore {
  id: string;
  epoch: number;
  score: number;
  /** Epoch ms; Infinity: no time-dependent step comes. */
  validUntil: number;
  /** Epoch ms from which a recorded use makes the score stale; Infinity: never. */
  useMattersFrom: number;
}

const TIME_COLUMNS = ['created_at', 'issued_at', 'rotated_at', 'expires_at', 'last_used_at'] as const;
type TimeColumn = (typeof TIME_COLUMNS)[number];

export function createTokenInventoryRepository(db: Database) {
  return {
    /**
     * Live PATs and SATs; `only` narrows them in the statement (a kind, an owner, idle or
     * expiring within so many days), so a listing of one person's PATs reads those rows, not the
     * organization's. Times come as epoch milliseconds (float8, parsed as numbers), which at
     * 10,000 rows costs a fraction of parsing 50,000 timestamp strings.
     */
    async referenceTokens(organizationId: string, now: Date, only: ReferenceTokenNarrowing & { due?: boolean; dueLimit?: number; page?: ReferenceTokenPage } = {}): Promise<InventoryReferenceToken[]> {
      const params: unknown[] = [organizationId, now];
      let narrower = '';
      let order = '';
      if (only.type) narrower += ` AND t.type = $${params.push(only.type)}`;
      if (only.ownerId !== undefined) narrower += ` AND (t.user_id = $${params.push(only.ownerId)} OR t.service_account_id = $${params.length})`;
      if (only.userId !== undefined) narrower += ` AND t.user_id = $${params.push(only.userId)}`;
      // Scores due for recomputation: stale, or past the time their score holds until.
      if (only.due) narrower += ' AND t.risk_valid_until <= $2';
      if (only.due && only.dueLimit !== undefined) order = ` LIMIT $${params.push(only.dueLimit)}`;
      const page = only.page;
      if (page) {
        // The inventory's own filters (src/audit/token-inventory.ts `matches`), so a page holds only what matches.
        if (page.ownerStatus === 'active') narrower += " AND COALESCE(u.status, sa.status) = 'active'";
        if (page.ownerStatus === 'inactive') narrower += " AND COALESCE(u.status, sa.status) IS DISTINCT FROM 'active'";
        if (page.minScore !== undefined) narrower += ` AND t.risk_score >= $${params.push(page.minScore)}`;
        if (page.audience !== undefined) narrower += ` AND t.resources @> $${params.push(JSON.stringify([page.audience]))}::jsonb`;
        if (page.scope !== undefined) narrower += ` AND t.scopes @> $${params.push(JSON.stringify([page.scope]))}::jsonb`;
        if (page.after) narrower += ` AND (t.risk_score < $${params.push(page.after.score)} OR (t.risk_score = $${params.length} AND t.id COLLATE "C" > $${params.push(page.after.id)}))`;
        // Ids in byte order, as JavaScript compares the (ASCII) ids; reference_tokens_risk_idx serves it.
        order = ` ORDER BY t.risk_score DESC NULLS LAST, t.id COLLATE "C" LIMIT $${params.push(page.limit)}`;
      }
      // Whole days, as the inventory counts them: idle at least N days, expiring in under N + 1.
      if (only.minIdleDays !== undefined) narrower += ` AND COALESCE(t.last_used_at, t.created_at) <= $2::timestamptz - $${params.push(only.minIdleDays)}::int * interval '1 day'`;
      if (only.expiresWithinDays !== undefined) narrower += ` AND t.expires_at < $2::timestamptz + ($${params.push(only.expiresWithinDays)}::int + 1) * interval '1 day'`;
      const ms = (column: string) => `(extract(epoch FROM t.${column}) * 1000)::float8 AS ${column}`;
      const { rows } = await db.query<Omit<InventoryReferenceToken, TimeColumn> & Record<TimeColumn, number | null>>(
        `SELECT t.id, t.type, t.name,
                CASE WHEN t.type = 'pat' THEN 'user' ELSE 'service_account' END AS owner_type,
                COALESCE(t.user_id, t.service_account_id) AS owner_id,
                COALESCE(u.username, sa.name) AS owner_name,
                COALESCE(u.status, sa.status) AS owner_status,
                t.scopes::text AS scopes, t.resources::text AS resources, ${TIME_COLUMNS.map(ms).join(', ')}, t.use_count, t.lifetime_seconds, t.cnf_jkt,
                t.risk_score, t.risk_epoch
           FROM reference_tokens t
           LEFT JOIN users u ON u.id = t.user_id
           LEFT JOIN service_accounts sa ON sa.id = t.service_account_id
          WHERE t.organization_id = $1 AND t.revoked_at IS NULL AND t.expires_at > $2${narrower}${order}`,
        params,
      );
      // Tokens of an organization share a handful of scope and audience lists: each distinct one
      // is parsed once and shared (the inventory only reads them).
      const lists = new Map<string, string[]>();
      const list = (json: string) => {
        let parsed = lists.get(json);
        if (!parsed) lists.set(json, (parsed = JSON.parse(json) as string[]));
        return parsed;
      };
      for (const row of rows as unknown as Record<string, unknown>[]) {
        row.scopes = list(row.scopes as string);
        row.resources = list(row.resources as string);
        for (const column of TIME_COLUMNS) row[column] = row[column] === null ? null : new Date(row[column] as number);
      }
      return rows as unknown as InventoryReferenceToken[];
    },
    /**
     * Stores scores computed from rows read earlier; a row changed since (its epoch moved on: a
     * trigger of migrations/1700000016200_token_risk_scores.sql) keeps its stale mark instead.
     * Returns how many were stored.
     */
    async storeRiskScores(scores: StoredRiskScore[]): Promise<number> {
      if (scores.length === 0) return 0;
      const result = await db.query(
        `UPDATE reference_tokens t SET risk_score = s.score, risk_valid_until = COALESCE(to_timestamp(s.valid_until / 1000), 'infinity'),
                risk_use_matters_from = COALESCE(to_timestamp(s.use_matters_from / 1000), 'infinity')
           FROM unnest($1::text[], $2::int[], $3::int[], $4::float8[], $5::float8[]) AS s(id, epoch, score, valid_until, use_matters_from)
          WHERE t.id = s.id AND t.risk_epoch = s.epoch`,
        [
          scores.map((s) => s.id),
          scores.map((s) => s.epoch),
          scores.map((s) => s.score),
          scores.map((s) => (Number.isFinite(s.validUntil) ? s.validUntil : null)),
          scores.map((s) => (Number.isFinite(s.useMattersFrom) ? s.useMattersFrom : null)),
        ],
      );
      return result.rowCount ?? 0;
    },
    /**
     * Records the organization-wide inputs (`context`) the stored scores are computed under; when
     * they differ from the recorded ones (a policy or a sensitive API changed), or `now` is well
     * before the time scores were last computed for (a clock set back: a score holds from when it
     * was computed, not before), every stored score of the organization becomes stale. True when
     * it did.
     */
    async syncRiskContext(organizationId: string, context: string, now: Date): Promise<boolean> {
      const { rows } = await db.query<{ context: string; behind: boolean }>(
        `SELECT context, $2::timestamptz < scored_at - interval '1 minute' AS behind FROM token_risk_contexts WHERE organization_id = $1`,
        [organizationId, now],
        { prepare: true },
      );
      if (rows[0] && rows[0].context === context && !rows[0].behind) return false;
      await db.transaction(async (tx) => {
        await tx.query("UPDATE reference_tokens SET risk_valid_until = '-infinity', risk_epoch = risk_epoch + 1 WHERE organization_id = $1 AND revoked_at IS NULL", [organizationId]);
        await tx.query(
          `INSERT INTO token_risk_contexts (organization_id, context, scored_at) VALUES ($1, $2, '-infinity')
           ON CONFLICT (organization_id) DO UPDATE SET context = EXCLUDED.context, scored_at = EXCLUDED.scored_at`,
          [organizationId, context],
        );
      });
      return true;
    },
    /** Notes that scores of the organization were computed for `now` (see syncRiskContext). */
    async noteScoredAt(organizationId: string, now: Date): Promise<void> {
      await db.query('UPDATE token_risk_contexts SET scored_at = GREATEST(scored_at, $2) WHERE organization_id = $1', [organizationId, now]);
    },
    /** Confidential clients (applications and resource servers' introspection credentials) that hold a secret. */
    async clientSecrets(organizationId: string): Promise<InventoryClientSecret[]> {
      const { rows } = await db.query<InventoryClientSecret>(
        `SELECT c.client_id, c.name, c.kind, c.service_account_id, sa.name AS service_account_name, sa.status AS service_account_status,
                rs.identifier AS resource_server_identifier, c.allowed_scopes, c.allowed_resources, c.created_at, c.secret_rotated_at,
                c.secret_last_used_at, c.secret_use_count
           FROM clients c
           LEFT JOIN service_accounts sa ON sa.id = c.service_account_id
           LEFT JOIN resource_servers rs ON rs.id = c.resource_server_id
          WHERE c.organization_id = $1 AND c.secret_enc IS NOT NULL AND c.kind IN ('oauth', 'introspection')`,
        [organizationId],
      );
      return rows;
    },
    /** Live (unconsumed, unexpired) refresh tokens of the organization's clients; one per family as a rule. */
    async refreshTokens(organizationId: string, now: Date): Promise<InventoryRefreshToken[]> {
      const { rows } = await db.query<InventoryRefreshToken>(
        `SELECT p.id, p.grant_id, c.client_id, c.name AS client_name, p.payload->>'accountId' AS account_id,
                u.username AS owner_name, u.status AS owner_status, p.payload, p.expires_at
           FROM oidc_payloads p
           JOIN clients c ON c.client_id = p.payload->>'clientId'
           LEFT JOIN users u ON u.id = p.payload->>'accountId'
          WHERE p.model = 'RefreshToken' AND p.consumed_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > $2)
            AND c.organization_id = $1`,
        [organizationId, now],
      );
      return rows;
    },
    async sensitiveAudiences(organizationId: string): Promise<string[]> {
      const { rows } = await db.query<{ identifier: string }>('SELECT identifier FROM resource_servers WHERE organization_id = $1 AND sensitive', [organizationId]);
      return rows.map((r) => r.identifier);
    },
  };
}
export type TokenInventoryRepository = ReturnType<typeof createTokenInventoryRepository>;
