import type { Middleware } from 'koa';

import type { AuditLog } from '../audit/audit-event.js';

import type { ManagementAuthDependencies } from './auth.js';
import { createManagementAuth } from './auth.js';
import { buildOpenApi } from './openapi.js';
import type { Route } from './route.js';
import { route } from './route.js';
import { createManagementRouter } from './router.js';

/**
 * The Management API: every capability contributes its routes; this puts them behind one
 * router (authentication, scopes, validation) and one generated OpenAPI document.
 */
export function createManagementApi(deps: ManagementAuthDependencies & { issuer: string; version: string; routes: Route[]; audit?: AuditLog }): { middleware: Middleware; routes: Route[]; openapi: () => unknown } {
  const auth = createManagementAuth(deps);
  let document: unknown;
  const openapi = () => (document ??= buildOpenApi(routes, { issuer: deps.issuer, version: deps.version }));
  const routes: Route[] = [
    ...deps.routes,
    route({
      method: 'GET',
      path: '/openapi.json',
      scope: null,
      auth: 'none',
      tag: 'Meta',
      summary: 'This OpenAPI 3.1 document',
      async handler() {
        return { body: openapi() };
      },
    }),
  ];
  return { middleware: createManagementRouter({ routes, auth, realm: deps.realm, audit: deps.audit }), routes, openapi };
}
