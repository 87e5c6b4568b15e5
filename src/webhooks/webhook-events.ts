import { randomBytes } from 'node:crypto';

import type { AuditEvent } from '../audit/audit-event.js';
import { scrubDetails } from '../audit/audit-writer.js';

/**
 * What a webhook endpoint can receive (docs/webhooks.md): the audit events an organization wants
 * to act on at once, under the same names. Each is sent as a Standard Webhooks message,
 * `{"type", "timestamp", "data"}`, whose `data` is the event as the audit trail records it (the
 * same scrubbing: no secret ever leaves).
 */
export const WEBHOOK_EVENT_TYPES = [
  'token.revoked',
  'token.leak_reported',
  'token.reuse_detected',
  'token.refresh_reuse_detected',
  'token.expiring',
  'token.blocked_by_policy',
  'token.unblocked_by_policy',
  'client.previous_secret_used',
  'client.secret_revoked',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

const TYPES: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);

export const isWebhookEvent = (action: string): action is WebhookEventType => TYPES.has(action);

/** A message id (`webhook-id`): unique per event, the same on every attempt and every endpoint. */
export const newMessageId = () => `msg_${randomBytes(16).toString('base64url')}`;

/** The JSON body of the message for an audit event that happened at `at` (epoch ms). */
export function webhookPayload(event: AuditEvent & { organizationId: string }, at: number): string {
  return JSON.stringify({
    type: event.action,
    timestamp: new Date(at).toISOString(),
    data: {
      organization_id: event.organizationId,
      actor: { type: event.actor.type, id: event.actor.id, ...(event.actor.name !== undefined ? { name: event.actor.name } : {}) },
      ...(event.target ? { target: event.target } : {}),
      outcome: event.outcome,
      ...(event.requestId ? { request_id: event.requestId } : {}),
      details: scrubDetails(event.details),
    },
  });
}

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
