import { AsyncLocalStorage } from 'node:async_hooks';

import type { Context, Next } from 'koa';
import { errors } from 'oidc-provider';
import type { AdapterPayload, Configuration, KoaContextWithOIDC } from 'oidc-provider';

import type { AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import { secretContext } from '../domain/client-metadata.js';
import { AUTH_METHODS, checkClientShape, checkScopesAndResources, generateClientSecret, GRANT_TYPES } from '../domain/client-policy.js';
import type { FieldProblem } from '../domain/client-policy.js';
import { OPENID_SCOPES, TESSERA_CLIENT_PREFIX } from '../domain/types.js';
import type { Envelope } from '../keys/envelope.js';
import { hashInitialAccessToken, IAT_PREFIX } from '../domain/initial-access-token.js';
import type { ClientRepository } from '../storage/client-repository.js';
import { newId } from '../storage/ids.js';
import type { OutboundGuard } from '../outbound/outbound-guard.js';
import type { InitialAccessTokenRepository } from '../storage/initial-access-token-repository.js';
import type { ResourceServerRepository } from '../storage/resource-server-repository.js';
import type { ClientSource, InitialAccessTokenSource } from './adapter.js';

/**
 * RFC 7591 dynamic client registration and RFC 7592 management at /reg, on oidc-provider's
 * registration feature. Policy:
 * - every registration needs an initial access token an organization issued through the
 *   Management API (RFC 7591 §3); the client lands in that organization;
 * - the client gets at most the token's scopes and resources; `scope` (RFC 7591 §2) and the
 *   extension member `resources` may narrow them, never widen them; RFC 7592 updates stay within
 *   the same limits;
 * - the same rules as any client: https or loopback redirect URIs (post-logout ones too), no
 *   client credentials for public clients, keys for private_key_jwt, and no URL Tessera would
 *   fetch (jwks_uri, sector_identifier_uri) on an internal address;
 * - Tessera's own metadata members (organization, allowed scopes, …) are always set here, never
 *   taken from the request;
 * - registration access tokens are stored hashed and rotate on every update.
 * Responses show the client's scopes as `scope` and its resources as `resources`.
 */
export const REGISTRATION_POLICY = 'tessera';
export const REGISTRATION_PATH = '/reg';

interface RegistrationScope {
  organizationId?: string;
  limits?: { scopes: string[]; resources: string[] };
  initialAccessTokenId?: string;
  clientId?: string;
}

/** Metadata members holding a URL the engine fetches (RFC 7591 §2, OpenID Connect Registration §2). */
const FETCHED_URLS = ['jwks_uri', 'sector_identifier_uri'] as const;

export interface RegistrationDependencies {
  /** Refuses a URL that would be fetched from an internal address (src/outbound/outbound-guard.ts). */
  outbound: Pick<OutboundGuard, 'urlProblem'>;
  clients: ClientRepository;
  initialAccessTokens: InitialAccessTokenRepository;
  resourceServers: ResourceServerRepository;
  envelope: Envelope;
  clock: Clock;
  clientsChanged(clientIds: string[]): Promise<void>;
  audit?: AuditLog;
}

const invalid = (problems: FieldProblem[]) => {
  const first = problems[0]!;
  const description = `${first.field}: ${first.message}`;
  return first.field.startsWith('redirect_uris') ? new errors.InvalidRedirectUri(description) : new errors.InvalidClientMetadata(description);
};

/** A list of strings, or nothing to check here (the engine's own type checks refuse anything else). */
const stringsOf = (value: unknown): string[] => (Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : []);

export function createRegistration(deps: RegistrationDependencies) {
  const requestScope = new AsyncLocalStorage<RegistrationScope>();

  async function liveToken(value: string) {
    if (!value.startsWith(IAT_PREFIX) || value.length > 200) return undefined;
    const row = await deps.initialAccessTokens.findByHash(hashInitialAccessToken(value));
    if (!row || row.revoked_at || row.expires_at.getTime() <= deps.clock.now()) return undefined;
    return row;
  }

  const initialAccessTokenSource: InitialAccessTokenSource = {
    async find(value) {
      const row = await liveToken(value);
      if (!row) return undefined;
      return {
        iat: Math.floor(row.created_at.getTime() / 1000),
        exp: Math.floor(row.expires_at.getTime() / 1000),
        jti: value,
        kind: 'InitialAccessToken',
        policies: [REGISTRATION_POLICY],
      } as AdapterPayload;
    },
  };

  /** Runs before oidc-provider validates the metadata, on registration and on every RFC 7592 update. */
  async function policy(ctx: KoaContextWithOIDC, properties: Record<string, unknown>): Promise<void> {
    const scope = requestScope.getStore();
    if (!scope) throw new errors.InvalidRequest('registration is not available here');
    if (ctx.oidc.entities.InitialAccessToken) {
      const row = await liveToken(ctx.oidc.getAccessToken());
      if (!row) throw new errors.InvalidToken('initial access token not found');
      scope.organizationId = row.organization_id;
      scope.limits = { scopes: row.scopes, resources: row.resources };
      scope.initialAccessTokenId = row.id;
    } else {
      const existing = ctx.oidc.client ? await deps.clients.findById(ctx.oidc.client.clientId) : undefined;
      if (!existing || !existing.registration) throw new errors.InvalidToken('registration access token not found');
      scope.organizationId = existing.organization_id;
      scope.limits = existing.registration_limits ?? { scopes: existing.allowed_scopes, resources: existing.allowed_resources };
      scope.initialAccessTokenId = existing.initial_access_token_id ?? undefined;
    }
    const limits = scope.limits;

    // Tessera's members come from the token, never from the request.
    for (const key of Object.keys(properties)) if (key.startsWith(TESSERA_CLIENT_PREFIX)) delete properties[key];

    const problems: FieldProblem[] = [];
    // Encrypted introspection answers (RFC 9701 §5) are for resource servers, whose keys the
    // Management API registers inline (src/management/routes/resource-servers.ts); a client
    // registered here is no resource server, and might name its keys only by a URL.
    for (const member of ['introspection_encrypted_response_alg', 'introspection_encrypted_response_enc']) {
      if (properties[member] !== undefined) problems.push({ field: member, message: 'is set through the Management API, for a resource server' });
    }
    let resources = limits.resources;
    if (properties.resources !== undefined) {
      if (!Array.isArray(properties.resources) || !properties.resources.every((r) => typeof r === 'string')) {
        throw new errors.InvalidClientMetadata('resources must be an array of resource identifiers');
      }
      resources = [...new Set(properties.resources as string[])];
      resources.forEach((r, i) => {
        if (!limits.resources.includes(r)) problems.push({ field: `resources.${i}`, message: 'is not allowed by the initial access token' });
      });
    }
    let scopes: string[];
    if (properties.scope !== undefined) {
      if (typeof properties.scope !== 'string') throw new errors.InvalidClientMetadata('scope must be a space-separated string');
      scopes = [...new Set(properties.scope.split(' ').filter(Boolean))];
      scopes.forEach((s, i) => {
        if (!limits.scopes.includes(s)) problems.push({ field: `scope.${i}`, message: `"${s}" is not allowed by the initial access token` });
      });
    } else {
      // Default: what the token allows, for the resources the client kept.
      const available = new Set<string>(OPENID_SCOPES);
      for (const identifier of resources) {
        const rs = await deps.resourceServers.findByIdentifier(identifier);
        if (rs && rs.organization_id === scope.organizationId) rs.scopes.forEach((s) => available.add(s.name));
      }
      scopes = limits.scopes.filter((s) => available.has(s));
    }
    problems.push(...(await checkScopesAndResources({
      organizationId: scope.organizationId!,
      scopes,
      resources,
      principalScopes: new Set(),
      fields: { scopes: 'scope', resources: 'resources' },
      findResourceServer: (identifier) => deps.resourceServers.findByIdentifier(identifier),
    })));

    const grantTypes = (properties.grant_types ?? ['authorization_code']) as unknown;
    const method = (properties.token_endpoint_auth_method ?? 'client_secret_basic') as unknown;
    if (!Array.isArray(grantTypes) || !grantTypes.every((g) => (GRANT_TYPES as readonly string[]).includes(g))) {
      problems.push({ field: 'grant_types', message: `only ${GRANT_TYPES.join(', ')} are supported` });
    } else if (typeof method !== 'string' || !(AUTH_METHODS as readonly string[]).includes(method)) {
      problems.push({ field: 'token_endpoint_auth_method', message: `only ${AUTH_METHODS.join(', ')} are supported` });
    } else {
      problems.push(...checkClientShape({
        grant_types: grantTypes as string[],
        token_endpoint_auth_method: method,
        redirect_uris: Array.isArray(properties.redirect_uris) ? (properties.redirect_uris as string[]) : [],
        post_logout_redirect_uris: stringsOf(properties.post_logout_redirect_uris),
        jwks: properties.jwks,
        jwks_uri: properties.jwks_uri as string | undefined,
      }));
      // A machine client has no authorization endpoint use: no response types unless it uses codes.
      properties.response_types ??= (grantTypes as string[]).includes('authorization_code') ? ['code'] : [];
      properties.grant_types = grantTypes;
    }
    for (const field of FETCHED_URLS) {
      const value = properties[field];
      const problem = typeof value === 'string' ? await deps.outbound.urlProblem(value) : undefined;
      if (problem) problems.push({ field, message: problem });
    }
    if (problems.length > 0) throw invalid(problems);

    delete properties.scope;
    delete properties.resources;
    properties.tessera_organization_id = scope.organizationId;
    properties.tessera_kind = 'oauth';
    properties.tessera_scopes = scopes;
    properties.tessera_resources = resources;
  }

  const clientSource: Required<Pick<ClientSource, 'upsert' | 'destroy'>> = {
    async upsert(clientId, metadata) {
      const scope = requestScope.getStore();
      if (!scope?.organizationId || !scope.limits) throw new Error('clients are managed through the Management API');
      const {
        client_id: _id, client_secret: secret, client_name: name,
        ...rest
      } = metadata as Record<string, unknown>;
      const engineMetadata = Object.fromEntries(Object.entries(rest).filter(([key]) => !key.startsWith(TESSERA_CLIENT_PREFIX)));
      const record = await deps.clients.upsertRegistered({
        client_id: clientId,
        organization_id: scope.organizationId,
        kind: 'oauth',
        name: typeof name === 'string' ? name.slice(0, 200) : null,
        resource_server_id: null,
        service_account_id: null,
        metadata: engineMetadata,
        allowed_scopes: (metadata.tessera_scopes as string[]) ?? [],
        allowed_resources: (metadata.tessera_resources as string[]) ?? [],
        secret_enc: typeof secret === 'string' ? deps.envelope.seal(secret, secretContext(clientId)) : null,
        registration: true,
        registration_limits: scope.limits,
        initial_access_token_id: scope.initialAccessTokenId ?? null,
      });
      if (!record) throw new errors.InvalidClientMetadata('client_id is already in use');
      scope.clientId = clientId;
      await deps.clientsChanged([clientId]);
    },
    async destroy(clientId) {
      if (await deps.clients.deleteRegistered(clientId)) await deps.clientsChanged([clientId]);
    },
  };

  /** Presents Tessera's members in RFC 7591 terms and records the registration. */
  async function middleware(ctx: Context, next: Next) {
    if (!ctx.path.startsWith(REGISTRATION_PATH)) return next();
    const scope: RegistrationScope = {};
    await requestScope.run(scope, next);
    const body = ctx.body as Record<string, unknown> | undefined;
    if (body && typeof body === 'object' && !Buffer.isBuffer(body) && typeof body.client_id === 'string') {
      const scopes = body.tessera_scopes;
      const resources = body.tessera_resources;
      for (const key of Object.keys(body)) if (key.startsWith(TESSERA_CLIENT_PREFIX)) delete body[key];
      if (Array.isArray(scopes)) body.scope = scopes.join(' ');
      if (Array.isArray(resources)) body.resources = resources;
    }
    if (scope.organizationId && scope.clientId && ctx.status < 300) {
      const created = ctx.method === 'POST';
      if (created && scope.initialAccessTokenId) await deps.initialAccessTokens.recordUse(scope.initialAccessTokenId, new Date(deps.clock.now()));
      deps.audit?.record({
        organizationId: scope.organizationId,
        actor: created
          ? { type: 'anonymous', id: scope.initialAccessTokenId ?? null, name: 'initial access token' }
          : { type: 'client', id: scope.clientId },
        action: created ? 'client.registered' : 'client.registration_updated',
        target: { type: 'client', id: scope.clientId },
        outcome: 'success',
        requestId: ctx.get('x-request-id') || undefined,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent') || undefined,
        details: { scopes: body?.scope, resources: body?.resources, grant_types: body?.grant_types },
      });
    }
  }

  function configure(configuration: Configuration): void {
    configuration.features ??= {};
    configuration.features.registration = {
      enabled: true,
      initialAccessToken: true,
      issueRegistrationAccessToken: true,
      idFactory: () => newId('cl'),
      secretFactory: async () => generateClientSecret(),
      policies: { [REGISTRATION_POLICY]: policy as never },
    };
    configuration.features.registrationManagement = { enabled: true, rotateRegistrationAccessToken: true };
  }

  return { configure, middleware, clientSource, initialAccessTokenSource };
}
export type Registration = ReturnType<typeof createRegistration>;
