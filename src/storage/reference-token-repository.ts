import type { Database, Queryable } from './database.js';

export interface ReferenceTokenRow {
  id: string;
  organization_id: string;
  type: 'pat' | 'sat';
  name: string;
  user_id: string | null;
  service_account_id: string | null;
  scopes: string[];
  resources: string[];
  secret_hash: Buffer;
  previous_secret_hash: Buffer | null;
  previous_valid_until: Date | null;
  rotation_key_hash: Buffer | null;
  created_by: string | null;
  created_at: Date;
  issued_at: Date;
  expires_at: Date;
  rotated_at: Date | null;
  last_used_at: Date | null;
  use_count: number;
  revoked_at: Date | null;
  revoked_reason: string | null;
  lifetime_seconds: number | null;
  rotation_count: number;
  /** The rotation asked for cutover on first use, and the new secret has not been used yet. */
  previous_ends_on_first_use: boolean;
  /** When the new secret was first used, ending the previous one (cutover on first use). */
  previous_ended_at: Date | null;
  /** Not usable before this time, or null. */
  not_before: Date | null;
  /** CIDR ranges it may be used from, or null for any address. */
  allowed_ips: string[] | null;
  /** Key-bound tokens: the RFC 7638 thumbprint of the DPoP key it is bound to, or null for a bearer token. */
  cnf_jkt: string | null;
}

/** A token with what introspection needs to know about its owner. */
export interface ReferenceTokenWithOwner extends ReferenceTokenRow {
  owner_name: string;
  owner_status: string;
  owner_role: string | null;
}

export interface ReferenceTokenUsage {
  resource: string;
  use_count: number;
  last_used_at: Date;
}

export type NewReferenceToken = Pick<ReferenceTokenRow, 'id' | 'organization_id' | 'type' | 'name' | 'user_id' | 'service_account_id' | 'scopes' | 'resources' | 'secret_hash' | 'rotation_key_hash' | 'created_by' | 'expires_at'> &
  Partial<Pick<ReferenceTokenRow, 'not_before' | 'allowed_ips' | 'cnf_jkt'>> & { now: Date };

export interface ReferenceTokenFilter {
  organizationId: string;
  type?: 'pat' | 'sat';
  /** A user id or a service account id. */
  ownerId?: string;
  state?: 'active' | 'revoked' | 'expired';
  expiringBefore?: Date;
  /** Tokens not used since this time (never-used tokens count by their creation). */
  lastUsedBefore?: Date;
  ids?: string[];
  now: Date;
  after?: { k: string; id: string };
  limit: number;
}

/** A token that reached one of its expiry-warning thresholds. */
export interface ExpiryWarningDue {
  id: string;
  organization_id: string;
  type: 'pat' | 'sat';
  name: string;
  expires_at: Date;
  owner_id: string;
  threshold_days: number;
}

/** The hashes by which a token can be presented: current and previous secret. */
export interface TokenHashes {
  id: string;
  organization_id: string;
  secret_hash: Buffer;
  previous_secret_hash: Buffer | null;
}

const WITH_OWNER = `SELECT t.*, COALESCE(u.username, sa.name) AS owner_name, COALESCE(u.status, sa.status) AS owner_status, u.role AS owner_role
                      FROM reference_tokens t
                      LEFT JOIN users u ON u.id = t.user_id
                      LEFT JOIN service_accounts sa ON sa.id = t.service_account_id`;

