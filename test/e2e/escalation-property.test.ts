/**
 * Escalation, as a property (fast-check): whoever calls the Management API, and whatever it
 * calls in whatever order, it never comes away with more than it holds.
 *
 * Each run generates a caller (an owner, admin or member user acting through a PAT, a SAT, or a
 * client-credentials client, each with a random subset of the Management scopes) and a short
 * sequence of Management API calls over HTTP: issue, rotate and revoke tokens; create, patch,
 * re-secret and delete clients; create and patch users and service accounts; rotate an API's
 * introspection credentials. The targets are made fresh for every run by a principal with full
 * power: an owner's, an admin's and a member's PAT, an all-scope SAT, a platform SAT holding
 * `organizations:admin`, and clients with every organization scope (a secret one, a
 * private_key_jwt one, a sign-in one). After every call:
 *
 *   (a) a response that hands out a secret (a PAT or SAT, a client secret, introspection
 *       credentials) hands out nothing the caller could not create itself right now: the
 *       credential's effective Management scopes are within the caller's, `organizations:admin`
 *       included, a sensitive API's scopes only go to callers who may hold them, and a PAT's
 *       secret only ever goes to its own user;
 *   (b) no user is created or promoted above the caller's own role;
 *   (c) a client that was created, or whose power moved (scopes, resources, grant types,
 *       redirect URIs, authentication method, keys, owning service account), is within what the
 *       caller could create itself;
 *   (d) a refusal is a 403, 404, 409 or 422 problem+json document, never a 5xx.
 *
 * The caller's ceiling is its effective Management scopes: a user's token scopes narrowed to
 * ROLE_SCOPES of their role (src/management/auth.ts narrows them the same way), a SAT's or
 * client's own scopes.
 *
 * A fixed seed and a bounded number of runs keep CI deterministic; a failure prints the seed and
 * the path of the shrunk counterexample, and the calls that led to it. Reproduce one with
 * ESCALATION_SEED and ESCALATION_PATH; explore with another seed or ESCALATION_RUNS.
 */
import { generateKeyPairSync } from 'node:crypto';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';

import { MANAGEMENT_AUDIENCE, MANAGEMENT_SCOPES, ORGANIZATION_SCOPES, PLATFORM_SCOPE, ROLE_SCOPES } from '../../src/domain/types.js';
import type { Role } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { backends } from '../helpers/backends.js';
import { clientCredentials, createClient, createResourceServer, expectApi, uniqueName } from '../helpers/management.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

/** Fixed, so CI runs the same cases every time; override to explore or to reproduce a failure. */
const SEED = Number(process.env.ESCALATION_SEED ?? 20_251_101);
const PATH = process.env.ESCALATION_PATH;
/** 0.1 to 0.2 s each on two cores: well under a minute per backend, shrinking included. */
const RUNS = Number(process.env.ESCALATION_RUNS ?? 100);
const MAX_COMMANDS = 6;
/** Runs spent shrinking a failure before the smallest counterexample so far is reported. */
const SHRINK_RUNS = 80;

const ROLES = ['owner', 'admin', 'member'] as const;
const RANK: Record<Role, number> = { member: 0, admin: 1, owner: 2 };
const MANAGEMENT: ReadonlySet<string> = new Set(MANAGEMENT_SCOPES);

/** Two APIs of the organization; a sensitive one's scopes go to admins and owners only (docs/tokens.md, "Personal and service access tokens"). */
const API_SCOPES = { plain: ['plain:read', 'plain:write'], sensitive: ['secret:read', 'secret:write'] } as const;
type ResourceKey = 'management' | 'plain' | 'sensitive';
const RESOURCE_KEYS: readonly ResourceKey[] = ['management', 'plain', 'sensitive'];
const SCOPES_OF: Record<ResourceKey, readonly string[]> = { management: MANAGEMENT_SCOPES, ...API_SCOPES };
const ALL_SCOPES = RESOURCE_KEYS.flatMap((r) => SCOPES_OF[r]);
const ATTACKER_REDIRECT = 'https://attacker.example.test/callback';

