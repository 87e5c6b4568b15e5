import type { OrganizationPolicy } from '../config/config.js';

export type { OrganizationPolicy };

/** The Management API's audience: a built-in resource server of every organization (docs/design.md, "The domain"). */
export const MANAGEMENT_AUDIENCE = 'urn:tessera:management';

/** Management API scopes of an organization (docs/design.md, "The domain"). */
export const ORGANIZATION_SCOPES = [
  'organization:read',
  'organization:write',
  'users:read',
  'users:write',
  'service-accounts:read',
  'service-accounts:write',
  'clients:read',
  'clients:write',
  'resource-servers:read',
  'resource-servers:write',
  'tokens:read',
  'tokens:write',
  'audit:read',
] as const;

/** Held only by the bootstrap service account: creates organizations. */
export const PLATFORM_SCOPE = 'organizations:admin';

export const MANAGEMENT_SCOPES: readonly string[] = [...ORGANIZATION_SCOPES, PLATFORM_SCOPE];

export type Role = 'owner' | 'admin' | 'member';

/** Roles map to Management API scopes (docs/design.md, "The domain"): owner all, admin all but organization:write. */
export const ROLE_SCOPES: Record<Role, readonly string[]> = {
  owner: ORGANIZATION_SCOPES,
  admin: ORGANIZATION_SCOPES.filter((s) => s !== 'organization:write'),
  member: ['tokens:read', 'tokens:write'],
};

/** Prefix of Tessera's own client metadata members (see client-metadata.ts). */
export const TESSERA_CLIENT_PREFIX = 'tessera_';

/** OpenID scopes any client may hold, whatever its resources (docs/management-api.md). */
export const OPENID_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

export interface Organization {
  id: string;
  name: string;
  policy: Partial<OrganizationPolicy>;
  created_at: Date;
  updated_at: Date;
}

export interface User {
  id: string;
  organization_id: string;
  username: string;
  email: string | null;
  name: string | null;
  role: Role;
  password_hash: string | null;
  status: 'active' | 'deactivated';
  created_at: Date;
  updated_at: Date;
}

export interface ServiceAccount {
  id: string;
  organization_id: string;
  name: string;
  description: string | null;
  status: 'active' | 'disabled';
  platform_admin: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface ResourceServerScope {
  name: string;
  description?: string;
}

export interface ResourceServer {
  id: string;
  organization_id: string;
  identifier: string;
  name: string | null;
  scopes: ResourceServerScope[];
  token_format: 'jwt' | 'opaque';
  access_token_ttl: number;
  sensitive: boolean;
  /** RFC 9449: tokens for this API are issued only bound to a DPoP key. */
  dpop_required: boolean;
  created_at: Date;
  updated_at: Date;
}

export type ClientKind = 'oauth' | 'introspection' | 'cli' | 'console';

/** Tessera's own clients of every organization (tessera-cli, tessera-console): listed, never changed by the organization. */
export const isBuiltInClient = (kind: ClientKind): boolean => kind === 'cli' || kind === 'console';

export interface ClientRecord {
  client_id: string;
  organization_id: string;
  kind: ClientKind;
  name: string | null;
  resource_server_id: string | null;
  service_account_id: string | null;
  /** oidc-provider client metadata (RFC 7591 member names), without the secret. */
  metadata: Record<string, unknown>;
  allowed_scopes: string[];
  allowed_resources: string[];
  secret_enc: string | null;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
  secret_rotated_at: Date | null;
  registration: boolean;
  /** Dynamically registered clients: the most their RFC 7592 updates may ask for. */
  registration_limits: { scopes: string[]; resources: string[] } | null;
  initial_access_token_id: string | null;
  created_at: Date;
  updated_at: Date;
}
