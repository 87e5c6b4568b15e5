import { errors } from 'oidc-provider';
import type { ResourceLookup } from '../domain/resource-server-cache.js';
import type { ResourceServer as ProviderResourceServer } from 'oidc-provider';

import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, ROLE_SCOPES } from '../domain/types.js';
import type { Role } from '../domain/types.js';

/**
 * RFC 8707 resource indicators: which API a token is for. A client gets a token for a
 * resource server only if the resource server belongs to the client's organization and the
 * client lists it; scopes are narrowed to those the resource server defines and the client is
 * allowed (docs/design.md, "Least privilege per tenant"). The Management API is a built-in resource
 * server of every organization (docs/design.md), so its tokens never overlap with connector tokens.
 * A user's Management API token (through tessera-cli or any client allowed the Management API)
 * carries no more than the user's role grants, checked on every issue and refresh, so a
 * demotion narrows the next token as it narrows a PAT.
 */
export interface ClientFacts {
  tessera_organization_id?: string;
  tessera_resources?: string[];
  tessera_scopes?: string[];
}

export interface ResourceIndicatorOptions {
  lookup: ResourceLookup;
  managementTokenTtl: number;
  /** The role of a user in an organization; undefined when the user is not an active member of it. */
  roleOf?: (accountId: string, organizationId: string) => Promise<Role | undefined>;
}

export function createResourceIndicators(options: ResourceIndicatorOptions) {
  const { lookup, managementTokenTtl } = options;

  /** Management API scopes a client may request, narrowed to the role of the user it acts for. */
  async function managementScopes(client: ClientFacts, allowedScopes: ReadonlySet<string>, accountId: string | undefined): Promise<string[]> {
    // Only organization scopes of the Management API: never a resource server's scope that
    // merely looks alike, and never organizations:admin (held by the bootstrap SAT alone).
    const scopes = ORGANIZATION_SCOPES.filter((s) => allowedScopes.has(s));
    // Without a user (client credentials, or an authorization request before sign-in) the
    // client's own allowance is the ceiling; the token for a user is computed with the user known.
    if (accountId === undefined || !options.roleOf) return scopes;
    const role = client.tessera_organization_id ? await options.roleOf(accountId, client.tessera_organization_id) : undefined;
    const granted: ReadonlySet<string> = new Set(role ? ROLE_SCOPES[role] : []);
    return scopes.filter((s) => granted.has(s));
  }

  return {
    /**
     * `accountId`: the user the token is for, when there is one (docs/security.md, "Who may do
     * what", applies alike). `issuance`: at the token endpoint, whether the token will be bound to
     * a DPoP key; an API that requires DPoP (RFC 9449) gets no other (absent elsewhere, e.g. at /auth).
     */
    async getResourceServerInfo(indicator: string, client: ClientFacts, accountId?: string, issuance?: { dpop: boolean }): Promise<ProviderResourceServer> {
      const allowedResources = client.tessera_resources ?? [];
      const allowedScopes = new Set(client.tessera_scopes ?? []);
      if (!allowedResources.includes(indicator)) {
        throw new errors.InvalidTarget('the client is not allowed to request this resource');
      }
      if (indicator === MANAGEMENT_AUDIENCE) {
        return {
          audience: MANAGEMENT_AUDIENCE,
          scope: (await managementScopes(client, allowedScopes, accountId)).join(' '),
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
      if (rs.dpop_required && issuance && !issuance.dpop) {
        throw new errors.InvalidRequest('this resource accepts only DPoP-bound access tokens: send a DPoP proof (RFC 9449)');
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
