import type { AuditEvent } from '../audit/audit-event.js';
import type { RouteContext } from './route.js';

/** The who/where of a Management API call, for its audit event. */
export function auditContext(ctx: RouteContext<unknown, unknown>): Pick<AuditEvent, 'organizationId' | 'actor' | 'outcome' | 'requestId' | 'ip' | 'userAgent'> {
  return {
    organizationId: ctx.principal.organizationId,
    actor: { type: ctx.principal.actor.type, id: ctx.principal.actor.id, name: ctx.principal.actor.name },
    outcome: 'success',
    requestId: ctx.requestId,
    ip: ctx.ip,
    userAgent: ctx.userAgent,
  };
}
