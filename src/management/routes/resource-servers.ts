import { z } from 'zod';

import {
  checkIntrospectionResponse, INTROSPECTION_ENCRYPTION_ALGS, INTROSPECTION_ENCRYPTION_ENCS, INTROSPECTION_SIGNING_ALGS,
  introspectionResponseMetadata, resourceIdentifierProblem,
} from '../../domain/client-policy.js';
import type { IntrospectionResponseSettings } from '../../domain/client-policy.js';
import { rotateClientSecret, sealNewSecret } from '../../domain/client-secrets.js';
import { OPENID_SCOPES } from '../../domain/types.js';
import type { ResourceServer, ResourceServerScope } from '../../domain/types.js';
import { isUniqueViolation } from '../../storage/database.js';
import { newId } from '../../storage/ids.js';
import { recordChange } from '../audit-trail.js';
import { decodeCursor, page, pageQuery, pageSchema } from '../pagination.js';
import { assertValid, conflict, iso, notFound } from '../problems.js';
import { route } from '../route.js';
import { text, uriText } from '../schemas.js';
import type { Route } from '../route.js';
import { effectivePolicy } from './organization.js';
import type { ResourceRouteDependencies } from './dependencies.js';

/**
 * Resource servers: the APIs of an organization, each identified by the URI that becomes the
 * `aud` of its tokens (RFC 8707). Identifiers are unique across the installation (one issuer,
 * so one `aud` must mean one API); `urn:tessera:*` is reserved. Every API gets introspection
 * credentials of its own (RFC 7662 §2.1), shown once at creation and at each rotation.
 */
/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const scopeName = z.string().min(1).max(128).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes')
  .refine((s) => !(OPENID_SCOPES as readonly string[]).includes(s), 'OpenID scopes are built in and cannot be defined by an API');
