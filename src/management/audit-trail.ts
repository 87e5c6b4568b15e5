import type { AuditLog } from '../audit/audit-event.js';
import { diff } from '../audit/audit-event.js';
import type { RouteContext } from './route.js';

/**
 * docs/design.md, "Every use leaves a trace": every administrative change is an audit event, with who did it, from where, and
 * a field-level before/after diff. Callers pass presented objects that hold no secret; `omit`
 * names anything that must stay out of the trail anyway.
 */
export function recordChange(
  audit: AuditLog | undefined,
  ctx: Pick<RouteContext<unknown, unknown>, 'principal' | 'requestId' | 'ip' | 'userAgent'>,
  event: {
    action: string;
    target: { type: string; id: string };
    before?: Record<string, unknown> | null;
    after?: Record<string, unknown> | null;
    omit?: string[];
    details?: Record<string, unknown>;
  },
): void {
  if (!audit) return;
  const changes = diff(event.before ?? {}, event.after ?? {}, ['updated_at', ...(event.omit ?? [])]);
  audit.record({
    organizationId: ctx.principal.organizationId,
    actor: { type: ctx.principal.actor.type, id: ctx.principal.actor.id, name: ctx.principal.actor.name },
    action: event.action,
    target: event.target,
    outcome: 'success',
    requestId: ctx.requestId,
    ip: ctx.ip,
    userAgent: ctx.userAgent,
    details: { ...(Object.keys(changes).length > 0 ? { changes } : {}), ...event.details },
  });
}
