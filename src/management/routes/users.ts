import { z } from 'zod';

import { hashPassword, newAccountPassword } from '../../domain/passwords.js';
import type { Role, User } from '../../domain/types.js';
import { newId } from '../../storage/ids.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import type { Principal } from '../../domain/principal.js';
import { conflict, notFound } from '../problems.js';
import { roleDenials } from '../../domain/authority.js';
import { authorityRefused } from '../../http/middleware.js';
import { route } from '../route.js';
import { text } from '../schemas.js';
import type { Route } from '../route.js';
import type { ResourceRouteDependencies } from './dependencies.js';

/**
 * Users of the caller's organization. A caller acts on a user only when it holds every scope of
 * the user's role, and gives only roles within its own scopes: an admin can neither create,
 * promote, change nor remove an owner, and a narrow token cannot make an admin. The last active owner can be neither demoted,
 * deactivated nor deleted, so an organization always keeps someone who can change its policy.
 * Password hashes never leave storage.
 */
const roleSchema = z.enum(['owner', 'admin', 'member']);
const usernameSchema = z.string().trim().min(1).max(100).regex(/^[\w.@+-]+$/, 'letters, digits and . @ + - _ only');
const passwordSchema = z.string().min(12, 'at least 12 characters').max(1024);

const userSchema = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string().nullable(),
  name: z.string().nullable(),
  role: roleSchema,
  status: z.enum(['active', 'deactivated']),
  created_at: z.string(),
  updated_at: z.string(),
});

export const presentUser = (user: User) => ({
  id: user.id,
  username: user.username,
  email: user.email,
  name: user.name,
  role: user.role,
  status: user.status,
  created_at: user.created_at.toISOString(),
  updated_at: user.updated_at.toISOString(),
});

/**
 * Giving a role, or acting on a user who holds one, needs every scope of that role
 * (src/domain/authority.ts): whoever could sign in as the user would hold them.
 */
function requireRole(principal: Principal, role: Role): void {
  const denials = roleDenials(principal, role);
  if (denials.length > 0) throw authorityRefused(denials);
}

