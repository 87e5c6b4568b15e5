import { z } from 'zod';

import type { AuditLog } from '../../audit/audit-event.js';
import type { Clock } from '../../clock.js';
import type { Envelope } from '../../keys/envelope.js';
import type { OutboundGuard } from '../../outbound/outbound-guard.js';
import { newId } from '../../storage/ids.js';
import type { WebhookDeliveryRow, WebhookEndpointRow, WebhookRepository } from '../../storage/webhook-repository.js';
import { webhookSecretContext } from '../../webhooks/webhook-delivery.js';
import { newWebhookSecret, WEBHOOK_EVENT_TYPES } from '../../webhooks/webhook-events.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { assertValid, iso, notFound } from '../problems.js';
import type { FieldProblem } from '../../domain/client-policy.js';
import { route } from '../route.js';
import type { Route } from '../route.js';
import { text, uriText } from '../schemas.js';

/**
 * /api/v1/webhooks (docs/webhooks.md): an organization's endpoints, each receiving the event
 * types it names, signed per Standard Webhooks with a secret shown once (at creation and on
 * rotation) and stored encrypted with the KEK; and each endpoint's delivery log. Where security
 * events of the whole organization go is the organization's configuration, so changing it needs
 * `organization:write`; reading it `organization:read`. A URL that leads to an internal address
 * is refused like a client's `jwks_uri` (src/outbound/outbound-guard.ts), and checked again at
 * every delivery.
 */
export interface WebhookRouteDependencies {
  webhooks: WebhookRepository;
  envelope: Envelope;
  clock: Clock;
  outbound: Pick<OutboundGuard, 'urlProblem'>;
  audit?: AuditLog;
}

const eventType = z.enum([...WEBHOOK_EVENT_TYPES, '*']);

const endpointSchema = z.object({
  id: z.string(),
  url: z.string(),
  description: z.string().nullable(),
  events: z.array(z.string()),
  enabled: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});