// ---------------------------------------------------------------------------------------
// What is generated: plain data, so fast-check can shrink it and print it

type CallerKind = Role | 'sat' | 'client';
interface CallerSpec {
  kind: CallerKind;
  scopes: string[];
}

type ClientChange =
  | { field: 'name' }
  | { field: 'redirect' }
  | { field: 'machine' }
  | { field: 'auth'; method: 'client_secret_basic' | 'client_secret_post' }
  | { field: 'account'; account: number | null }
  | { field: 'key' }
  | { field: 'scopes'; scopes: string[]; resources: ResourceKey[] };

type Command =
  | { op: 'issue'; type: 'pat' | 'sat'; account: number; scopes: string[]; resources: ResourceKey[] }
  | { op: 'rotate'; token: number }
  | { op: 'revoke'; token: number }
  | { op: 'create-client'; grant: 'client_credentials' | 'authorization_code'; auth: 'secret' | 'key'; account: number | null; scopes: string[]; resources: ResourceKey[] }
  | { op: 'patch-client'; client: number; change: ClientChange }
  | { op: 'client-secret'; client: number }
  | { op: 'delete-client'; client: number }
  | { op: 'create-user'; role: Role }
  | { op: 'patch-user'; user: number; role: Role | null; status: 'active' | 'deactivated' | null }
  | { op: 'create-account' }
  | { op: 'patch-account'; account: number; status: 'active' | 'disabled' }
  | { op: 'rs-credentials'; api: number };

/** Targets are picked by number, modulo what exists at that point of the run. */
const pick = fc.nat({ max: 7 });
const resourcesArb = fc.subarray([...RESOURCE_KEYS], { minLength: 1 });
const scopesArb = fc.subarray(ALL_SCOPES);

/** A scope is held two times in three, so most callers pass the route's scope check and reach its rules. */
const held = fc.oneof({ weight: 1, arbitrary: fc.constant(false) }, { weight: 2, arbitrary: fc.constant(true) });
const callerArb: fc.Arbitrary<CallerSpec> = fc.record({
  kind: fc.constantFrom<CallerKind>(...ROLES, 'sat', 'client'),
  scopes: fc
    .tuple(...ORGANIZATION_SCOPES.map(() => held))
    .map((flags) => ORGANIZATION_SCOPES.filter((_, i) => flags[i]))
    .filter((scopes) => scopes.length > 0),
});

const clientChangeArb: fc.Arbitrary<ClientChange> = fc.oneof(
  fc.constant({ field: 'name' as const }),
  fc.constant({ field: 'redirect' as const }),
  fc.constant({ field: 'machine' as const }),
  fc.record({ field: fc.constant('auth' as const), method: fc.constantFrom('client_secret_basic' as const, 'client_secret_post' as const) }),
  fc.record({ field: fc.constant('account' as const), account: fc.option(pick, { nil: null }) }),
  fc.constant({ field: 'key' as const }),
  fc.record({ field: fc.constant('scopes' as const), scopes: scopesArb, resources: resourcesArb }),
);

