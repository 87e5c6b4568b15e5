import { z } from 'zod';

import {
  AUTH_METHODS, checkClientShape, checkScopesAndResources, engineMetadata, GRANT_TYPES, SECRET_METHODS,
} from '../../domain/client-policy.js';
import type { FieldProblem } from '../../domain/client-policy.js';
import { rotateClientSecret, sealNewSecret } from '../../domain/client-secrets.js';
import { authorityRefused, ProblemError } from '../../http/middleware.js';
import { clientChangeKeepsPower, grantDenials, scopeFactsOf } from '../../domain/authority.js';
import type { ClientRecord, ResourceServer } from '../../domain/types.js';
import { isBuiltInClient } from '../../domain/types.js';
import type { Queryable } from '../../storage/database.js';
import { newId } from '../../storage/ids.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import type { Principal } from '../../domain/principal.js';
import { assertValid, conflict, invalidFields, iso, notFound } from '../problems.js';
import { route } from '../route.js';
import { text, uriText } from '../schemas.js';
import type { Route } from '../route.js';
import { effectivePolicy } from './organization.js';
import type { ResourceRouteDependencies } from './dependencies.js';

/**
 * OAuth clients of the caller's organization (see src/domain/client-policy.ts for the rules).
 * The secret of a confidential client is generated here, returned once, and stored encrypted;
 * `POST /clients/{id}/secret` rotates it with a grace period for the old one.
 */
const scopeToken = z.string().min(1).max(128).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');
const uri = uriText();
const unique = <T extends z.ZodType>(item: T, max: number) =>
  z.array(item).max(max).superRefine((values, ctx) => {
    const seen = new Set<unknown>();
    values.forEach((value, i) => {
      if (seen.has(value)) ctx.addIssue({ code: 'custom', path: [i], message: 'duplicate value' });
      seen.add(value);
    });
  });
const jwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).strict();
const grantTypes = unique(z.enum(GRANT_TYPES), GRANT_TYPES.length).min(1);
const authMethod = z.enum(AUTH_METHODS);
const nameSchema = text(200);