export function userRoutes(deps: ResourceRouteDependencies): Route[] {
  return [
    route({
      method: 'POST',
      path: '/users',
      scope: 'users:write',
      tag: 'Users',
      summary: 'Create a user; a generated password is returned once when none is given',
      body: z.object({
        username: usernameSchema,
        password: passwordSchema.optional(),
        email: z.string().email().max(320).optional(),
        name: text(200).optional(),
        role: roleSchema,
      }).strict(),
      status: 201,
      response: userSchema.extend({ password: z.string().optional() }),
      errors: [403, 409],
      async handler(ctx) {
        const { principal, body } = ctx;
        requireRole(principal, body.role);
        if (await deps.users.findByUsername(principal.organizationId, body.username)) throw conflict('username', 'already in use');
        const { hash: passwordHash, generated } = await newAccountPassword(body.password);
        const user = await deps.users.insert({
          id: newId('usr'),
          organization_id: principal.organizationId,
          username: body.username,
          email: body.email ?? null,
          name: body.name ?? null,
          role: body.role,
          password_hash: passwordHash,
        });
        const presented = presentUser(user);
        recordChange(deps.audit, ctx, { action: 'user.created', target: { type: 'user', id: user.id }, after: presented });
        return { status: 201, body: { ...presented, ...(generated ? { password: generated } : {}) } };
      },
    }),
    route({
      method: 'GET',
      path: '/users',
      scope: 'users:read',
      tag: 'Users',
      summary: 'List users (filter by role or status)',
      query: z.object({ ...pageQuery, role: roleSchema.optional(), status: z.enum(['active', 'deactivated']).optional() }).strict(),
      response: pageSchema(userSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.users.list(principal.organizationId, { after, limit: query.limit + 1, role: query.role, status: query.status });
        return { body: page(principal.organizationId, rows, query.limit, (u) => ({ k: u.created_at.toISOString(), id: u.id }), presentUser) };
      },
    }),
    route({
      method: 'GET',
      path: '/users/{id}',
      scope: 'users:read',
      tag: 'Users',
      summary: 'One user',
      response: userSchema,
      errors: [404],
      async handler({ principal, params }) {
        const user = await deps.users.findInOrganization(principal.organizationId, params.id!);
        if (!user) throw notFound('user');
        return { body: presentUser(user) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/users/{id}',
      scope: 'users:write',
      tag: 'Users',
      summary: 'Change a user\'s role, status (deactivate or reactivate), email or name',
      body: z.object({
        role: roleSchema.optional(),
        status: z.enum(['active', 'deactivated']).optional(),
        email: z.string().email().max(320).nullable().optional(),
        name: text(200).nullable().optional(),
      }).strict(),
      response: userSchema,
      errors: [403, 404, 409],
      async handler(ctx) {
        const { principal, params, body } = ctx;
        const result = await deps.db.transaction(async (tx) => {
          const owners = await deps.users.lockActiveOwners(principal.organizationId, tx);
          const before = await deps.users.findInOrganization(principal.organizationId, params.id!, tx, { lock: true });
          if (!before) throw notFound('user');
          requireRole(principal, before.role);
          if (body.role !== undefined) requireRole(principal, body.role);
          const losesOwner = owners.includes(before.id) && ((body.role !== undefined && body.role !== 'owner') || body.status === 'deactivated');
          if (losesOwner && owners.length <= 1) throw conflict(body.status === 'deactivated' ? 'status' : 'role', 'the last active owner must stay an active owner');
          const changes: Parameters<typeof deps.users.update>[2] = {};
          if (body.role !== undefined) changes.role = body.role as Role;
          if (body.status !== undefined) changes.status = body.status;
          if (body.email !== undefined) changes.email = body.email;
          if (body.name !== undefined) changes.name = body.name;
          const after = await deps.users.update(principal.organizationId, before.id, changes, tx);
          return { before, after: after! };
        });
        if (result.before.role !== result.after.role || result.before.status !== result.after.status) await deps.ownerChanged?.(result.after.id);
        const presented = presentUser(result.after);
        recordChange(deps.audit, ctx, {
          action: body.status === 'deactivated' && result.before.status !== 'deactivated' ? 'user.deactivated' : 'user.updated',
          target: { type: 'user', id: result.after.id },
          before: presentUser(result.before),
          after: presented,
        });
        return { body: presented };
      },
    }),
    route({
      method: 'PUT',
      path: '/users/{id}/password',
      scope: 'users:write',
      tag: 'Users',
      summary: 'Set a user\'s password',
      body: z.object({ password: passwordSchema }).strict(),
      errors: [403, 404],
      async handler(ctx) {
        const { principal, params, body } = ctx;
        const user = await deps.users.findInOrganization(principal.organizationId, params.id!);
        if (!user) throw notFound('user');
        requireRole(principal, user.role);
        await deps.users.setPassword(user.id, await hashPassword(body.password));
        recordChange(deps.audit, ctx, { action: 'user.password_set', target: { type: 'user', id: user.id } });
        return { status: 204 };
      },
    }),
    route({
      method: 'DELETE',
      path: '/users/{id}',
      scope: 'users:write',
      tag: 'Users',
      summary: 'Delete a user and every personal access token they hold',
      errors: [403, 404, 409],
      async handler(ctx) {
        const { principal, params } = ctx;
        const target = await deps.users.findInOrganization(principal.organizationId, params.id!);
        if (!target) throw notFound('user');
        requireRole(principal, target.role);
        if (target.role === 'owner' && target.status === 'active') {
          const owners = await deps.users.list(principal.organizationId, { role: 'owner', status: 'active', limit: 2 });
          if (owners.length <= 1) throw conflict('id', 'the last active owner cannot be deleted');
        }
        // The user's tokens are revoked (and dropped from every cache) before the rows go with the
        // user; the checks above run first so a refused deletion revokes nothing.
        await deps.revokeOwnerTokens?.(target.id, 'owner_deleted');
        const deleted = await deps.db.transaction(async (tx) => {
          const owners = await deps.users.lockActiveOwners(principal.organizationId, tx);
          const user = await deps.users.findInOrganization(principal.organizationId, params.id!, tx, { lock: true });
          if (!user) throw notFound('user');
          requireRole(principal, user.role);
          if (owners.includes(user.id) && owners.length <= 1) throw conflict('id', 'the last active owner cannot be deleted');
          await deps.users.delete(principal.organizationId, user.id, tx);
          return user;
        });
        // Committed: every node forgets the user, so their OAuth access tokens stop too.
        await deps.ownerChanged?.(deleted.id);
        recordChange(deps.audit, ctx, { action: 'user.deleted', target: { type: 'user', id: deleted.id }, before: presentUser(deleted) });
        return { status: 204 };
      },
    }),
  ];
}