// Calls that can hand out a secret or move a credential's power are drawn more often.
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('rotate' as const), token: pick }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('client-secret' as const), client: pick }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('patch-client' as const), client: pick, change: clientChangeArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('issue' as const), type: fc.constantFrom('pat' as const, 'sat' as const), account: pick, scopes: scopesArb, resources: resourcesArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('create-client' as const),
      grant: fc.constantFrom('client_credentials' as const, 'authorization_code' as const),
      auth: fc.constantFrom('secret' as const, 'key' as const),
      account: fc.option(pick, { nil: null }),
      scopes: scopesArb,
      resources: resourcesArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('revoke' as const), token: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete-client' as const), client: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('create-user' as const), role: fc.constantFrom<Role>(...ROLES) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('patch-user' as const),
      user: pick,
      role: fc.option(fc.constantFrom<Role>(...ROLES), { nil: null }),
      status: fc.option(fc.constantFrom('active' as const, 'deactivated' as const), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('create-account' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('patch-account' as const), account: pick, status: fc.constantFrom('active' as const, 'disabled' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rs-credentials' as const), api: pick }) },
);

/**
 * The escalations named when this property was written, tried first on every seed so they stay
 * covered whatever the random runs draw. Targets by position: tokens 0 owner's PAT, 1 platform
 * SAT, 2 all-scope SAT; clients 0 secret, 1 private_key_jwt, 2 sign-in (see `arrange`).
 */
const admin: CallerSpec = { kind: 'admin', scopes: [...ROLE_SCOPES.admin] };
const KNOWN_ESCALATIONS: [CallerSpec, Command[]][] = [
  // An admin, refused organization:write everywhere else, takes it from an owner's PAT
  [admin, [{ op: 'rotate', token: 0 }]],
  // or organizations:admin from the platform SAT.
  [admin, [{ op: 'rotate', token: 1 }]],
  // A SAT that may only manage tokens and service accounts takes every organization scope.
  [{ kind: 'sat', scopes: ['tokens:read', 'tokens:write', 'service-accounts:write'] }, [{ op: 'rotate', token: 2 }]],
  // An admin takes the secret of a client an owner gave organization:write,
  [admin, [{ op: 'client-secret', client: 0 }]],
  // sends its authorization codes to a redirect URI of the admin's choosing,
  [admin, [{ op: 'patch-client', client: 2, change: { field: 'redirect' } }]],
  // or makes the admin's own key the one that authenticates it.
  [admin, [{ op: 'patch-client', client: 1, change: { field: 'key' } }]],
];

// ---------------------------------------------------------------------------------------
// The world each run acts in

interface Fixtures {
  server: TestServer;
  organizationId: string;
  /** The bootstrap SAT: every organization scope plus organizations:admin. Reads state back, never a target. */
  oracle: string;
  users: Record<Role, string>;
  /** Owns the SATs of SAT callers; never a target, so no run disables its own caller. */
  callerAccount: string;
  /** The bootstrap service account, the one whose SATs may hold organizations:admin. */
  platformAccount: string;
  apis: Record<'plain' | 'sensitive', { id: string; identifier: string }>;
  /** Public keys: the victim's for the private_key_jwt target, the attacker's for what the caller makes. */
  jwks: { victim: object; attacker: object };
}

interface Caller {
  spec: CallerSpec;
  token: string;
  ceiling: ReadonlySet<string>;
  userId?: string;
  role?: Role;
  tokenId?: string;
}

interface Target {
  id: string;
  label: string;
  self?: boolean;
}

interface Run {
  f: Fixtures;
  caller: Caller;
  tokens: Target[];
  clients: Target[];
  users: Target[];
  accounts: Target[];
  apis: Target[];
  labels: Map<string, string>;
}

function publicJwks(kid: string) {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'ES256' }] };
}

async function prepare(server: TestServer): Promise<Fixtures> {
  const organizationId = server.bootstrap.organization_id;
  const { repos } = server.tessera;
  const users = {} as Record<Role, string>;
  for (const role of ROLES) {
    // Through the repository: these users only need to exist and hold a role, and hashing a
    // password per user would cost a fifth of a second each.
    const user = await repos.users.insert({ id: newId('usr'), organization_id: organizationId, username: uniqueName(role), email: null, name: null, role, password_hash: null });
    users[role] = user.id;
  }
  const callerAccount = await repos.serviceAccounts.insert({ id: newId('sa'), organization_id: organizationId, name: uniqueName('callers'), description: null, platform_admin: false });
  const accounts = await expectApi(server, server.managementToken, 'GET', '/service-accounts?limit=100', undefined, 200);
  const platformAccount = accounts.items.find((a: { name: string }) => a.name === 'bootstrap').id as string;
  const plain = await createResourceServer(server, server.managementToken, { scopes: [...API_SCOPES.plain] });
  const sensitive = await createResourceServer(server, server.managementToken, { scopes: [...API_SCOPES.sensitive], sensitive: true });
  return {
    server,
    organizationId,
    oracle: server.managementToken,
    users,
    callerAccount: callerAccount.id,
    platformAccount,
    apis: { plain: { id: plain.id, identifier: plain.identifier }, sensitive: { id: sensitive.id, identifier: sensitive.identifier } },
    jwks: { victim: publicJwks('victim'), attacker: publicJwks('attacker') },
  };
}

