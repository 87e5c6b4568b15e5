import { z } from 'zod';

import type { AuditLog } from '../../audit/audit-event.js';
import type { LoginThrottle } from '../../domain/login-throttle.js';
import { auditContext } from '../audit-context.js';
import { route } from '../route.js';
import type { Route } from '../route.js';

const lockoutSchema = z.object({
  kind: z.enum(['user', 'address']),
  organization_id: z.string().nullable(),
  username: z.string().nullable(),
  address: z.string().nullable(),
  failures: z.number(),
  locked_at: z.string(),
  locked_until: z.string(),
});

/**
 * Sign-in lock-outs of the caller's organization (src/domain/login-throttle.ts): which usernames
 * are locked after repeated failed sign-ins, until when, and lifting one. Lock-outs are few and
 * short-lived, so the list comes whole (`next_cursor` is always null).
 */
export function signInLockoutRoutes(deps: { throttle: LoginThrottle; audit: AuditLog }): Route[] {
  return [
    route({
      method: 'GET',
      path: '/sign-in-lockouts',
      scope: 'users:read',
      tag: 'Users',
      summary: 'Usernames currently locked out after repeated failed sign-ins',
      response: z.object({ items: z.array(lockoutSchema), next_cursor: z.null() }),
      async handler({ principal }) {
        return { body: { items: await deps.throttle.listLockouts(principal.organizationId), next_cursor: null } };
      },
    }),
    route({
      method: 'DELETE',
      path: '/sign-in-lockouts/{username}',
      scope: 'users:write',
      tag: 'Users',
      summary: 'Lift the lock-out of a username (its failed attempts are forgotten)',
      status: 204,
      async handler(ctx) {
        const username = ctx.params.username ?? '';
        await deps.throttle.unlock(ctx.principal.organizationId, username);
        deps.audit.record({ ...auditContext(ctx), action: 'user.unlocked', target: { type: 'username', id: username.slice(0, 256) } });
        return { status: 204 };
      },
    }),
  ];
}
