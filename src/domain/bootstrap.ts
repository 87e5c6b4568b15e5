import { isUniqueViolation } from '../storage/database.js';
import { provisionOrganization } from './organization-provisioning.js';
import type { ProvisioningDependencies } from './organization-provisioning.js';

/** The shape of `<data dir>/bootstrap.json` and of `tessera bootstrap --json`; it never changes. */
export interface BootstrapResult {
  organization_id: string;
  admin: { username: string; password: string };
  management_token: string;
  issuer: string;
}

export const BOOTSTRAP_ORGANIZATION = 'default';
export const BOOTSTRAP_ADMIN = 'admin';
export const BOOTSTRAP_SERVICE_ACCOUNT = 'bootstrap';

/**
 * First start against an empty database: the organization `default`, an owner `admin` with a
 * random password, and a bootstrap service account whose SAT holds every organization scope plus
 * `organizations:admin`. Returns undefined when any organization exists already, so it runs once
 * even when several nodes start together (organization names are unique; the loser's
 * transaction rolls back).
 */
export async function bootstrap(
  deps: ProvisioningDependencies & { issuerUrl: string; satLifetimeDays: number },
): Promise<BootstrapResult | undefined> {
  if ((await deps.organizations.count()) > 0) return undefined;
  try {
    const result = await provisionOrganization(deps, {
      name: BOOTSTRAP_ORGANIZATION,
      owner: { username: BOOTSTRAP_ADMIN, name: 'Administrator' },
      serviceAccountName: BOOTSTRAP_SERVICE_ACCOUNT,
      platformAdmin: true,
      managementTokenLifetimeDays: deps.satLifetimeDays,
      createdBy: 'system:bootstrap',
    });
    return {
      organization_id: result.organization.id,
      admin: { username: BOOTSTRAP_ADMIN, password: result.ownerPassword! },
      management_token: result.managementToken,
      issuer: deps.issuerUrl,
    };
  } catch (error) {
    if (isUniqueViolation(error)) return undefined;
    throw error;
  }
}