const deliverySchema = z.object({
  id: z.string(),
  message_id: z.string().describe('The webhook-id header: the same on every attempt'),
  event_type: z.string(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number(),
  next_attempt_at: z.string().nullable(),
  last_attempt_at: z.string().nullable(),
  last_status_code: z.number().nullable(),
  last_error: z.string().nullable(),
  created_at: z.string(),
  delivered_at: z.string().nullable(),
});

const presentEndpoint = (row: WebhookEndpointRow) => ({
  id: row.id,
  url: row.url,
  description: row.description,
  events: row.events,
  enabled: row.enabled,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});

const presentDelivery = (row: WebhookDeliveryRow) => ({
  id: row.id,
  message_id: row.message_id,
  event_type: row.event_type,
  status: row.status,
  attempts: row.attempts,
  next_attempt_at: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
  last_attempt_at: iso(row.last_attempt_at),
  last_status_code: row.last_status_code,
  last_error: row.last_error,
  created_at: row.created_at.toISOString(),
  delivered_at: iso(row.delivered_at),
});

const urlField = uriText(2048);
const eventsField = z.array(eventType).min(1).max(WEBHOOK_EVENT_TYPES.length + 1).transform((events) => [...new Set(events)]);

export function webhookRoutes(deps: WebhookRouteDependencies): Route[] {
  /** Why Tessera will not send to `value`: not an http(s) URL, credentials in it, or an internal address. */
  async function urlProblems(value: string | undefined): Promise<FieldProblem[]> {
    if (value === undefined) return [];
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return [{ field: 'url', message: 'must be an absolute URL' }];
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return [{ field: 'url', message: 'must be an http or https URL' }];
    if (url.username || url.password) return [{ field: 'url', message: 'must not carry credentials' }];
    const problem = await deps.outbound.urlProblem(value);
    return problem ? [{ field: 'url', message: problem }] : [];
  }

  const seal = (endpointId: string) => {
    const secret = newWebhookSecret();
    return { secret, sealed: deps.envelope.seal(secret, webhookSecretContext(endpointId)) };
  };

  const found = async (organizationId: string, id: string) => {
    const row = await deps.webhooks.findEndpoint(organizationId, id);
    if (!row) throw notFound('webhook endpoint');
    return row;
  };

  return [
    route({
      method: 'POST',
      path: '/webhooks',
      scope: 'organization:write',
      tag: 'Webhooks',
      summary: 'Add a webhook endpoint for some event types (or "*"); its signing secret (whsec_…) is shown once',
      body: z.object({ url: urlField, events: eventsField, description: text(200).optional(), enabled: z.boolean().optional() }).strict(),
      status: 201,
      response: endpointSchema.extend({ secret: z.string().describe('The Standard Webhooks signing secret, shown this once') }),
      async handler(ctx) {
        assertValid(await urlProblems(ctx.body.url));
        const id = newId('whe');
        const { secret, sealed } = seal(id);
        const row = await deps.webhooks.insertEndpoint({
          id,
          organization_id: ctx.principal.organizationId,
          url: ctx.body.url,
          description: ctx.body.description ?? null,
          events: ctx.body.events,
          secret_enc: sealed,
          enabled: ctx.body.enabled ?? true,
          created_at: new Date(deps.clock.now()),
        });
        const presented = presentEndpoint(row);
        recordChange(deps.audit, ctx, { action: 'webhook.created', target: { type: 'webhook_endpoint', id }, after: presented });
        return { status: 201, body: { ...presented, secret } };
      },
    }),
    route({
      method: 'GET',
      path: '/webhooks',
      scope: 'organization:read',
      tag: 'Webhooks',
      summary: 'List webhook endpoints (never their secrets)',
      query: z.object(pageQuery).strict(),
      response: pageSchema(endpointSchema),
      async handler({ principal, query }) {
        const rows = await deps.webhooks.listEndpoints(principal.organizationId, { after: decodeCursor(principal.organizationId, query.cursor), limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (r) => ({ k: r.created_at.toISOString(), id: r.id }), presentEndpoint) };
      },
    }),
    route({
      method: 'GET',
      path: '/webhooks/{id}',
      scope: 'organization:read',
      tag: 'Webhooks',
      summary: 'One webhook endpoint',
      response: endpointSchema,
      errors: [404],
      async handler({ principal, params }) {
        return { body: presentEndpoint(await found(principal.organizationId, params.id!)) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/webhooks/{id}',
      scope: 'organization:write',
      tag: 'Webhooks',
      summary: 'Change a webhook endpoint: URL, event types, description, enabled',
      body: z.object({ url: urlField.optional(), events: eventsField.optional(), description: text(200).nullable().optional(), enabled: z.boolean().optional() }).strict(),
      response: endpointSchema,
      errors: [404],
      async handler(ctx) {
        const before = await found(ctx.principal.organizationId, ctx.params.id!);
        assertValid(await urlProblems(ctx.body.url));
        const row = await deps.webhooks.updateEndpoint(ctx.principal.organizationId, before.id, ctx.body, new Date(deps.clock.now()));
        if (!row) throw notFound('webhook endpoint');
        const presented = presentEndpoint(row);
        recordChange(deps.audit, ctx, { action: 'webhook.updated', target: { type: 'webhook_endpoint', id: row.id }, before: presentEndpoint(before), after: presented });
        return { body: presented };
      },
    }),
    route({
      method: 'DELETE',
      path: '/webhooks/{id}',
      scope: 'organization:write',
      tag: 'Webhooks',
      summary: 'Remove a webhook endpoint and its pending deliveries',
      errors: [404],
      async handler(ctx) {
        const before = await found(ctx.principal.organizationId, ctx.params.id!);
        await deps.webhooks.deleteEndpoint(ctx.principal.organizationId, before.id);
        recordChange(deps.audit, ctx, { action: 'webhook.deleted', target: { type: 'webhook_endpoint', id: before.id }, before: presentEndpoint(before) });
        return { status: 204 };
      },
    }),
    route({
      method: 'POST',
      path: '/webhooks/{id}/secret',
      scope: 'organization:write',
      tag: 'Webhooks',
      summary: 'A new signing secret, shown once; deliveries from now on are signed with it only',
      body: z.object({}).strict(),
      response: z.object({ id: z.string(), secret: z.string() }),
      errors: [404],
      async handler(ctx) {
        const before = await found(ctx.principal.organizationId, ctx.params.id!);
        const { secret, sealed } = seal(before.id);
        await deps.webhooks.updateEndpoint(ctx.principal.organizationId, before.id, { secret_enc: sealed }, new Date(deps.clock.now()));
        recordChange(deps.audit, ctx, { action: 'webhook.secret_rotated', target: { type: 'webhook_endpoint', id: before.id } });
        return { body: { id: before.id, secret } };
      },
    }),
    route({
      method: 'GET',
      path: '/webhooks/{id}/deliveries',
      scope: 'organization:read',
      tag: 'Webhooks',
      summary: 'The delivery log of an endpoint, newest first: status, attempts, last answer, next attempt',
      query: z.object({ ...pageQuery, status: z.enum(['pending', 'delivered', 'failed']).optional() }).strict(),
      response: pageSchema(deliverySchema),
      errors: [404],
      async handler({ principal, params, query }) {
        const endpoint = await found(principal.organizationId, params.id!);
        const rows = await deps.webhooks.listDeliveries(principal.organizationId, endpoint.id, { status: query.status, after: decodeCursor(principal.organizationId, query.cursor), limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (r) => ({ k: r.created_at.toISOString(), id: r.id }), presentDelivery) };
      },
    }),
  ];
}
