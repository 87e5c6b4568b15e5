import { parseArgs } from 'node:util';

import type { Foundation } from './app/foundation.js';

/** What the operator's commands use of an opened installation (the server's object has it too). */
type Tessera = Pick<Foundation, 'config' | 'db' | 'repos' | 'audit' | 'referenceTokenIssuer'>;
import { provisionOrganization } from './domain/organization-provisioning.js';
import { newAccountPassword } from './domain/passwords.js';
import type { Organization, Role } from './domain/types.js';
import { isUniqueViolation } from './storage/database.js';
import { newId } from './storage/ids.js';

/**
 * What an operator can do without a token, with direct access to the database (the CLI's
 * `tessera organizations …` and `tessera users …`): create an organization, create a user,
 * reset a password. The same rules as the Management API apply (names, roles, password
 * length); each action is audited with the actor `system:cli`. Generated passwords and the new
 * organization's management token are printed once, never logged.
 */
export const OPERATOR_USAGE = `  organizations create <name> [--owner USERNAME] [--password-stdin] [--json]
                             create an organization, its first owner and a management token
  users create <username> --organization ORG [--role owner|admin|member] [--email E]
               [--name N] [--password-stdin] [--json]
                             create a user (ORG is a name or id)
  users reset-password <username> --organization ORG [--password-stdin]
                             set a new password (generated and printed unless read from stdin)
`;

export interface OperatorIo {
  out(text: string): void;
  err(text: string): void;
  /** The whole of standard input (for --password-stdin). */
  readStdin(): Promise<string>;
}

const NAME = /^[\w][\w .-]{0,99}$/;
const USERNAME = /^[\w.@+-]{1,100}$/;
const ROLES: readonly Role[] = ['owner', 'admin', 'member'];
const MIN_PASSWORD = 12;

async function findOrganization(tessera: Tessera, reference: string): Promise<Organization | undefined> {
  return (await tessera.repos.organizations.findByName(reference)) ?? (/^org_[\w-]+$/.test(reference) ? tessera.repos.organizations.findById(reference) : undefined);
}

async function readPassword(io: OperatorIo): Promise<string> {
  const password = (await io.readStdin()).replace(/\r?\n$/, '');
  if (password.length < MIN_PASSWORD || password.length > 1024) throw new Error(`the password must have ${MIN_PASSWORD} to 1024 characters`);
  return password;
}

function audit(tessera: Tessera, organizationId: string, action: string, target: { type: string; id: string }) {
  tessera.audit.record({ organizationId, actor: { type: 'system', id: null, name: 'cli' }, action, target, outcome: 'success' });
}

export async function organizationsCommand(tessera: Tessera, args: string[], io: OperatorIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { owner: { type: 'string', default: 'owner' }, 'password-stdin': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const [action, name] = positionals;
  if (action !== 'create' || !name) {
    io.err(`usage:\n${OPERATOR_USAGE}`);
    return 2;
  }
  if (!NAME.test(name)) throw new Error('the organization name may use letters, digits, spaces, dot, dash and underscore (at most 100)');
  if (!USERNAME.test(values.owner)) throw new Error('the owner username may use letters, digits and . @ + - _ (at most 100)');
  const password = values['password-stdin'] ? await readPassword(io) : undefined;
  const defaults = tessera.config.policyDefaults;
  let result;
  try {
    result = await provisionOrganization(
      { db: tessera.db, organizations: tessera.repos.organizations, users: tessera.repos.users, serviceAccounts: tessera.repos.serviceAccounts, clients: tessera.repos.clients, issuer: tessera.referenceTokenIssuer },
      { name, owner: { username: values.owner, password }, serviceAccountName: 'automation', platformAdmin: false, managementTokenLifetimeDays: defaults.max_sat_lifetime_days, createdBy: 'system:cli' },
    );
  } catch (error) {
    if (isUniqueViolation(error)) throw new Error(`an organization named "${name}" exists already`);
    throw error;
  }
  audit(tessera, result.organization.id, 'organization.created', { type: 'organization', id: result.organization.id });
  const output = {
    id: result.organization.id,
    name: result.organization.name,
    owner: { id: result.owner.id, username: result.owner.username, ...(result.ownerPassword ? { password: result.ownerPassword } : {}) },
    management_token: result.managementToken,
    cli_client_id: result.cliClientId,
  };
  if (values.json) io.out(`${JSON.stringify(output, null, 2)}\n`);
  else {
    io.out(`organization ${output.id} (${output.name})\nowner: ${output.owner.username}\n`);
    if (output.owner.password) io.out(`owner password: ${output.owner.password}\n`);
    io.out(`management token: ${output.management_token}\n`);
    io.out(`sign in from the command line: tessera login --issuer ${tessera.config.issuer} --organization ${output.id}\n`);
  }
  return 0;
}

export async function usersCommand(tessera: Tessera, args: string[], io: OperatorIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      organization: { type: 'string' },
      role: { type: 'string', default: 'member' },
      email: { type: 'string' },
      name: { type: 'string' },
      'password-stdin': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const [action, username] = positionals;
  if ((action !== 'create' && action !== 'reset-password') || !username || !values.organization) {
    io.err(`usage:\n${OPERATOR_USAGE}`);
    return 2;
  }
  const org = await findOrganization(tessera, values.organization);
  if (!org) throw new Error(`no organization "${values.organization}"`);
  const password = values['password-stdin'] ? await readPassword(io) : undefined;
  const { hash: passwordHash, generated } = await newAccountPassword(password);

  if (action === 'create') {
    if (!USERNAME.test(username)) throw new Error('the username may use letters, digits and . @ + - _ (at most 100)');
    if (!ROLES.includes(values.role as Role)) throw new Error('--role must be owner, admin or member');
    if (values.email !== undefined && !/^[^\s@]+@[^\s@]+$/.test(values.email)) throw new Error('--email is not an email address');
    let user;
    try {
      user = await tessera.repos.users.insert({
        id: newId('usr'), organization_id: org.id, username, email: values.email ?? null, name: values.name ?? null, role: values.role as Role, password_hash: passwordHash,
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new Error(`the user "${username}" exists already in ${org.name}`);
      throw error;
    }
    audit(tessera, org.id, 'user.created', { type: 'user', id: user.id });
    const output = { id: user.id, username: user.username, role: user.role, organization_id: org.id, ...(generated ? { password: generated } : {}) };
    if (values.json) io.out(`${JSON.stringify(output, null, 2)}\n`);
    else io.out(`user ${user.id} (${user.username}, ${user.role}) in ${org.name}\n${generated ? `password: ${generated}\n` : ''}`);
    return 0;
  }

  const user = await tessera.repos.users.findByUsername(org.id, username);
  if (!user) throw new Error(`no user "${username}" in ${org.name}`);
  await tessera.repos.users.setPassword(user.id, passwordHash);
  audit(tessera, org.id, 'user.password_set', { type: 'user', id: user.id });
  if (values.json) io.out(`${JSON.stringify({ id: user.id, username: user.username, ...(generated ? { password: generated } : {}) }, null, 2)}\n`);
  else io.out(`password of ${user.username} in ${org.name} reset\n${generated ? `password: ${generated}\n` : ''}`);
  return 0;
}
