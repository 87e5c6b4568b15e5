import { Webhook } from 'standardwebhooks';

import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';
import type { Envelope } from '../keys/envelope.js';
import type { DueDelivery, WebhookRepository } from '../storage/webhook-repository.js';

/**
 * Sends what the outbox holds (src/webhooks/webhook-outbox.ts), signed per the Standard Webhooks
 * specification with its maintained library: `webhook-id` (the message id, the same on every
 * attempt), `webhook-timestamp` (this attempt, seconds) and `webhook-signature`
 * (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). Every request goes through the outbound
 * guard (src/outbound/outbound-guard.ts): an endpoint whose name now resolves to an internal
 * address gets no connection. A 2xx answer delivers; anything else (another status, a refusal,
 * a timeout) is tried again after the next step of `retrySchedule`, and once the schedule is
 * used up the delivery is `failed`. Runs as a job on one node at a time (src/app/jobs.ts).
 */
export interface WebhookDeliveryDependencies {
  repository: Pick<WebhookRepository, 'claimDue' | 'recordAttempt'>;
  envelope: Envelope;
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  clock: Clock;
  logger: Logger;
  /** Seconds to wait before each retry; its length is the number of retries. */
  retrySchedule: readonly number[];
  timeoutSeconds: number;
}

/** Envelope context of an endpoint's signing secret: binds the ciphertext to its endpoint. */
export const webhookSecretContext = (endpointId: string) => `webhook-secret:${endpointId}`;

const BATCH = 50;
const MAX_BATCHES_PER_RUN = 20;
const CONCURRENCY = 8;
const MAX_ERROR = 200;

export function createWebhookDelivery(deps: WebhookDeliveryDependencies) {
  const { clock } = deps;
  /** Longer than any attempt can take: a delivery whose sender died is due again after this. */
  const leaseMs = (deps.timeoutSeconds + 30) * 1000;

  async function attempt(delivery: DueDelivery): Promise<{ statusCode: number | null; error: string | null }> {
    try {
      const secret = deps.envelope.open(delivery.secret_enc, webhookSecretContext(delivery.endpoint_id));
      const sentAt = new Date(clock.now());
      const signature = new Webhook(secret).sign(delivery.message_id, sentAt, delivery.payload);
      const response = await deps.fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Tessera-Webhooks',
          'webhook-id': delivery.message_id,
          'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body: delivery.payload,
        signal: AbortSignal.timeout(deps.timeoutSeconds * 1000),
      });
      await response.body?.cancel().catch(() => {});
      return { statusCode: response.status, error: response.ok ? null : `answered ${response.status}` };
    } catch (error) {
      return { statusCode: null, error: String((error as Error).message ?? error).slice(0, MAX_ERROR) };
    }
  }

  async function settle(delivery: DueDelivery): Promise<boolean> {
    const result = await attempt(delivery);
    const at = new Date(clock.now());
    const delivered = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
    const wait = deps.retrySchedule[delivery.attempts];
    const outcome = delivered ? 'delivered' : wait === undefined ? 'failed' : 'retry';
    await deps.repository.recordAttempt(delivery.id, { at, ...result, outcome, ...(outcome === 'retry' ? { retryAt: new Date(at.getTime() + wait! * 1000) } : {}) });
    if (outcome === 'failed') deps.logger.warn({ delivery: delivery.id, endpoint: delivery.endpoint_id, attempts: delivery.attempts + 1 }, 'webhook delivery failed for good');
    return delivered;
  }

  return {
    /** Sends every delivery that is due (bounded per run); returns how many were delivered. */
    async run(): Promise<number> {
      let delivered = 0;
      for (let i = 0; i < MAX_BATCHES_PER_RUN; i += 1) {
        const now = clock.now();
        const due = await deps.repository.claimDue(new Date(now), new Date(now + leaseMs), BATCH);
        for (let start = 0; start < due.length; start += CONCURRENCY) {
          const results = await Promise.all(due.slice(start, start + CONCURRENCY).map(settle));
          delivered += results.filter(Boolean).length;
        }
        if (due.length < BATCH) break;
      }
      return delivered;
    },
  };
}
export type WebhookDelivery = ReturnType<typeof createWebhookDelivery>;

/** Advisory lock key of the webhook delivery job (unique among jobs). */
export const WEBHOOK_DELIVERY_LOCK_KEY = 0x77_68_6b_64; // "whkd"
