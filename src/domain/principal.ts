import type { Role } from './types.js';

/** Who is calling the Management API, as established from the Bearer token (never from the URL). */
export interface Principal {
  organizationId: string;
  /** Effective scopes: the token's, narrowed to what the owner may do right now. */
  scopes: ReadonlySet<string>;
  actor: { type: 'user' | 'service_account' | 'client'; id: string; name?: string };
  /** How the caller authenticated: an OAuth access token (JWT) or a reference token. */
  via: 'jwt' | 'pat' | 'sat';
  tokenId?: string;
  role?: Role;
  /** Service accounts created at bootstrap may administer organizations. */
  platformAdmin: boolean;
}
