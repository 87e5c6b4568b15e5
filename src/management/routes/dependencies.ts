import type { AuditLog } from '../../audit/audit-event.js';
import type { Clock } from '../../clock.js';
import type { ClientDirectory } from '../../domain/client-directory.js';
import type { OrganizationPolicy } from '../../domain/types.js';
import type { Envelope } from '../../keys/envelope.js';
import type { OutboundGuard } from '../../outbound/outbound-guard.js';
import type { ClientRepository } from '../../storage/client-repository.js';
import type { Database } from '../../storage/database.js';
import type { InitialAccessTokenRepository } from '../../storage/initial-access-token-repository.js';
import type { OrganizationRepository } from '../../storage/organization-repository.js';
import type { ResourceServerRepository } from '../../storage/resource-server-repository.js';
import type { ServiceAccountRepository } from '../../storage/service-account-repository.js';
import type { UserRepository } from '../../storage/user-repository.js';

/** What the organization-scoped resource routes need; app.ts passes one object to all of them. */
export interface ResourceRouteDependencies {
  db: Database;
  clock: Clock;
  envelope: Envelope;
  organizations: OrganizationRepository;
  users: UserRepository;
  serviceAccounts: ServiceAccountRepository;
  resourceServers: ResourceServerRepository;
  clients: ClientRepository;
  initialAccessTokens: InitialAccessTokenRepository;
  clientDirectory: ClientDirectory;
  policyDefaults: OrganizationPolicy;
  /** Drops changed clients from every node's cache (this one and, through pub/sub, the others). */
  clientsChanged(clientIds: string[] | 'all'): Promise<void>;
  /** Refuses client URLs Tessera would fetch from an internal address (src/outbound/outbound-guard.ts). */
  outbound: Pick<OutboundGuard, 'urlProblem'>;
  /** Runs oidc-provider's own client metadata validation; throws its InvalidClientMetadata error. */
  validateClientMetadata(metadata: Record<string, unknown>): Promise<void>;
  /**
   * A user's or service account's status or role changed, or a user was deleted (committed):
   * every node forgets the owner's cached PATs/SATs and the user's cached state, so the next use
   * of any of their tokens sees the change at once.
   */
  ownerChanged?(ownerId: string): Promise<void>;
  /** Every scope the owner's live PATs/SATs carry. */
  scopesHeldBy?(organizationId: string, ownerId: string): Promise<string[]>;
  /** Before a user or service account is deleted: revokes its tokens (audited, caches dropped). */
  revokeOwnerTokens?(ownerId: string, reason: string): Promise<number>;
  audit?: AuditLog;
  /** Whether RFC 8705 certificate-bound tokens are on (config `mtls.clientCertificateHeader`, src/oidc/mtls.ts). */
  mtlsEnabled?: boolean;
}
