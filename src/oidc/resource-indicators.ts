import { errors } from 'oidc-provider';
import type { ResourceServer as ProviderResourceServer } from 'oidc-provider';

import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES } from '../domain/types.js';
import type { ResourceServer } from '../domain/types.js';

/**
 * RFC 8707 resource indicators: which API a token is for. A client gets a token for a
 * resource server only if the resource server belongs to the client's organization and the
 * client lists it; scopes are narrowed to those the resource server defines and the client is
 * allowed (principle 2, least privilege per tenant). The Management API is a built-in resource
 * server of every organization (DESIGN.md), so its tokens never overlap with connector tokens.
 */
export interface ClientFacts {
  tessera_organization_id?: string;
  tessera_resources?: string[];
  tessera_scopes?: string[];
}

export interface ResourceLookup {
  findByIdentifier(identifier: string): Promise<ResourceServer | undefined>;
}

export function createResourceIndicators(options: { lookup: ResourceLookup; managementTokenTtl: number }) {
  const { lookup, managementTokenTtl } = options;

  return {
    async getResourceServerInfo(indicator: string, client: ClientFacts): Promise<ProviderResourceServer> {
      const allowedResources = client.tessera_resources ?? [];
      const allowedScopes = new Set(client.tessera_scopes ?? []);
      if (!allowedResources.includes(indicator)) {
        throw new errors.InvalidTarget('the client is not allowed to request this resource');
      }
      if (indicator === MANAGEMENT_AUDIENCE) {
        return {
          audience: MANAGEMENT_AUDIENCE,
          // Only organization scopes of the Management API: never a resource server's scope that
          // merely looks alike, and never organizations:admin (held by the bootstrap SAT alone).
          scope: ORGANIZATION_SCOPES.filter((s) => allowedScopes.has(s)).join(' '),
          accessTokenTTL: managementTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      }
      const rs = await lookup.findByIdentifier(indicator);
      // An API of another organization is indistinguishable from an unknown one.
      if (!rs || rs.organization_id !== client.tessera_organization_id) {
        throw new errors.InvalidTarget('the client is not allowed to request this resource');
      }
      return {
        audience: rs.identifier,
        scope: rs.scopes.map((s) => s.name).filter((s) => allowedScopes.has(s)).join(' '),
        accessTokenTTL: rs.access_token_ttl,
        accessTokenFormat: rs.token_format,
        ...(rs.token_format === 'jwt' ? { jwt: { sign: { alg: 'ES256' as const } } } : {}),
      };
    },

    /** With a single allowed resource, a request without `resource` means that one (RFC 8707 §2). */
    defaultResource(client: ClientFacts): string | undefined {
      const resources = client.tessera_resources ?? [];
      return resources.length === 1 ? resources[0] : undefined;
    },
  };
}

export type ResourceIndicators = ReturnType<typeof createResourceIndicators>;