const identifierOf = (f: Fixtures, key: ResourceKey) => (key === 'management' ? MANAGEMENT_AUDIENCE : f.apis[key].identifier);

/** Generated scopes, kept to those the chosen resources define, so most requests are well formed. */
const definedBy = (scopes: string[], resources: ResourceKey[]) => scopes.filter((s) => resources.some((r) => SCOPES_OF[r].includes(s)));

async function seedToken(f: Fixtures, input: { type: 'pat' | 'sat'; userId?: string; serviceAccountId?: string; scopes: readonly string[]; resources: string[] }) {
  const issued = await f.server.tessera.referenceTokenIssuer.issue({
    organizationId: f.organizationId, name: 'escalation fixture', expiresInSeconds: 3600, createdBy: 'test', ...input, scopes: [...input.scopes],
  });
  return { id: issued.row.id, token: issued.token };
}

/** The caller, and fresh targets made with full power, so every run starts from the same world. */
async function arrange(f: Fixtures, spec: CallerSpec): Promise<Run> {
  const { repos } = f.server.tessera;
  const all = [MANAGEMENT_AUDIENCE, f.apis.plain.identifier, f.apis.sensitive.identifier];
  const victim = (role: Role) =>
    repos.users.insert({ id: newId('usr'), organization_id: f.organizationId, username: uniqueName(`victim-${role}`), email: null, name: null, role, password_hash: null });
  const users = [await victim('member'), await victim('admin')];
  const account = await repos.serviceAccounts.insert({ id: newId('sa'), organization_id: f.organizationId, name: uniqueName('automation'), description: null, platform_admin: false });

  const tokens: Target[] = [
    { id: (await seedToken(f, { type: 'pat', userId: f.users.owner, scopes: ORGANIZATION_SCOPES, resources: [MANAGEMENT_AUDIENCE] })).id, label: "owner's PAT" },
    { id: (await seedToken(f, { type: 'sat', serviceAccountId: f.platformAccount, scopes: [...ORGANIZATION_SCOPES, PLATFORM_SCOPE], resources: [MANAGEMENT_AUDIENCE] })).id, label: 'platform SAT' },
    { id: (await seedToken(f, { type: 'sat', serviceAccountId: account.id, scopes: [...ORGANIZATION_SCOPES, ...API_SCOPES.sensitive], resources: all })).id, label: 'all-scope SAT' },
    { id: (await seedToken(f, { type: 'pat', userId: f.users.admin, scopes: [...ORGANIZATION_SCOPES, ...API_SCOPES.sensitive], resources: all })).id, label: "admin's PAT" },
    { id: (await seedToken(f, { type: 'pat', userId: f.users.member, scopes: [...ROLE_SCOPES.member, ...API_SCOPES.plain], resources: all })).id, label: "member's PAT" },
  ];
  const clients: Target[] = [
    { id: (await createClient(f.server, f.oracle, { scopes: [...ORGANIZATION_SCOPES, ...API_SCOPES.plain, ...API_SCOPES.sensitive], resources: all })).client_id, label: 'all-scope client' },
    {
      id: (await createClient(f.server, f.oracle, { token_endpoint_auth_method: 'private_key_jwt', jwks: f.jwks.victim, scopes: [...ORGANIZATION_SCOPES], resources: [MANAGEMENT_AUDIENCE] })).client_id,
      label: 'all-scope private_key_jwt client',
    },
    {
      id: (await createClient(f.server, f.oracle, {
        grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['https://app.example.test/callback'], scopes: ['openid', ...ORGANIZATION_SCOPES], resources: [MANAGEMENT_AUDIENCE],
      })).client_id,
      label: 'all-scope sign-in client',
    },
  ];

  let caller: Caller;
  if (spec.kind === 'sat' || spec.kind === 'client') {
    let token: string;
    let tokenId: string | undefined;
    if (spec.kind === 'sat') {
      ({ token, id: tokenId } = await seedToken(f, { type: 'sat', serviceAccountId: f.callerAccount, scopes: spec.scopes, resources: [MANAGEMENT_AUDIENCE] }));
    } else {
      const client = await createClient(f.server, f.oracle, { scopes: spec.scopes, resources: [MANAGEMENT_AUDIENCE] });
      const grant = await clientCredentials(f.server, client.client_id, client.client_secret, { resource: MANAGEMENT_AUDIENCE, scope: spec.scopes.join(' ') });
      if (grant.status !== 200) throw new Error(`arranging a client caller: ${JSON.stringify(grant.body)}`);
      token = grant.body.access_token;
    }
    caller = { spec, token, tokenId, ceiling: new Set(spec.scopes) };
  } else {
    const userId = f.users[spec.kind];
    const { token, id } = await seedToken(f, { type: 'pat', userId, scopes: spec.scopes, resources: [MANAGEMENT_AUDIENCE] });
    caller = { spec, token, tokenId: id, userId, role: spec.kind, ceiling: new Set(spec.scopes.filter((s) => ROLE_SCOPES[spec.kind as Role].includes(s))) };
  }
  if (caller.tokenId) tokens.push({ id: caller.tokenId, label: "the caller's own token", self: true });

  const run: Run = {
    f,
    caller,
    tokens,
    clients,
    users: users.map((u) => ({ id: u.id, label: `${u.role} ${u.username}` })),
    accounts: [{ id: account.id, label: 'automation account' }],
    apis: [{ id: f.apis.plain.id, label: 'plain API' }, { id: f.apis.sensitive.id, label: 'sensitive API' }],
    labels: new Map(),
  };
  for (const t of [...run.tokens, ...run.clients, ...run.users, ...run.accounts, ...run.apis]) run.labels.set(t.id, t.label);
  return run;
}