export function createReferenceTokenRepository(db: Database) {
  /** Moves a replaced secret or consumed rotation key to the retired list (reuse detection). */
  const retire = (q: Queryable, tokenId: string, hash: Buffer | null, kind: 'secret' | 'rotation_key', now: Date) =>
    hash
      ? q.query('INSERT INTO reference_token_retired_hashes (hash, token_id, kind, retired_at) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING', [hash, tokenId, kind, now])
      : Promise.resolve();

  return {
    async insert(token: NewReferenceToken, q: Queryable = db): Promise<ReferenceTokenRow> {
      const lifetime = Math.round((token.expires_at.getTime() - token.now.getTime()) / 1000);
      const { rows } = await q.query<ReferenceTokenRow>(
        `INSERT INTO reference_tokens (id, organization_id, type, name, user_id, service_account_id, scopes, resources,
                                       secret_hash, rotation_key_hash, created_by, created_at, issued_at, expires_at, lifetime_seconds, not_before, allowed_ips, cnf_jkt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17) RETURNING *`,
        [
          token.id, token.organization_id, token.type, token.name, token.user_id, token.service_account_id,
          JSON.stringify(token.scopes), JSON.stringify(token.resources), token.secret_hash, token.rotation_key_hash,
          token.created_by, token.now, token.expires_at, lifetime, token.not_before ?? null, token.allowed_ips ? JSON.stringify(token.allowed_ips) : null,
          token.cnf_jkt ?? null,
        ],
      );
      return rows[0]!;
    },
    async findWithOwnerByHash(hash: Buffer): Promise<ReferenceTokenWithOwner | undefined> {
      // The introspection of a token no cache holds: prepared, since planning this join costs
      // three times what running it does.
      const { rows } = await db.query<ReferenceTokenWithOwner>(`${WITH_OWNER} WHERE t.secret_hash = $1 OR t.previous_secret_hash = $1`, [hash], { prepare: true });
      return rows[0];
    },
    async findWithOwnerById(id: string): Promise<ReferenceTokenWithOwner | undefined> {
      // Also what a token exchanged from this one is checked against (src/tokens/exchange-lineage.ts) when no cache holds it: prepared.
      const { rows } = await db.query<ReferenceTokenWithOwner>(`${WITH_OWNER} WHERE t.id = $1`, [id], { prepare: true });
      return rows[0];
    },
    /** The token a retired (replaced or consumed) hash belonged to. */
    async findRetired(hash: Buffer): Promise<{ token_id: string; organization_id: string; kind: 'secret' | 'rotation_key' } | undefined> {
      const { rows } = await db.query<{ token_id: string; organization_id: string; kind: 'secret' | 'rotation_key' }>(
        `SELECT r.token_id, t.organization_id, r.kind FROM reference_token_retired_hashes r JOIN reference_tokens t ON t.id = r.token_id WHERE r.hash = $1`,
        [hash],
        { prepare: true },
      );
      return rows[0];
    },
    async findByRotationKey(hash: Buffer): Promise<ReferenceTokenWithOwner | undefined> {
      const { rows } = await db.query<ReferenceTokenWithOwner>(`${WITH_OWNER} WHERE t.rotation_key_hash = $1`, [hash]);
      return rows[0];
    },
    /** Revokes a live token; returns its hashes (for cache invalidation) or undefined if it was not live. */
    async revoke(id: string, reason: string, now: Date): Promise<TokenHashes | undefined> {
      const { rows } = await db.query<TokenHashes>(
        `UPDATE reference_tokens SET revoked_at = $3, revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL
         RETURNING id, organization_id, secret_hash, previous_secret_hash`,
        [id, reason, now],
      );
      return rows[0];
    },
    /**
     * Every token one of `hashes` presents: as its current or previous secret, or as its rotation
     * key. One statement for a whole leak report (up to 1,000 strings), each column by its index.
     */
    async findByAnyHash(hashes: Buffer[]): Promise<ReferenceTokenRow[]> {
      if (hashes.length === 0) return [];
      // Sent as hex text: both drivers pass a text[] the same way.
      const { rows } = await db.query<ReferenceTokenRow>(
        `WITH h AS (SELECT array_agg(decode(x, 'hex')) AS a FROM unnest($1::text[]) AS x)
         SELECT t.* FROM reference_tokens t, h
          WHERE t.secret_hash = ANY(h.a) OR t.previous_secret_hash = ANY(h.a) OR t.rotation_key_hash = ANY(h.a)`,
        [hashes.map((hash) => hash.toString('hex'))],
      );
      return rows;
    },
    /** Revokes the live tokens among `ids` in one statement; returns those it revoked. */
    async revokeMany(ids: string[], reason: string, now: Date): Promise<TokenHashes[]> {
      if (ids.length === 0) return [];
      const { rows } = await db.query<TokenHashes>(
        `UPDATE reference_tokens SET revoked_at = $3, revoked_reason = $2 WHERE id = ANY($1::text[]) AND revoked_at IS NULL
         RETURNING id, organization_id, secret_hash, previous_secret_hash`,
        [ids, reason, now],
      );
      return rows;
    },
    /** The token whose current or previous secret hashes to `hash`. */
    async findByHash(hash: Buffer): Promise<ReferenceTokenRow | undefined> {
      const { rows } = await db.query<ReferenceTokenRow>('SELECT * FROM reference_tokens WHERE secret_hash = $1 OR previous_secret_hash = $1', [hash]);
      return rows[0];
    },
    /**
     * Replaces the secret: the current one becomes the previous one until `previousValidUntil`,
     * the former previous one is retired. With `rotationKey`, the presented key must still be the
     * token's (checked under the row lock) and is consumed in the same transaction.
     */
    async rotate(input: {
      id: string;
      newSecretHash: Buffer;
      previousValidUntil: Date;
      now: Date;
      expiresAt?: Date;
      consumeRotationKey?: { presented: Buffer; next: Buffer };
      /** The previous secret also ends when the new one is first used. */
      endPreviousOnFirstUse?: boolean;
    }): Promise<{ before: ReferenceTokenRow; after: ReferenceTokenRow } | undefined> {
      return db.transaction(async (tx) => {
        const { rows } = await tx.query<ReferenceTokenRow>('SELECT * FROM reference_tokens WHERE id = $1 AND revoked_at IS NULL FOR UPDATE', [input.id]);
        const before = rows[0];
        if (!before) return undefined;
        if (input.consumeRotationKey && !before.rotation_key_hash?.equals(input.consumeRotationKey.presented)) return undefined;
        await retire(tx, before.id, before.previous_secret_hash, 'secret', input.now);
        if (input.consumeRotationKey) await retire(tx, before.id, input.consumeRotationKey.presented, 'rotation_key', input.now);
        const { rows: updated } = await tx.query<ReferenceTokenRow>(
          `UPDATE reference_tokens
              SET previous_secret_hash = secret_hash, previous_valid_until = $3, secret_hash = $2, rotated_at = $4, issued_at = $4,
                  rotation_count = rotation_count + 1, expires_at = COALESCE($5, expires_at),
                  rotation_key_hash = CASE WHEN $6::bytea IS NULL THEN rotation_key_hash ELSE $6::bytea END,
                  previous_ends_on_first_use = $7, previous_ended_at = NULL
            WHERE id = $1 RETURNING *`,
          [input.id, input.newSecretHash, input.previousValidUntil, input.now, input.expiresAt ?? null, input.consumeRotationKey?.next ?? null, input.endPreviousOnFirstUse === true],
        );
        return { before, after: updated[0]! };
      });
    },
    /**
     * The new secret of a first-use cutover was used: the previous secret ends now. Returns the
     * token's hashes (for cache invalidation) the one time it happens, undefined after.
     */
    async endPreviousSecret(id: string, now: Date): Promise<TokenHashes | undefined> {
      const { rows } = await db.query<TokenHashes>(
        `UPDATE reference_tokens SET previous_ends_on_first_use = false, previous_ended_at = $2
          WHERE id = $1 AND previous_ends_on_first_use AND revoked_at IS NULL
          RETURNING id, organization_id, secret_hash, previous_secret_hash`,
        [id, now],
      );
      return rows[0];
    },
    async list(filter: ReferenceTokenFilter): Promise<ReferenceTokenWithOwner[]> {
      const params: unknown[] = [filter.organizationId];
      const where = ['t.organization_id = $1'];
      const add = (clause: (n: string) => string, value: unknown) => {
        params.push(value);
        where.push(clause(`$${params.length}`));
      };
      if (filter.type) add((p) => `t.type = ${p}`, filter.type);
      // A PAT's owner is its user and a SAT's its service account (the table's CHECK): with the
      // kind known, the owner's own index (user_id or service_account_id, created_at, id) serves the page.
      if (filter.ownerId) add((p) => (filter.type === 'pat' ? `t.user_id = ${p}` : filter.type === 'sat' ? `t.service_account_id = ${p}` : `(t.user_id = ${p} OR t.service_account_id = ${p})`), filter.ownerId);
      if (filter.state === 'active') add((p) => `(t.revoked_at IS NULL AND t.expires_at > ${p})`, filter.now);
      if (filter.state === 'revoked') where.push('t.revoked_at IS NOT NULL');
      if (filter.state === 'expired') add((p) => `(t.revoked_at IS NULL AND t.expires_at <= ${p})`, filter.now);
      if (filter.expiringBefore) add((p) => `t.expires_at < ${p}`, filter.expiringBefore);
      if (filter.lastUsedBefore) add((p) => `COALESCE(t.last_used_at, t.created_at) < ${p}`, filter.lastUsedBefore);
      if (filter.ids) add((p) => `t.id = ANY(${p}::text[])`, filter.ids);
      if (filter.after) {
        add((p) => `(t.created_at, t.id) > (${p}::timestamptz`, filter.after.k);
        params.push(filter.after.id);
        where[where.length - 1] += `, $${params.length})`;
      }
      params.push(filter.limit);
      const { rows } = await db.query<ReferenceTokenWithOwner>(
        `${WITH_OWNER} WHERE ${where.join(' AND ')} ORDER BY t.created_at, t.id LIMIT $${params.length}`,
        params,
      );
      return rows;
    },
    async usage(tokenId: string): Promise<ReferenceTokenUsage[]> {
      const { rows } = await db.query<ReferenceTokenUsage>('SELECT resource, use_count, last_used_at FROM reference_token_usage WHERE token_id = $1 ORDER BY resource', [tokenId]);
      return rows;
    },
    /** Hashes of every live token of a user or service account (ownership changes). */
    async hashesOfOwner(ownerId: string): Promise<TokenHashes[]> {
      const { rows } = await db.query<TokenHashes>(
        `SELECT id, organization_id, secret_hash, previous_secret_hash FROM reference_tokens
          WHERE (user_id = $1 OR service_account_id = $1) AND revoked_at IS NULL`,
        [ownerId],
      );
      return rows;
    },
    /**
     * Revokes live tokens unused for their organization's idle limit (policy
     * `idle_revocation_days`, `defaultDays` when the organization does not set it).
     */
    async revokeIdle(now: Date, defaultDays: number, limit: number): Promise<TokenHashes[]> {
      const { rows } = await db.query<TokenHashes>(
        `UPDATE reference_tokens t SET revoked_at = $1, revoked_reason = 'idle'
           FROM (SELECT t2.id FROM reference_tokens t2 JOIN organizations o ON o.id = t2.organization_id
                  WHERE t2.revoked_at IS NULL AND t2.expires_at > $1
                    AND COALESCE(t2.last_used_at, t2.rotated_at, t2.created_at)
                        < $1 - COALESCE((o.policy->>'idle_revocation_days')::float8, $2) * interval '1 day'
                  LIMIT $3) idle
          WHERE t.id = idle.id AND t.revoked_at IS NULL
          RETURNING t.id, t.organization_id, t.secret_hash, t.previous_secret_hash`,
        [now, defaultDays, limit],
      );
      return rows;
    },
    /**
     * Marks live tokens that reached their expiry as reported, at most `limit` of them, and
     * returns them; each expiry is returned once, whichever node asks.
     */
    async markExpired(now: Date, limit: number): Promise<{ id: string; organization_id: string; type: 'pat' | 'sat'; expires_at: Date }[]> {
      const { rows } = await db.query<{ id: string; organization_id: string; type: 'pat' | 'sat'; expires_at: Date }>(
        `UPDATE reference_tokens t SET expiry_recorded_at = $1
           FROM (SELECT id FROM reference_tokens
                  WHERE revoked_at IS NULL AND expiry_recorded_at IS NULL AND expires_at <= $1
                  ORDER BY expires_at LIMIT $2) due
          WHERE t.id = due.id AND t.expiry_recorded_at IS NULL
          RETURNING t.id, t.organization_id, t.type, t.expires_at`,
        [now, limit],
      );
      return rows;
    },
    /**
     * Live tokens within one of their organization's expiry-warning thresholds (policy
     * `expiry_warning_days`, `defaultDays` when the organization does not set it) that were not
     * warned for it, or for a tighter one, at this expiry yet. A threshold at least as long as the token's own lifetime
     * (since its secret was issued) does not apply: a week-long token is not "expiring in 30 days"
     * the moment it is made.
     */
    async dueExpiryWarnings(now: Date, defaultDays: readonly number[], limit: number): Promise<ExpiryWarningDue[]> {
      const { rows } = await db.query<ExpiryWarningDue>(
        `SELECT t.id, t.organization_id, t.type, t.name, t.expires_at, COALESCE(t.user_id, t.service_account_id) AS owner_id, th.days AS threshold_days
           FROM reference_tokens t
           JOIN organizations o ON o.id = t.organization_id
           CROSS JOIN LATERAL (
             SELECT d::float8 AS days FROM jsonb_array_elements_text(COALESCE(o.policy->'expiry_warning_days', $2::jsonb)) AS d
           ) th
          WHERE t.revoked_at IS NULL AND t.expires_at > $1
            AND t.expires_at <= $1 + th.days * interval '1 day'
            AND t.expires_at - t.issued_at > th.days * interval '1 day'
            AND NOT EXISTS (SELECT 1 FROM reference_token_expiry_warnings w
                             WHERE w.token_id = t.id AND w.threshold_days <= th.days AND w.expires_at = t.expires_at)
          ORDER BY t.expires_at, t.id, th.days
          LIMIT $3`,
        [now, JSON.stringify(defaultDays), limit],
      );
      return rows;
    },
    /** Claims warnings (token, threshold, expiry); returns the ones this call claimed, each claimed once whoever asks. */
    async claimExpiryWarnings(claims: { tokenId: string; thresholdDays: number; expiresAt: Date }[], now: Date): Promise<{ token_id: string; threshold_days: number }[]> {
      if (claims.length === 0) return [];
      const { rows } = await db.query<{ token_id: string; threshold_days: number }>(
        `INSERT INTO reference_token_expiry_warnings (token_id, threshold_days, expires_at, warned_at)
         SELECT * , $4::timestamptz FROM unnest($1::text[], $2::float8[], $3::timestamptz[])
         ON CONFLICT DO NOTHING RETURNING token_id, threshold_days`,
        [claims.map((c) => c.tokenId), claims.map((c) => c.thresholdDays), claims.map((c) => c.expiresAt), now],
      );
      return rows;
    },
    /** Where a token was seen from: the pair is upserted and only the 5 most recent pairs are kept. */
    async recordSighting(tokenId: string, ip: string, userAgent: string, at: Date): Promise<void> {
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO reference_token_sightings (token_id, ip, user_agent, last_seen)
           SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM reference_tokens WHERE id = $1)
           ON CONFLICT (token_id, ip, user_agent) DO UPDATE SET last_seen = GREATEST(reference_token_sightings.last_seen, EXCLUDED.last_seen)`,
          [tokenId, ip, userAgent, at],
        );
        await tx.query(
          `DELETE FROM reference_token_sightings WHERE token_id = $1 AND (ip, user_agent) NOT IN
             (SELECT ip, user_agent FROM reference_token_sightings WHERE token_id = $1 ORDER BY last_seen DESC LIMIT 5)`,
          [tokenId],
        );
      });
    },
    async sightings(tokenId: string): Promise<{ ip: string; user_agent: string; last_seen: Date }[]> {
      const { rows } = await db.query<{ ip: string; user_agent: string; last_seen: Date }>('SELECT ip, user_agent, last_seen FROM reference_token_sightings WHERE token_id = $1 ORDER BY last_seen DESC', [tokenId]);
      return rows;
    },
    /**
     * One batched write of usage counters: per token and per resource server, and per
     * organization and day (UTC) of the batch's last use, which the activity chart reads. A batch
     * spans a few seconds, so only the uses of a batch that crosses midnight land on the later day.
     */
    async recordUsage(batch: { subject: string; resource: string; count: number; lastUsedAt: Date }[]): Promise<void> {
      if (batch.length === 0) return;
      await db.query(
        `WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u(token_id, resource, n, at)
                     WHERE EXISTS (SELECT 1 FROM reference_tokens t WHERE t.id = u.token_id)),
              per_resource AS (
                INSERT INTO reference_token_usage (token_id, resource, use_count, last_used_at)
                SELECT token_id, resource, n, at FROM u
                ON CONFLICT (token_id, resource) DO UPDATE
                  SET use_count = reference_token_usage.use_count + EXCLUDED.use_count,
                      last_used_at = GREATEST(reference_token_usage.last_used_at, EXCLUDED.last_used_at)),
              per_day AS (
                INSERT INTO reference_token_usage_daily (organization_id, day, uses)
                SELECT t.organization_id, (u.at AT TIME ZONE 'UTC')::date, sum(u.n)::bigint
                  FROM u JOIN reference_tokens t ON t.id = u.token_id
                 GROUP BY 1, 2
                ON CONFLICT (organization_id, day) DO UPDATE SET uses = reference_token_usage_daily.uses + EXCLUDED.uses)
         UPDATE reference_tokens t SET use_count = t.use_count + s.n, last_used_at = GREATEST(t.last_used_at, s.at)
           FROM (SELECT token_id, sum(n)::bigint AS n, max(at) AS at FROM u GROUP BY token_id) s
          WHERE t.id = s.token_id`,
        [batch.map((b) => b.subject), batch.map((b) => b.resource), batch.map((b) => b.count), batch.map((b) => b.lastUsedAt)],
      );
    },
  };
}
export type ReferenceTokenRepository = ReturnType<typeof createReferenceTokenRepository>;