const clientSchema = z.object({
  client_id: z.string(),
  name: z.string().nullable(),
  grant_types: z.array(z.string()),
  redirect_uris: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
  scopes: z.array(z.string()),
  resources: z.array(z.string()),
  service_account_id: z.string().nullable(),
  jwks: z.unknown().optional(),
  jwks_uri: z.string().optional(),
  tls_client_certificate_bound_access_tokens: z.boolean().optional().describe('RFC 8705: its access tokens are bound to its TLS client certificate (needs config mtls.clientCertificateHeader)'),
  dynamically_registered: z.boolean(),
  built_in: z.boolean().describe('The organization\'s built-in tessera-cli client: listed, never changed or deleted'),
  secret_rotated_at: z.string().nullable(),
  previous_secret_expires_at: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export function presentClient(record: ClientRecord, now = Date.now()) {
  const m = record.metadata as { grant_types?: string[]; redirect_uris?: string[]; token_endpoint_auth_method?: string; jwks?: unknown; jwks_uri?: string; tls_client_certificate_bound_access_tokens?: boolean };
  return {
    client_id: record.client_id,
    name: record.name,
    grant_types: m.grant_types ?? [],
    redirect_uris: m.redirect_uris ?? [],
    token_endpoint_auth_method: m.token_endpoint_auth_method ?? 'client_secret_basic',
    scopes: record.allowed_scopes,
    resources: record.allowed_resources,
    service_account_id: record.service_account_id,
    ...(m.jwks !== undefined ? { jwks: m.jwks } : {}),
    ...(m.jwks_uri !== undefined ? { jwks_uri: m.jwks_uri } : {}),
    ...(m.tls_client_certificate_bound_access_tokens === true ? { tls_client_certificate_bound_access_tokens: true } : {}),
    dynamically_registered: record.registration,
    built_in: isBuiltInClient(record.kind),
    secret_rotated_at: iso(record.secret_rotated_at),
    previous_secret_expires_at: iso(record.previous_secret_expires_at && record.previous_secret_expires_at.getTime() > now ? record.previous_secret_expires_at : null),
    created_at: record.created_at.toISOString(),
    updated_at: record.updated_at.toISOString(),
  };
}

/**
 * The built-in clients (src/domain/cli-client.ts, src/domain/console-client.ts) are Tessera's,
 * not the organization's: every user's command-line and console sign-in depends on their ids,
 * public authentication, grant types and redirect URIs, so the Management API lists them but
 * never changes or deletes them.
 */
function refuseBuiltIn(record: ClientRecord, action: string): void {
  if (!isBuiltInClient(record.kind)) return;
  const message = `${record.client_id} is the organization's built-in ${record.kind === 'cli' ? 'tessera-cli' : 'tessera-console'} client; it cannot be ${action}`;
  throw new ProblemError(409, 'Conflict', message, { errors: [{ field: 'client_id', message }] });
}

interface ClientShape {
  name: string;
  grant_types: string[];
  redirect_uris: string[];
  token_endpoint_auth_method: string;
  scopes: string[];
  resources: string[];
  service_account_id: string | null;
  jwks?: unknown;
  jwks_uri?: string;
  tls_client_certificate_bound_access_tokens?: boolean;
}

export function clientRoutes(deps: ResourceRouteDependencies): Route[] {
  /**
   * A jwks_uri Tessera would fetch from an internal address. Resolved before any transaction is
   * opened (a slow resolver must not hold one), and only for a value the request sets.
   */
  /** Asking for certificate-bound tokens where no proxy passes certificates (config `mtls.clientCertificateHeader`) is a mistake. */
  const mtlsProblems = (requested: boolean | undefined): FieldProblem[] =>
    requested === true && deps.mtlsEnabled !== true
      ? [{ field: 'tls_client_certificate_bound_access_tokens', message: 'certificate-bound tokens are off in this deployment (config mtls.clientCertificateHeader, docs/operations.md)' }]
      : [];

  async function jwksUriProblems(jwksUri: string | undefined): Promise<FieldProblem[]> {
    const problem = jwksUri === undefined ? undefined : await deps.outbound.urlProblem(jwksUri);
    return problem ? [{ field: 'jwks_uri', message: problem }] : [];
  }

  /**
   * Every rule of a client, in one pass, so a 422 names every field that is wrong; then, unless
   * the change keeps the client's power where it was, whether the caller may hand that power out
   * at all (src/domain/authority.ts: 403 naming what is missing).
   */
  async function validate(principal: Principal, shape: ClientShape, q?: Queryable, options: { keepsPower?: boolean; found?: FieldProblem[] } = {}): Promise<void> {
    const problems: FieldProblem[] = [...checkClientShape(shape), ...(options.found ?? [])];
    if (shape.service_account_id) {
      const account = await deps.serviceAccounts.findInOrganization(principal.organizationId, shape.service_account_id, q);
      if (!account) problems.push({ field: 'service_account_id', message: 'no such service account in this organization' });
      else if (account.status !== 'active') problems.push({ field: 'service_account_id', message: 'the service account is disabled' });
    }
    // Inside the caller's transaction when there is one (PGlite serializes transactions: a
    // query beside it would wait for it forever).
    const findResourceServer = (identifier: string) => deps.resourceServers.findByIdentifier(identifier, q);
    problems.push(...(await checkScopesAndResources({ organizationId: principal.organizationId, scopes: shape.scopes, resources: shape.resources, findResourceServer })));
    assertValid(problems);
    if (!options.keepsPower) await authorize(principal, shape, findResourceServer);
  }

  /** The caller could create a client with these scopes and resources right now, or 403. */
  async function authorize(principal: Principal, shape: Pick<ClientShape, 'scopes' | 'resources'>, findResourceServer: (identifier: string) => Promise<ResourceServer | undefined>) {
    const { facts } = await scopeFactsOf(principal.organizationId, shape.resources, findResourceServer);
    const denials = grantDenials(principal, 'client', shape.scopes, facts);
    if (denials.length > 0) throw authorityRefused(denials);
  }

  /** oidc-provider's own checks, so a client the engine would refuse is a 422 now, not a 500 later. */
  async function validateForEngine(clientId: string, metadata: Record<string, unknown>, secret: string | undefined) {
    try {
      await deps.validateClientMetadata({ ...metadata, client_id: clientId, ...(secret ? { client_secret: secret } : {}) });
    } catch (error) {
      const description = String((error as { error_description?: string }).error_description ?? (error as Error).message);
      const field = /^([a-z_]+)/.exec(description)?.[1] ?? 'body';
      throw invalidFields([{ field, message: description }]);
    }
  }

  return [
    route({
      method: 'POST',
      path: '/clients',
      scope: 'clients:write',
      tag: 'Clients',
      summary: 'Create a client; a confidential client\'s secret is returned once',
      body: z.object({
        name: nameSchema,
        grant_types: grantTypes,
        redirect_uris: unique(uri, 50).default([]),
        token_endpoint_auth_method: authMethod.default('client_secret_basic'),
        scopes: unique(scopeToken, 200).default([]),
        resources: unique(uri, 50).default([]),
        service_account_id: z.string().min(1).max(100).optional(),
        jwks: jwksSchema.optional(),
        jwks_uri: uri.optional(),
        tls_client_certificate_bound_access_tokens: z.boolean().optional().describe('RFC 8705 §3.4: bind its access tokens to its TLS client certificate, passed by the proxy (config mtls.clientCertificateHeader)'),
      }).strict(),
      status: 201,
      response: clientSchema.extend({ client_secret: z.string().optional() }),
      errors: [409],
      async handler(ctx) {
        const { principal, body } = ctx;
        const shape: ClientShape = { ...body, service_account_id: body.service_account_id ?? null };
        await validate(principal, shape, undefined, { found: [...(await jwksUriProblems(shape.jwks_uri)), ...mtlsProblems(body.tls_client_certificate_bound_access_tokens)] });
        const clientId = newId('cl');
        const metadata = engineMetadata(shape);
        const secret = SECRET_METHODS.has(shape.token_endpoint_auth_method) ? sealNewSecret(deps.envelope, clientId) : undefined;
        await validateForEngine(clientId, metadata, secret?.secret);
        const record = await deps.clients.insert({
          client_id: clientId,
          organization_id: principal.organizationId,
          kind: 'oauth',
          name: shape.name,
          resource_server_id: null,
          service_account_id: shape.service_account_id,
          metadata,
          allowed_scopes: shape.scopes,
          allowed_resources: shape.resources,
          secret_enc: secret?.sealed ?? null,
          registration: false,
        });
        await deps.clientsChanged([clientId]);
        const presented = presentClient(record, deps.clock.now());
        recordChange(deps.audit, ctx, { action: 'client.created', target: { type: 'client', id: clientId }, after: presented });
        return { status: 201, body: { ...presented, ...(secret ? { client_secret: secret.secret } : {}) } };
      },
    }),
    route({
      method: 'GET',
      path: '/clients',
      scope: 'clients:read',
      tag: 'Clients',
      summary: 'List clients (secrets are never listed)',
      query: z.object(pageQuery).strict(),
      response: pageSchema(clientSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.clients.list(principal.organizationId, { after, limit: query.limit + 1 });
        return { body: page(principal.organizationId, rows, query.limit, (c) => ({ k: c.created_at.toISOString(), id: c.client_id }), (c) => presentClient(c, deps.clock.now())) };
      },
    }),
    route({
      method: 'GET',
      path: '/clients/{id}',
      scope: 'clients:read',
      tag: 'Clients',
      summary: 'One client',
      response: clientSchema,
      errors: [404],
      async handler({ principal, params }) {
        const record = await deps.clients.findInOrganization(principal.organizationId, params.id!);
        if (!record) throw notFound('client');
        return { body: presentClient(record, deps.clock.now()) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/clients/{id}',
      scope: 'clients:write',
      tag: 'Clients',
      summary: 'Change a client (members not given keep their value); the authentication method may only move between the two secret methods; the built-in tessera-cli client cannot be changed (409)',
      body: z.object({
        name: nameSchema.optional(),
        grant_types: grantTypes.optional(),
        redirect_uris: unique(uri, 50).optional(),
        token_endpoint_auth_method: authMethod.optional(),
        scopes: unique(scopeToken, 200).optional(),
        resources: unique(uri, 50).optional(),
        service_account_id: z.string().min(1).max(100).nullable().optional(),
        jwks: jwksSchema.optional(),
        jwks_uri: uri.optional(),
        tls_client_certificate_bound_access_tokens: z.boolean().optional(),
      }).strict(),
      response: clientSchema,
      errors: [404, 409],
      async handler(ctx) {
        const { principal, params, body } = ctx;
        const outboundProblems = [...(await jwksUriProblems(body.jwks_uri)), ...mtlsProblems(body.tls_client_certificate_bound_access_tokens)];
        const result = await deps.db.transaction(async (tx) => {
          const before = await deps.clients.findInOrganization(principal.organizationId, params.id!, tx, { lock: true });
          if (!before) throw notFound('client');
          refuseBuiltIn(before, 'changed');
          const current = presentClient(before, deps.clock.now());
          const method = body.token_endpoint_auth_method ?? current.token_endpoint_auth_method;
          if (method !== current.token_endpoint_auth_method && !(SECRET_METHODS.has(method) && SECRET_METHODS.has(current.token_endpoint_auth_method))) {
            throw invalidFields([{ field: 'token_endpoint_auth_method', message: 'can only change between client_secret_basic and client_secret_post; create a new client instead' }]);
          }
          const shape: ClientShape = {
            name: body.name ?? current.name ?? before.client_id,
            grant_types: body.grant_types ?? current.grant_types,
            redirect_uris: body.redirect_uris ?? current.redirect_uris,
            token_endpoint_auth_method: method,
            scopes: body.scopes ?? current.scopes,
            resources: body.resources ?? current.resources,
            service_account_id: body.service_account_id !== undefined ? body.service_account_id : current.service_account_id,
            jwks: body.jwks ?? (body.jwks_uri !== undefined ? undefined : current.jwks),
            jwks_uri: body.jwks_uri ?? (body.jwks !== undefined ? undefined : current.jwks_uri),
            tls_client_certificate_bound_access_tokens: body.tls_client_certificate_bound_access_tokens ?? current.tls_client_certificate_bound_access_tokens,
          };
          // A rename or a narrowing leaves the client's power where it was, so an admin may rename
          // a client an owner gave organization:write; anything that moves or widens its power
          // (redirect URIs, grant types, authentication, keys, owner, scopes, resources) is
          // checked as if the caller created the client now.
          const where = (c: ClientShape) => ({
            scopes: c.scopes,
            resources: c.resources,
            other: { grant_types: c.grant_types, redirect_uris: c.redirect_uris, token_endpoint_auth_method: c.token_endpoint_auth_method, service_account_id: c.service_account_id, jwks: c.jwks, jwks_uri: c.jwks_uri },
          });
          const keepsPower = clientChangeKeepsPower(where({ ...current, name: current.name ?? before.client_id }), where(shape));
          await validate(principal, shape, tx, { keepsPower, found: outboundProblems });
          const metadata = { ...before.metadata, ...engineMetadata(shape) };
          if (shape.jwks === undefined) delete metadata.jwks;
          if (shape.jwks_uri === undefined) delete metadata.jwks_uri;
          if (shape.tls_client_certificate_bound_access_tokens !== true) delete metadata.tls_client_certificate_bound_access_tokens;
          await validateForEngine(before.client_id, metadata, before.secret_enc ? 'x'.repeat(43) : undefined);
          const after = await deps.clients.update(principal.organizationId, before.client_id, {
            name: shape.name,
            service_account_id: shape.service_account_id,
            metadata,
            allowed_scopes: shape.scopes,
            allowed_resources: shape.resources,
          }, tx);
          return { before, after: after! };
        });
        await deps.clientsChanged([result.after.client_id]);
        const presented = presentClient(result.after, deps.clock.now());
        recordChange(deps.audit, ctx, { action: 'client.updated', target: { type: 'client', id: result.after.client_id }, before: presentClient(result.before, deps.clock.now()), after: presented });
        return { body: presented };
      },
    }),
    route({
      method: 'DELETE',
      path: '/clients/{id}',
      scope: 'clients:write',
      tag: 'Clients',
      summary: 'Delete a client; it can no longer obtain tokens (the built-in tessera-cli client cannot be deleted: 409)',
      errors: [404, 409],
      async handler(ctx) {
        const { principal, params } = ctx;
        const record = await deps.clients.findInOrganization(principal.organizationId, params.id!);
        if (!record) throw notFound('client');
        refuseBuiltIn(record, 'deleted');
        await deps.clients.delete(record.client_id);
        await deps.clientsChanged([record.client_id]);
        recordChange(deps.audit, ctx, { action: 'client.deleted', target: { type: 'client', id: record.client_id }, before: presentClient(record, deps.clock.now()) });
        return { status: 204 };
      },
    }),
    route({
      method: 'POST',
      path: '/clients/{id}/secret',
      scope: 'clients:write',
      tag: 'Clients',
      summary: 'Rotate a confidential client\'s secret; the previous one keeps working for the organization\'s grace period',
      body: z.object({}).strict(),
      response: z.object({ client_id: z.string(), client_secret: z.string(), previous_secret_expires_at: z.string().nullable() }),
      errors: [404, 409],
      async handler(ctx) {
        const { principal, params } = ctx;
        const record = await deps.clients.findInOrganization(principal.organizationId, params.id!);
        if (!record) throw notFound('client');
        refuseBuiltIn(record, 'given a secret: it is a public client (RFC 8252 §8.4)');
        if (!record.secret_enc) throw conflict('token_endpoint_auth_method', 'this client does not authenticate with a secret');
        // A new secret is the client's whole power in the caller's hands.
        await authorize(principal, { scopes: record.allowed_scopes, resources: record.allowed_resources }, (identifier) => deps.resourceServers.findByIdentifier(identifier));
        const org = await deps.organizations.findById(principal.organizationId);
        const grace = effectivePolicy(deps.policyDefaults, org ?? { policy: {} }).client_secret_rotation_grace_seconds;
        const rotated = await rotateClientSecret({ clients: deps.clients, envelope: deps.envelope, clock: deps.clock }, record, grace);
        await deps.clientsChanged([record.client_id]);
        const previousExpiresAt = iso(rotated.record.previous_secret_expires_at);
        recordChange(deps.audit, ctx, { action: 'client.secret_rotated', target: { type: 'client', id: record.client_id }, details: { previous_secret_expires_at: previousExpiresAt } });
        return { body: { client_id: record.client_id, client_secret: rotated.secret, previous_secret_expires_at: previousExpiresAt } };
      },
    }),
  ];
}