const at = <T>(pool: T[], n: number): T => pool[n % pool.length]!;

// ---------------------------------------------------------------------------------------
// The invariants

interface Credential {
  scopes: string[];
  resources: string[];
  /** A PAT's user: their role narrows what the PAT can do (src/management/auth.ts). */
  ownerRole?: Role;
}

/**
 * May the caller hold scopes of a sensitive API? Users by role. SATs and clients may: whichever
 * of them can issue or rotate a SAT holds service-accounts:write, which is what makes them
 * administrators in src/tokens/token-service.ts, and creating a client has no sensitivity rule
 * (src/domain/client-policy.ts).
 */
const maySensitive = (c: Caller) => c.role !== 'member';

/** (a) and (c): what the credential can do that the caller could not create itself, or undefined. */
function exceedsCaller(run: Run, credential: Credential): string | undefined {
  const { caller, f } = run;
  const management = credential.resources.includes(MANAGEMENT_AUDIENCE) ? credential.scopes.filter((s) => MANAGEMENT.has(s)) : [];
  const effective = credential.ownerRole ? management.filter((s) => ROLE_SCOPES[credential.ownerRole!].includes(s)) : management;
  const beyond = effective.filter((s) => !caller.ceiling.has(s));
  if (beyond.length > 0) return `its effective Management scopes exceed the caller's: ${beyond.join(' ')}`;
  const sensitive = credential.resources.includes(f.apis.sensitive.identifier) ? credential.scopes.filter((s) => (API_SCOPES.sensitive as readonly string[]).includes(s)) : [];
  if (sensitive.length > 0 && !maySensitive(caller)) return `it holds a sensitive API's scopes the caller may not hold: ${sensitive.join(' ')}`;
  return undefined;
}

