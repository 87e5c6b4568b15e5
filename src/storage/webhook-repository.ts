import type { Database } from './database.js';
import { isPlausibleId } from './ids.js';
import { organizationPage } from './keyset.js';
import type { KeysetAfter } from './user-repository.js';

export interface WebhookEndpointRow {
  id: string;
  organization_id: string;
  url: string;
  description: string | null;
  events: string[];
  secret_enc: string;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface WebhookDeliveryRow {
  id: string;
  message_id: string;
  endpoint_id: string;
  organization_id: string;
  event_type: string;
  payload: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

/** A due delivery with what sending it needs from its endpoint. */
export interface DueDelivery extends WebhookDeliveryRow {
  url: string;
  secret_enc: string;
}

/** One event for the outbox: it becomes a delivery for each enabled endpoint of its organization that takes its type. */
export interface OutboxEvent {
  messageId: string;
  organizationId: string;
  type: string;
  payload: string;
}

/** Webhook endpoints and the durable outbox of their deliveries (migrations/1700000015000_webhooks.sql). */
export function createWebhookRepository(db: Database) {
  return {
    async insertEndpoint(row: Omit<WebhookEndpointRow, 'updated_at'>): Promise<WebhookEndpointRow> {
      const { rows } = await db.query<WebhookEndpointRow>(
        `INSERT INTO webhook_endpoints (id, organization_id, url, description, events, secret_enc, enabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *`,
        [row.id, row.organization_id, row.url, row.description, JSON.stringify(row.events), row.secret_enc, row.enabled, row.created_at],
      );
      return rows[0]!;
    },
    async findEndpoint(organizationId: string, id: string): Promise<WebhookEndpointRow | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const { rows } = await db.query<WebhookEndpointRow>('SELECT * FROM webhook_endpoints WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rows[0];
    },
    async listEndpoints(organizationId: string, options: { after?: KeysetAfter; limit: number }): Promise<WebhookEndpointRow[]> {
      return organizationPage<WebhookEndpointRow>(db, 'webhook_endpoints', organizationId, options);
    },
    async updateEndpoint(
      organizationId: string,
      id: string,
      changes: Partial<Pick<WebhookEndpointRow, 'url' | 'description' | 'events' | 'enabled' | 'secret_enc'>>,
      now: Date,
    ): Promise<WebhookEndpointRow | undefined> {
      const { rows } = await db.query<WebhookEndpointRow>(
        `UPDATE webhook_endpoints SET url = COALESCE($3, url), description = CASE WHEN $4::boolean THEN $5 ELSE description END,
                events = COALESCE($6::jsonb, events), enabled = COALESCE($7, enabled), secret_enc = COALESCE($8, secret_enc), updated_at = $9
          WHERE organization_id = $1 AND id = $2 RETURNING *`,
        [
          organizationId, id, changes.url ?? null, changes.description !== undefined, changes.description ?? null,
          changes.events ? JSON.stringify(changes.events) : null, changes.enabled ?? null, changes.secret_enc ?? null, now,
        ],
      );
      return rows[0];
    },
    async deleteEndpoint(organizationId: string, id: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM webhook_endpoints WHERE organization_id = $1 AND id = $2', [organizationId, id]);
      return rowCount > 0;
    },
    /**
     * Writes the deliveries of a batch of events, one per event and enabled endpoint of its
     * organization that takes its type, in one statement. Returns how many were written.
     */
    async enqueue(events: OutboxEvent[], now: Date): Promise<number> {
      if (events.length === 0) return 0;
      const { rowCount } = await db.query(
        `INSERT INTO webhook_deliveries (id, message_id, endpoint_id, organization_id, event_type, payload, status, attempts, next_attempt_at, created_at)
         SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.message_id, e.id, ev.organization_id, ev.type, ev.payload, 'pending', 0, $5, $5
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS ev(message_id, organization_id, type, payload)
           JOIN webhook_endpoints e ON e.organization_id = ev.organization_id AND e.enabled
                                   AND (e.events ? ev.type OR e.events ? '*')`,
        [events.map((e) => e.messageId), events.map((e) => e.organizationId), events.map((e) => e.type), events.map((e) => e.payload), now],
      );
      return rowCount;
    },
    /**
     * Takes up to `limit` due deliveries and leases them until `leaseUntil`: a node that dies
     * while sending leaves them due again then, so nothing is lost and nothing is sent twice at
     * once. Callers run under the delivery job's advisory lock.
     */
    async claimDue(now: Date, leaseUntil: Date, limit: number): Promise<DueDelivery[]> {
      const { rows } = await db.query<DueDelivery>(
        `WITH due AS (
           SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3
         ), leased AS (
           -- Checked again on the row itself: a claim racing with this one (a run outside the
           -- job's lock) finds the row leased and leaves it.
           UPDATE webhook_deliveries d SET next_attempt_at = $2 FROM due
            WHERE d.id = due.id AND d.status = 'pending' AND d.next_attempt_at <= $1 RETURNING d.*
         )
         SELECT leased.*, e.url, e.secret_enc FROM leased JOIN webhook_endpoints e ON e.id = leased.endpoint_id`,
        [now, leaseUntil, limit],
      );
      return rows;
    },
    /** The outcome of one attempt: delivered, due again at `retryAt`, or failed for good. */
    async recordAttempt(id: string, attempt: { at: Date; statusCode: number | null; error: string | null; outcome: 'delivered' | 'retry' | 'failed'; retryAt?: Date }): Promise<void> {
      await db.query(
        `UPDATE webhook_deliveries
            SET attempts = attempts + 1, last_attempt_at = $2::timestamptz, last_status_code = $3::integer, last_error = $4::text,
                status = CASE $5::text WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
                delivered_at = CASE WHEN $5::text = 'delivered' THEN $2::timestamptz ELSE NULL END,
                next_attempt_at = COALESCE($6::timestamptz, next_attempt_at)
          WHERE id = $1`,
        [id, attempt.at, attempt.statusCode, attempt.error, attempt.outcome, attempt.retryAt ?? null],
      );
    },
    async listDeliveries(organizationId: string, endpointId: string, options: { status?: string; after?: { k: string; id: string }; limit: number }): Promise<WebhookDeliveryRow[]> {
      const { rows } = await db.query<WebhookDeliveryRow>(
        `SELECT * FROM webhook_deliveries
          WHERE organization_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
            AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5))
          ORDER BY created_at DESC, id DESC LIMIT $6`,
        [organizationId, endpointId, options.status ?? null, options.after?.k ?? null, options.after?.id ?? '', options.limit],
      );
      return rows;
    },
  };
}
export type WebhookRepository = ReturnType<typeof createWebhookRepository>;
