import type { AuditEvent, AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';
import type { OutboxEvent, WebhookRepository } from '../storage/webhook-repository.js';
import { isWebhookEvent, newMessageId, webhookPayload } from './webhook-events.js';

/**
 * The way into the webhook outbox: every audit event an endpoint can receive becomes a delivery
 * row in PostgreSQL (migrations/1700000015000_webhooks.sql), one per enabled endpoint of its
 * organization that takes its type. It sits on the audit log (`withWebhooks`), so whatever is
 * audited anywhere (the token service, client authentication, the engine's events, the expiry
 * job) reaches webhooks from this one place. Like the audit writer, recording never waits for
 * the database: events are written in batches a few hundred milliseconds apart (a leak report
 * of 1,000 tokens is a couple of statements), and kept to be written again while PostgreSQL is
 * away. A process killed in between loses at most those milliseconds; once written, a delivery
 * survives anything.
 */
export interface WebhookOutbox {
  add(event: AuditEvent): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

const BATCH = 500;
const MAX_QUEUE = 100_000;

export function createWebhookOutbox(deps: { repository: Pick<WebhookRepository, 'enqueue'>; clock: Clock; logger: Logger; intervalMs?: number }): WebhookOutbox {
  let queue: OutboxEvent[] = [];
  let flushing: Promise<void> | undefined;

  async function write(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, BATCH);
      try {
        await deps.repository.enqueue(batch, new Date(deps.clock.now()));
      } catch (error) {
        deps.logger.warn({ err: error, pending: queue.length }, 'webhook deliveries not written; will retry');
        return;
      }
      queue = queue.slice(batch.length);
    }
  }
  const flush = () => {
    flushing ??= write().finally(() => {
      flushing = undefined;
    });
    return flushing;
  };
  const timer = setInterval(() => void flush(), deps.intervalMs ?? 200);
  timer.unref();

  return {
    add(event) {
      if (!isWebhookEvent(event.action) || !event.organizationId) return;
      const organizationId = event.organizationId;
      queue.push({ messageId: newMessageId(), organizationId, type: event.action, payload: webhookPayload({ ...event, organizationId }, deps.clock.now()) });
      if (queue.length > MAX_QUEUE) {
        deps.logger.error({ dropped: queue.length - MAX_QUEUE }, 'webhook outbox queue full; oldest events dropped');
        queue = queue.slice(queue.length - MAX_QUEUE);
      }
    },
    async flush() {
      await flushing;
      await flush();
    },
    async close() {
      clearInterval(timer);
      await flushing;
      await flush();
      if (queue.length > 0) deps.logger.error({ lost: queue.length }, 'webhook deliveries could not be written before shutdown');
    },
  };
}

/** The audit log, with every event also offered to the webhook outbox. */
export function withWebhooks(audit: AuditLog, outbox: WebhookOutbox): AuditLog {
  return {
    record(event) {
      audit.record(event);
      outbox.add(event);
    },
    async flush() {
      await Promise.all([audit.flush(), outbox.flush()]);
    },
    close: () => audit.close(),
  };
}