/** (a) for PATs and SATs, from the body of an issue or rotate answer. */
async function tokenSecretProblem(run: Run, body: any): Promise<string | undefined> {
  let ownerRole: Role | undefined;
  if (body.type === 'pat') ownerRole = (await expectApi(run.f.server, run.f.oracle, 'GET', `/users/${body.owner.id}`, undefined, 200)).role;
  const problems = [exceedsCaller(run, { scopes: body.scopes, resources: body.resources, ownerRole })];
  // Even within the caller's scopes: whoever holds another user's PAT acts as that user.
  if (body.type === 'pat' && body.owner.id !== run.caller.userId) problems.push(`it is the secret of ${run.labels.get(body.id) ?? 'a PAT'} of another user`);
  return problems.filter(Boolean).join('; ') || undefined;
}

const readClient = (run: Run, id: string) => expectApi(run.f.server, run.f.oracle, 'GET', `/clients/${id}`, undefined, 200);

/** A client's members that decide who can use its power and where (the secret aside). */
const POWER_FIELDS = ['scopes', 'resources', 'grant_types', 'redirect_uris', 'token_endpoint_auth_method', 'jwks', 'jwks_uri', 'service_account_id'] as const;

/**
 * (b): the role a caller may give. A user gives at most their own role; a SAT or client acts
 * as an owner only with organization:write, as an admin otherwise (src/management/routes/users.ts
 * `actsAsOwner`; test/integration/management-authority.test.ts has a users:write token make admins).
 */
const authorityOf = (c: Caller): Role => c.role ?? (c.ceiling.has('organization:write') ? 'owner' : 'admin');

