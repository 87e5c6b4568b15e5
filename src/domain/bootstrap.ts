import type { Database } from '../storage/database.js';
import { newId } from '../storage/ids.js';
import type { OrganizationRepository } from '../storage/organization-repository.js';
import type { ServiceAccountRepository } from '../storage/service-account-repository.js';
import type { UserRepository } from '../storage/user-repository.js';
import type { ReferenceTokenIssuer } from '../tokens/reference-tokens.js';
import { generatePassword, hashPassword } from './passwords.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, PLATFORM_SCOPE } from './types.js';

/** The shape of `<data dir>/bootstrap.json` and of `tessera bootstrap --json`; it never changes. */
export interface BootstrapResult {
  organization_id: string;
  admin: { username: string; password: string };
  management_token: string;
  issuer: string;
}

export interface BootstrapDependencies {
  db: Database;
  organizations: OrganizationRepository;
  users: UserRepository;
  serviceAccounts: ServiceAccountRepository;
  issuer: ReferenceTokenIssuer;
  issuerUrl: string;
  /** The bootstrap SAT lives as long as organization policy lets a SAT live. */
  satLifetimeDays: number;
}

export const BOOTSTRAP_ORGANIZATION = 'default';
export const BOOTSTRAP_ADMIN = 'admin';
export const BOOTSTRAP_SERVICE_ACCOUNT = 'bootstrap';

/**
 * First start against an empty database: the organization `default`, an owner `admin` with a
 * random password, and a bootstrap service account whose SAT holds every organization scope plus
 * `organizations:admin`. Returns undefined when any organization exists already, so it runs once
 * even when several nodes start together (the organization name is unique; the loser's
 * transaction rolls back).
 */
export async function bootstrap(deps: BootstrapDependencies): Promise<BootstrapResult | undefined> {
  if ((await deps.organizations.count()) > 0) return undefined;
  const password = generatePassword();
  const passwordHash = await hashPassword(password);
  try {
    return await deps.db.transaction(async (tx) => {
      const organization = await deps.organizations.insert({ id: newId('org'), name: BOOTSTRAP_ORGANIZATION, policy: {} }, tx);
      await deps.users.insert(
        { id: newId('usr'), organization_id: organization.id, username: BOOTSTRAP_ADMIN, email: null, name: 'Administrator', role: 'owner', password_hash: passwordHash },
        tx,
      );
      const account = await deps.serviceAccounts.insert(
        { id: newId('sa'), organization_id: organization.id, name: BOOTSTRAP_SERVICE_ACCOUNT, description: 'Created at first start; holds the bootstrap Management API token', platform_admin: true },
        tx,
      );
      const issued = await deps.issuer.issue(
        {
          organizationId: organization.id,
          type: 'sat',
          name: 'bootstrap management token',
          serviceAccountId: account.id,
          scopes: [...ORGANIZATION_SCOPES, PLATFORM_SCOPE],
          resources: [MANAGEMENT_AUDIENCE],
          expiresInSeconds: deps.satLifetimeDays * 86400,
          createdBy: 'system:bootstrap',
        },
        tx,
      );
      return { organization_id: organization.id, admin: { username: BOOTSTRAP_ADMIN, password }, management_token: issued.token, issuer: deps.issuerUrl };
    });
  } catch (error) {
    if ((error as { code?: string }).code === '23505') return undefined;
    throw error;
  }
}