const scopeInput = z.union([scopeName, z.object({ name: scopeName, description: text(500).optional() }).strict()]);
const scopesInput = z.array(scopeInput).max(200).superRefine((scopes, ctx) => {
  const seen = new Set<string>();
  scopes.forEach((scope, i) => {
    const name = typeof scope === 'string' ? scope : scope.name;
    if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate scope "${name}"` });
    seen.add(name);
  });
});
const identifierSchema = uriText().superRefine((value, ctx) => {
  const problem = resourceIdentifierProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const tokenFormat = z.enum(['jwt', 'opaque']);
/** docs/design.md, "Short by default, long by exception": access tokens live minutes; a day is the most any API may ask for. */
const ttlSchema = z.number().int().min(30).max(86400);
const nameSchema = text(200);
/**
 * How the API wants RFC 9701 JWT introspection answers (RFC 7591 member names; the keys to
 * encrypt to are the client's `jwks`): checked across fields by `checkIntrospectionResponse`.
 * Absent, an answer is signed RS256 and not encrypted, as before.
 */
const introspectionResponseInput = {
  introspection_signed_response_alg: z.enum(INTROSPECTION_SIGNING_ALGS),
  introspection_encrypted_response_alg: z.enum(INTROSPECTION_ENCRYPTION_ALGS),
  introspection_encrypted_response_enc: z.enum(INTROSPECTION_ENCRYPTION_ENCS),
  introspection_jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) }).strict(),
};
const INTROSPECTION_RESPONSE_FIELDS = Object.keys(introspectionResponseInput) as (keyof typeof introspectionResponseInput)[];
/** The introspection client's metadata members that carry the settings above. */
const INTROSPECTION_RESPONSE_METADATA = ['introspection_signed_response_alg', 'introspection_encrypted_response_alg', 'introspection_encrypted_response_enc', 'jwks'];
const BASE_INTROSPECTION_METADATA: Record<string, unknown> = { grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' };

const rsSchema = z.object({
  id: z.string(),
  identifier: z.string(),
  name: z.string().nullable(),
  scopes: z.array(z.object({ name: z.string(), description: z.string().optional() })),
  token_format: tokenFormat,
  access_token_ttl: z.number(),
  sensitive: z.boolean(),
  dpop_required: z.boolean().describe('RFC 9449: tokens for this API are issued only bound to a DPoP key; a request without a DPoP proof is refused at /token'),
  introspection_client_id: z.string().nullable(),
  introspection_secret_rotated_at: z.string().nullable(),
  introspection_previous_secret_expires_at: z.string().nullable(),
  // Shown only when set, so an API without them reads as it always did.
  introspection_signed_response_alg: z.string().optional(),
  introspection_encrypted_response_alg: z.string().optional(),
  introspection_encrypted_response_enc: z.string().optional(),
  introspection_jwks: z.unknown().optional(),
  created_at: z.string(),
  updated_at: z.string(),
});

const normalizeScopes = (scopes: z.output<typeof scopesInput>): ResourceServerScope[] =>
  scopes.map((s) => (typeof s === 'string' ? { name: s } : { name: s.name, ...(s.description ? { description: s.description } : {}) }));

/** The settings an introspection client's metadata holds. */
function introspectionResponseOf(metadata: Record<string, unknown> | undefined): IntrospectionResponseSettings {
  const m = metadata ?? {};
  return {
    ...(typeof m.introspection_signed_response_alg === 'string' ? { introspection_signed_response_alg: m.introspection_signed_response_alg } : {}),
    ...(typeof m.introspection_encrypted_response_alg === 'string' ? { introspection_encrypted_response_alg: m.introspection_encrypted_response_alg } : {}),
    ...(typeof m.introspection_encrypted_response_enc === 'string' ? { introspection_encrypted_response_enc: m.introspection_encrypted_response_enc } : {}),
    ...(m.introspection_encrypted_response_alg !== undefined && m.jwks !== undefined ? { introspection_jwks: m.jwks } : {}),
  };
}

/** Checks the settings and returns the introspection client's metadata with them in place of the old ones. */
function withIntrospectionResponse(metadata: Record<string, unknown>, settings: IntrospectionResponseSettings): Record<string, unknown> {
  assertValid(checkIntrospectionResponse(settings));
  const kept = Object.fromEntries(Object.entries(metadata).filter(([name]) => !INTROSPECTION_RESPONSE_METADATA.includes(name)));
  return { ...kept, ...introspectionResponseMetadata(settings) };
}

/** The settings a request body gives (PATCH: a null clears one, an absent one is kept from `current`). */
function settingsFrom(body: Partial<Record<keyof typeof introspectionResponseInput, unknown>>, current: IntrospectionResponseSettings = {}): IntrospectionResponseSettings {
  const next: Record<string, unknown> = { ...current };
  for (const field of INTROSPECTION_RESPONSE_FIELDS) {
    if (body[field] === null) delete next[field];
    else if (body[field] !== undefined) next[field] = body[field];
  }
  return next as IntrospectionResponseSettings;
}

export function resourceServerRoutes(deps: ResourceRouteDependencies): Route[] {
  async function credentialsOf(rs: ResourceServer) {
    const [client] = await deps.clients.findByResourceServer(rs.id);
    return client;
  }
  async function present(rs: ResourceServer) {
    const client = await credentialsOf(rs);
    return {
      id: rs.id,
      identifier: rs.identifier,
      name: rs.name,
      scopes: rs.scopes,
      token_format: rs.token_format,
      access_token_ttl: rs.access_token_ttl,
      sensitive: rs.sensitive,
      dpop_required: rs.dpop_required,
      introspection_client_id: client?.client_id ?? null,
      introspection_secret_rotated_at: iso(client?.secret_rotated_at),
      introspection_previous_secret_expires_at: iso(client?.previous_secret_expires_at),
      ...introspectionResponseOf(client?.metadata),
      created_at: rs.created_at.toISOString(),
      updated_at: rs.updated_at.toISOString(),
    };
  }

  return [
    route({
      method: 'POST',
      path: '/resource-servers',
      scope: 'resource-servers:write',
      tag: 'Resource servers',
      summary: 'Register an API; its introspection credentials are returned once',
      body: z.object({
        identifier: identifierSchema,
        name: nameSchema.optional(),
        scopes: scopesInput,
        token_format: tokenFormat.default('jwt'),
        access_token_ttl: ttlSchema.default(600),
        sensitive: z.boolean().default(false),
        dpop_required: z.boolean().default(false),
        introspection_signed_response_alg: introspectionResponseInput.introspection_signed_response_alg.optional(),
        introspection_encrypted_response_alg: introspectionResponseInput.introspection_encrypted_response_alg.optional(),
        introspection_encrypted_response_enc: introspectionResponseInput.introspection_encrypted_response_enc.optional(),
        introspection_jwks: introspectionResponseInput.introspection_jwks.optional(),
      }).strict(),
      status: 201,
      response: rsSchema.extend({ introspection_client_secret: z.string() }),
      errors: [409],
      async handler(ctx) {
        const { principal, body } = ctx;
        const introspectionMetadata = withIntrospectionResponse(BASE_INTROSPECTION_METADATA, settingsFrom(body));
        if (await deps.resourceServers.findByIdentifier(body.identifier)) throw conflict('identifier', 'already registered');
        const introspectionClientId = newId('rsc');
        const { secret, sealed } = sealNewSecret(deps.envelope, introspectionClientId);
        const rs = await deps.db
          .transaction(async (tx) => {
            const row = await deps.resourceServers.insert(
              {
                id: newId('rs'),
                organization_id: principal.organizationId,
                identifier: body.identifier,
                name: body.name ?? null,
                scopes: normalizeScopes(body.scopes),
                token_format: body.token_format,
                access_token_ttl: body.access_token_ttl,
                sensitive: body.sensitive,
                dpop_required: body.dpop_required,
              },
              tx,
            );
            await deps.clients.insert(
              {
                client_id: introspectionClientId,
                organization_id: principal.organizationId,
                kind: 'introspection',
                name: `${body.name ?? body.identifier} (introspection)`,
                resource_server_id: row.id,
                service_account_id: null,
                metadata: introspectionMetadata,
                allowed_scopes: [],
                allowed_resources: [],
                secret_enc: sealed,
                registration: false,
              },
              tx,
            );
            return row;
          })
          .catch((error: unknown) => {
            if (isUniqueViolation(error)) throw conflict('identifier', 'already registered');
            throw error;
          });
        const presented = await present(rs);
        recordChange(deps.audit, ctx, { action: 'resource_server.created', target: { type: 'resource_server', id: rs.id }, after: presented });
        return { status: 201, body: { ...presented, introspection_client_secret: secret } };
      },
    }),
    route({
      method: 'GET',
      path: '/resource-servers',
      scope: 'resource-servers:read',
      tag: 'Resource servers',
      summary: 'List APIs',
      query: z.object(pageQuery).strict(),
      response: pageSchema(rsSchema),
      async handler({ principal, query }) {
        const after = decodeCursor(principal.organizationId, query.cursor);
        const rows = await deps.resourceServers.list(principal.organizationId, { after, limit: query.limit + 1 });
        const presented = new Map<string, unknown>();
        for (const rs of rows.slice(0, query.limit)) presented.set(rs.id, await present(rs));
        return { body: page(principal.organizationId, rows, query.limit, (r) => ({ k: r.created_at.toISOString(), id: r.id }), (r) => presented.get(r.id)) };
      },
    }),
    route({
      method: 'GET',
      path: '/resource-servers/{id}',
      scope: 'resource-servers:read',
      tag: 'Resource servers',
      summary: 'One API',
      response: rsSchema,
      errors: [404],
      async handler({ principal, params }) {
        const rs = await deps.resourceServers.findInOrganization(principal.organizationId, params.id!);
        if (!rs) throw notFound('resource server');
        return { body: await present(rs) };
      },
    }),
    route({
      method: 'PATCH',
      path: '/resource-servers/{id}',
      scope: 'resource-servers:write',
      tag: 'Resource servers',
      summary: 'Change an API\'s name, scopes, token format, access-token TTL, sensitive flag, DPoP requirement or introspection answer format (the identifier is permanent)',
      body: z.object({
        name: nameSchema.nullable().optional(),
        scopes: scopesInput.optional(),
        token_format: tokenFormat.optional(),
        access_token_ttl: ttlSchema.optional(),
        sensitive: z.boolean().optional(),
        dpop_required: z.boolean().optional(),
        introspection_signed_response_alg: introspectionResponseInput.introspection_signed_response_alg.nullable().optional(),
        introspection_encrypted_response_alg: introspectionResponseInput.introspection_encrypted_response_alg.nullable().optional(),
        introspection_encrypted_response_enc: introspectionResponseInput.introspection_encrypted_response_enc.nullable().optional(),
        introspection_jwks: introspectionResponseInput.introspection_jwks.nullable().optional(),
      }).strict(),
      response: rsSchema,
      errors: [404],
      async handler(ctx) {
        const { principal, params, body } = ctx;
        const before = await deps.resourceServers.findInOrganization(principal.organizationId, params.id!);
        if (!before) throw notFound('resource server');
        const changes: Parameters<typeof deps.resourceServers.update>[2] = {};
        if (body.name !== undefined) changes.name = body.name;
        if (body.scopes !== undefined) changes.scopes = normalizeScopes(body.scopes);
        if (body.token_format !== undefined) changes.token_format = body.token_format;
        if (body.access_token_ttl !== undefined) changes.access_token_ttl = body.access_token_ttl;
        if (body.sensitive !== undefined) changes.sensitive = body.sensitive;
        if (body.dpop_required !== undefined) changes.dpop_required = body.dpop_required;
        const answerFormat = INTROSPECTION_RESPONSE_FIELDS.some((field) => body[field] !== undefined);
        let credentials = await credentialsOf(before);
        const introspectionMetadata = answerFormat && credentials ? withIntrospectionResponse(credentials.metadata, settingsFrom(body, introspectionResponseOf(credentials.metadata))) : undefined;
        if (answerFormat && !credentials) assertValid([{ field: INTROSPECTION_RESPONSE_FIELDS.find((field) => body[field] !== undefined)!, message: 'the API has no introspection credentials: rotate them first' }]);
        const b = await present(before);
        const after = await deps.resourceServers.update(principal.organizationId, before.id, changes);
        if (!after) throw notFound('resource server');
        if (introspectionMetadata && credentials) credentials = (await deps.clients.update(principal.organizationId, credentials.client_id, { metadata: introspectionMetadata })) ?? credentials;
        if (credentials) await deps.clientsChanged([credentials.client_id]);
        const a = await present(after);
        recordChange(deps.audit, ctx, { action: 'resource_server.updated', target: { type: 'resource_server', id: after.id }, before: b, after: a });
        return { body: a };
      },
    }),
    route({
      method: 'DELETE',
      path: '/resource-servers/{id}',
      scope: 'resource-servers:write',
      tag: 'Resource servers',
      summary: 'Delete an API, its introspection credentials, and its place in every client\'s resources',
      errors: [404],
      async handler(ctx) {
        const { principal, params } = ctx;
        const result = await deps.db.transaction(async (tx) => {
          const rs = await deps.resourceServers.findInOrganization(principal.organizationId, params.id!, tx);
          if (!rs) throw notFound('resource server');
          const credentials = await deps.clients.findByResourceServer(rs.id, tx);
          // A client keeps no claim on a deleted API: were the identifier registered again, its
          // old clients must not silently regain access.
          const affected = await deps.clients.removeResource(principal.organizationId, rs.identifier, tx);
          await deps.resourceServers.delete(principal.organizationId, rs.id, tx);
          return { rs, changed: [...credentials.map((c) => c.client_id), ...affected] };
        });
        await deps.clientsChanged(result.changed);
        recordChange(deps.audit, ctx, {
          action: 'resource_server.deleted',
          target: { type: 'resource_server', id: result.rs.id },
          before: { identifier: result.rs.identifier, name: result.rs.name },
        });
        return { status: 204 };
      },
    }),
    route({
      method: 'POST',
      path: '/resource-servers/{id}/credentials',
      scope: 'resource-servers:write',
      tag: 'Resource servers',
      summary: 'Rotate the introspection secret; the previous one keeps working for the organization\'s grace period',
      body: z.object({}).strict(),
      response: z.object({
        introspection_client_id: z.string(),
        introspection_client_secret: z.string(),
        previous_secret_expires_at: z.string().nullable(),
      }),
      errors: [404],
      async handler(ctx) {
        const { principal, params } = ctx;
        const rs = await deps.resourceServers.findInOrganization(principal.organizationId, params.id!);
        if (!rs) throw notFound('resource server');
        const org = await deps.organizations.findById(principal.organizationId);
        const grace = effectivePolicy(deps.policyDefaults, org ?? { policy: {} }).client_secret_rotation_grace_seconds;
        let record = await credentialsOf(rs);
        let secret: string;
        if (record) {
          ({ record, secret } = await rotateClientSecret({ clients: deps.clients, envelope: deps.envelope, clock: deps.clock }, record, grace));
        } else {
          // An API created before it had credentials (or whose credentials were removed) gets new ones.
          const clientId = newId('rsc');
          const sealedSecret = sealNewSecret(deps.envelope, clientId);
          secret = sealedSecret.secret;
          record = await deps.clients.insert({
            client_id: clientId, organization_id: principal.organizationId, kind: 'introspection', name: `${rs.name ?? rs.identifier} (introspection)`,
            resource_server_id: rs.id, service_account_id: null,
            metadata: BASE_INTROSPECTION_METADATA,
            allowed_scopes: [], allowed_resources: [], secret_enc: sealedSecret.sealed, registration: false,
          });
        }
        await deps.clientsChanged([record.client_id]);
        recordChange(deps.audit, ctx, {
          action: 'resource_server.credentials_rotated',
          target: { type: 'resource_server', id: rs.id },
          details: { introspection_client_id: record.client_id, previous_secret_expires_at: iso(record.previous_secret_expires_at) },
        });
        return { body: { introspection_client_id: record.client_id, introspection_client_secret: secret, previous_secret_expires_at: iso(record.previous_secret_expires_at) } };
      },
    }),
  ];
}