/** (d): refusals are problem+json with a status that names what went wrong. */
function refusalProblem(response: Awaited<ReturnType<typeof api>>): string | undefined {
  if (response.status < 300) return undefined;
  if (![403, 404, 409, 422].includes(response.status)) return `refused with ${response.status}: ${response.text.slice(0, 300)}`;
  if (!response.headers.get('content-type')?.includes('application/problem+json')) return `a ${response.status} that is not problem+json`;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// One call: the request, and what must hold of a success

interface Step {
  method: string;
  path: string;
  body?: Record<string, unknown>;
  /** Reads what the call may change, before it is made. */
  before?(): Promise<void>;
  /** Checks a 2xx answer; returns the violated invariant, or undefined. */
  succeeded?(body: any): Promise<string | undefined>;
}

function stepFor(run: Run, command: Command): Step {
  const { f, caller } = run;
  switch (command.op) {
    case 'issue': {
      const resources = command.resources.map((r) => identifierOf(f, r));
      return {
        method: 'POST',
        path: '/tokens',
        body: {
          type: command.type, name: uniqueName('issued'), scopes: definedBy(command.scopes, command.resources), resources, expires_in: 3600,
          ...(command.type === 'sat' ? { service_account_id: at(run.accounts, command.account).id } : {}),
        },
        async succeeded(body) {
          run.tokens.push({ id: body.id, label: `${command.type.toUpperCase()} issued by the caller` });
          run.labels.set(body.id, `${command.type.toUpperCase()} issued by the caller`);
          return tokenSecretProblem(run, body);
        },
      };
    }
    case 'rotate': {
      const target = at(run.tokens, command.token);
      return {
        method: 'POST',
        path: `/tokens/${target.id}/rotate`,
        body: {},
        async succeeded(body) {
          // The old secret works only through the grace period: the caller goes on with the new one.
          if (target.self) caller.token = body.token;
          return tokenSecretProblem(run, body);
        },
      };
    }
    case 'revoke': {
      // Never the caller's own token: the rest of the run needs it.
      const others = run.tokens.filter((t) => !t.self);
      return { method: 'DELETE', path: `/tokens/${at(others, command.token).id}` };
    }
    case 'create-client': {
      const key = command.auth === 'key';
      return {
        method: 'POST',
        path: '/clients',
        body: {
          name: uniqueName('made'),
          grant_types: [command.grant],
          redirect_uris: command.grant === 'authorization_code' ? [ATTACKER_REDIRECT] : [],
          token_endpoint_auth_method: key ? 'private_key_jwt' : 'client_secret_basic',
          ...(key ? { jwks: f.jwks.attacker } : {}),
          scopes: definedBy(command.scopes, command.resources),
          resources: command.resources.map((r) => identifierOf(f, r)),
          ...(command.account !== null ? { service_account_id: at(run.accounts, command.account).id } : {}),
        },
        async succeeded(body) {
          run.clients.push({ id: body.client_id, label: 'client made by the caller' });
          run.labels.set(body.client_id, 'client made by the caller');
          return exceedsCaller(run, { scopes: body.scopes, resources: body.resources });
        },
      };
    }
    case 'patch-client': {
      const target = at(run.clients, command.client);
      const change = command.change;
      const body: Record<string, unknown> =
        change.field === 'name' ? { name: uniqueName('renamed') }
        : change.field === 'redirect' ? { grant_types: ['authorization_code'], redirect_uris: [ATTACKER_REDIRECT] }
        : change.field === 'machine' ? { grant_types: ['client_credentials'], redirect_uris: [] }
        : change.field === 'auth' ? { token_endpoint_auth_method: change.method }
        : change.field === 'account' ? { service_account_id: change.account === null ? null : at(run.accounts, change.account).id }
        : change.field === 'key' ? { jwks: f.jwks.attacker }
        : { scopes: definedBy(change.scopes, change.resources), resources: change.resources.map((r) => identifierOf(f, r)) };
      let before: any;
      return {
        method: 'PATCH',
        path: `/clients/${target.id}`,
        body,
        async before() {
          before = await readClient(run, target.id);
        },
        async succeeded(after) {
          // A rename leaves the client's power where it was; anything else moves it, and then the
          // client must be one the caller could have made.
          const moved = POWER_FIELDS.filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]));
          if (moved.length === 0) return undefined;
          const problem = exceedsCaller(run, { scopes: after.scopes, resources: after.resources });
          return problem && `${problem} (the caller changed ${moved.join(', ')})`;
        },
      };
    }
    case 'client-secret': {
      const target = at(run.clients, command.client);
      return {
        method: 'POST',
        path: `/clients/${target.id}/secret`,
        body: {},
        async succeeded() {
          const client = await readClient(run, target.id);
          return exceedsCaller(run, { scopes: client.scopes, resources: client.resources });
        },
      };
    }
    case 'delete-client':
      return { method: 'DELETE', path: `/clients/${at(run.clients, command.client).id}` };
    case 'create-user':
      return {
        method: 'POST',
        path: '/users',
        body: { username: uniqueName('made'), role: command.role },
        async succeeded(body) {
          run.users.push({ id: body.id, label: `${body.role} made by the caller` });
          run.labels.set(body.id, `${body.role} made by the caller`);
          return RANK[body.role as Role] > RANK[authorityOf(caller)] ? `it made a user with the role ${body.role}, above the caller's ${authorityOf(caller)} authority` : undefined;
        },
      };
    case 'patch-user': {
      const target = at(run.users, command.user);
      return {
        method: 'PATCH',
        path: `/users/${target.id}`,
        body: { ...(command.role ? { role: command.role } : {}), ...(command.status ? { status: command.status } : {}) },
        async succeeded(body) {
          if (!command.role) return undefined;
          return RANK[body.role as Role] > RANK[authorityOf(caller)] ? `it gave ${target.label} the role ${body.role}, above the caller's ${authorityOf(caller)} authority` : undefined;
        },
      };
    }
    case 'create-account':
      return {
        method: 'POST',
        path: '/service-accounts',
        body: { name: uniqueName('made') },
        async succeeded(body) {
          run.accounts.push({ id: body.id, label: 'account made by the caller' });
          run.labels.set(body.id, 'account made by the caller');
          return undefined;
        },
      };
    case 'patch-account':
      return { method: 'PATCH', path: `/service-accounts/${at(run.accounts, command.account).id}`, body: { status: command.status } };
    case 'rs-credentials':
      return {
        method: 'POST',
        path: `/resource-servers/${at(run.apis, command.api).id}/credentials`,
        body: {},
        // Introspection credentials are made with the API, which needs resource-servers:write.
        async succeeded() {
          return caller.ceiling.has('resource-servers:write') ? undefined : 'it handed out introspection credentials to a caller without resource-servers:write';
        },
      };
  }
}

