import type { ClientRepository } from '../storage/client-repository.js';
import type { Database, Queryable } from '../storage/database.js';
import { newId } from '../storage/ids.js';
import type { OrganizationRepository } from '../storage/organization-repository.js';
import type { ServiceAccountRepository } from '../storage/service-account-repository.js';
import type { UserRepository } from '../storage/user-repository.js';
import { cliClient } from './cli-client.js';
import { consoleClient } from './console-client.js';
import { newAccountPassword } from './passwords.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, PLATFORM_SCOPE } from './types.js';
import type { Organization, OrganizationPolicy, ServiceAccount, User } from './types.js';

/** What provisioning needs of the token issuer: one SAT, issued inside the provisioning transaction. */
export interface ManagementTokenIssuer {
  issue(
    input: { organizationId: string; type: 'sat'; name: string; serviceAccountId: string; scopes: string[]; resources: string[]; expiresInSeconds: number; createdBy: string },
    q?: Queryable,
  ): Promise<{ token: string; row: { id: string } }>;
}

export interface ProvisioningDependencies {
  db: Database;
  organizations: OrganizationRepository;
  users: UserRepository;
  serviceAccounts: ServiceAccountRepository;
  clients: ClientRepository;
  /** Issues the organization's first Management API token (src/tokens/reference-tokens.ts). */
  issuer: ManagementTokenIssuer;
}

export interface ProvisionInput {
  name: string;
  owner: { username: string; password?: string; email?: string | null; name?: string | null };
  policy?: Partial<OrganizationPolicy>;
  /** The automation account's name and whether it may create organizations (bootstrap only). */
  serviceAccountName: string;
  platformAdmin: boolean;
  managementTokenLifetimeDays: number;
  createdBy: string;
}

export interface Provisioned {
  organization: Organization;
  owner: User;
  ownerPassword: string | undefined;
  serviceAccount: ServiceAccount;
  managementToken: string;
  managementTokenId: string;
  /** The organization's built-in `tessera-cli` client (src/domain/cli-client.ts). */
  cliClientId: string;
}

/**
 * A new organization, in one transaction: the organization, its first owner, its built-in
 * `tessera-cli` and `tessera-console` clients, and a service account holding a Management API SAT with every
 * organization scope, so automation can take over at once (docs/management-api.md). Nothing is half-written: any failure rolls it all back.
 * The owner's password is returned only when Tessera generated it.
 */
export async function provisionOrganization(deps: ProvisioningDependencies, input: ProvisionInput, outer?: Queryable): Promise<Provisioned> {
  const { hash: passwordHash, generated } = await newAccountPassword(input.owner.password);
  const work = async (tx: Queryable): Promise<Provisioned> => {
    const organization = await deps.organizations.insert({ id: newId('org'), name: input.name, policy: input.policy ?? {} }, tx);
    const owner = await deps.users.insert(
      {
        id: newId('usr'),
        organization_id: organization.id,
        username: input.owner.username,
        email: input.owner.email ?? null,
        name: input.owner.name ?? null,
        role: 'owner',
        password_hash: passwordHash,
      },
      tx,
    );
    const cli = await deps.clients.insert(cliClient(organization.id), tx);
    await deps.clients.insert(consoleClient(organization.id), tx);
    const serviceAccount = await deps.serviceAccounts.insert(
      {
        id: newId('sa'),
        organization_id: organization.id,
        name: input.serviceAccountName,
        description: 'Holds the organization\'s first Management API token',
        platform_admin: input.platformAdmin,
      },
      tx,
    );
    const issued = await deps.issuer.issue(
      {
        organizationId: organization.id,
        type: 'sat',
        name: `${input.serviceAccountName} management token`,
        serviceAccountId: serviceAccount.id,
        scopes: input.platformAdmin ? [...ORGANIZATION_SCOPES, PLATFORM_SCOPE] : [...ORGANIZATION_SCOPES],
        resources: [MANAGEMENT_AUDIENCE],
        expiresInSeconds: input.managementTokenLifetimeDays * 86400,
        createdBy: input.createdBy,
      },
      tx,
    );
    return { organization, owner, ownerPassword: generated, serviceAccount, managementToken: issued.token, managementTokenId: issued.row.id, cliClientId: cli.client_id };
  };
  return outer ? work(outer) : deps.db.transaction(work);
}