function describeCaller(caller: Caller): string {
  const who = caller.role ? `${caller.role} user with a PAT` : caller.spec.kind === 'sat' ? 'SAT' : 'client-credentials client';
  return `${who} holding [${caller.spec.scopes.join(' ')}] (effective: [${[...caller.ceiling].join(' ')}])`;
}

/** Performs the commands in order; throws, with the transcript, at the first broken invariant. */
async function play(f: Fixtures, spec: CallerSpec, commands: Command[]): Promise<void> {
  const run = await arrange(f, spec);
  const transcript: string[] = [];
  const named = (text: string) => text.replace(/\b(?:tok|cl|usr|sa|rs)_[\w-]{22}\b/g, (id) => (run.labels.has(id) ? `{${run.labels.get(id)}}` : id));
  for (const command of commands) {
    const step = stepFor(run, command);
    await step.before?.();
    const response = await api(f.server, run.caller.token, step.method, step.path, step.body);
    const body = step.body ? named(JSON.stringify(step.body, (key, value) => (key === 'jwks' ? "<the caller's public key>" : value))) : '';
    transcript.push(`${step.method} ${named(step.path)} ${body} → ${response.status}`);
    const problem = refusalProblem(response) ?? (response.status < 300 ? await step.succeeded?.(response.body) : undefined);
    if (problem) {
      throw new Error([
        `Call ${transcript.length} broke the rule: ${problem}.`,
        `Caller: ${describeCaller(run.caller)}.`,
        'Calls:',
        ...transcript.map((line, i) => `  ${i + 1}. ${line}`),
      ].join('\n'));
    }
  }
}

// ---------------------------------------------------------------------------------------

for (const backend of backends) {
  describe(`escalation property on ${backend.name}`, () => {
    let fixtures: Fixtures;

    beforeAll(async () => {
      const server = await startTestServer(backend.name);
      fixtures = await prepare(server).catch(async (error) => {
        await server.stop();
        throw error;
      });
    }, 150_000);
    afterAll(async () => {
      await fixtures?.server.stop();
    });

    it('hands no caller a credential, client or role beyond its own', async () => {
      let failed = false;
      let shrinkRuns = 0;
      const property = fc.asyncProperty(callerArb, fc.array(commandArb, { minLength: 1, maxLength: MAX_COMMANDS }), async (spec, commands) => {
        // Shrinking stops after a budget: the smallest counterexample found so far is reported.
        if (failed && ++shrinkRuns > SHRINK_RUNS) fc.pre(false);
        try {
          await play(fixtures, spec, commands);
        } catch (error) {
          failed = true;
          throw error;
        }
      });
      const details = await fc.check(property, { seed: SEED, numRuns: RUNS, examples: KNOWN_ESCALATIONS, ...(PATH ? { path: PATH } : {}), includeErrorInReport: true });
      if (details.failed) {
        throw new Error(
          `Reproduce on ${backend.name}: ESCALATION_SEED=${details.seed} ESCALATION_PATH=${details.counterexamplePath} npx vitest run test/e2e/escalation-property.test.ts\n` +
            fc.defaultReportMessage(details),
        );
      }
    }, 300_000);
  });
}
