import type { Principal } from './principal.js';
import type { ResourceServer, Role } from './types.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES, PLATFORM_SCOPE, ROLE_SCOPES } from './types.js';

/**
 * The one place that decides "may this principal do this to that credential or principal".
 * Every Management API route, the token service and the token inventory ask here; none decides
 * on its own. The rule behind every answer (docs/security.md, "Who may do what", has the table):
 *
 *   An operation that returns a secret, or changes where a credential's power can be used, is
 *   allowed only if the caller could create that credential, with those scopes and resources,
 *   right now. Nothing a caller does hands out more than the caller holds.
 *
 * The functions are pure: callers load what they need (the credential, the resource servers it
 * names) and act on the answer. A refusal names the authority that is missing, so the 403 and
 * its audit event say what the caller would need.
 */

/** Why an operation is refused: the authority the caller lacks, and a sentence for people. */
export interface Denial {
  /** A Management API scope (`organization:write`), or a role or relation (`role:admin`, `token-owner`). */
  missing: string;
  detail: string;
}

/** What decides who may hand a scope out: whether it is a Management API scope, and whether its API is sensitive. */
export interface ScopeFacts {
  management: boolean;
  sensitive: boolean;
}

export type CredentialKind = 'pat' | 'sat' | 'client';

/** Roles that administer an organization's credentials (docs/design.md, "The domain": owner and admin). */
const ADMINISTERING_ROLES: ReadonlySet<Role> = new Set(['owner', 'admin']);
const MANAGEMENT_SCOPE_SET: ReadonlySet<string> = new Set([...ORGANIZATION_SCOPES, PLATFORM_SCOPE]);

/**
 * Whether a principal administers the organization's credentials (sees and manages every token,
 * issues SATs, grants scopes of sensitive APIs): users with the admin or owner role; service
 * accounts and clients holding `service-accounts:write`, the scope that creates the identities
 * SATs act for.
 */
export function administersCredentials(p: Principal): boolean {
  return p.actor.type === 'user' ? p.role !== undefined && ADMINISTERING_ROLES.has(p.role) : p.scopes.has('service-accounts:write');
}

/**
 * Whether a principal sees a credential owned by `owner` (it lists it, reads it, revokes it, finds
 * it in the inventory): administrators see every credential of their organization; anyone else
 * only their own. The organization itself is checked by the caller's query (another
 * organization's credential is never loaded, so it answers 404).
 */
export function seesCredentialOf(p: Principal, owner: { type: string; id: string | null }): boolean {
  return administersCredentials(p) || (p.actor.type === 'user' && owner.type === 'user' && owner.id === p.actor.id);
}

/**
 * The Management API scopes `p` may put into a credential of `kind`. A PAT acts for its user, so
 * it is also bounded by the user's role; every credential is bounded by the calling token's own
 * effective scopes (a narrow token never mints a broader one). `organizations:admin` is in the
 * ceiling only of a caller that holds it.
 */
function managementCeiling(p: Principal, kind: CredentialKind): (scope: string) => boolean {
  const role = kind === 'pat' ? new Set(ROLE_SCOPES[p.role ?? 'member']) : undefined;
  return (scope) => p.scopes.has(scope) && (!role || role.has(scope));
}

export function isManagementScope(scope: string): boolean {
  return MANAGEMENT_SCOPE_SET.has(scope);
}

/**
 * Why `p` may not hold out a credential of `kind` carrying `scopes` (empty: it may). Management
 * API scopes must be within the caller's ceiling; scopes of sensitive APIs need an administrator.
 * Scopes with no facts (not defined by any listed API) are the validity rules' business, not
 * authority's.
 */
export function grantDenials(p: Principal, kind: CredentialKind, scopes: Iterable<string>, facts: ReadonlyMap<string, ScopeFacts>): Denial[] {
  const within = managementCeiling(p, kind);
  const denials: Denial[] = [];
  for (const scope of scopes) {
    const f = facts.get(scope);
    if ((f?.management || isManagementScope(scope)) && !within(scope)) {
      denials.push({ missing: scope, detail: `the Management API scope "${scope}" exceeds what the caller holds` });
    } else if (f?.sensitive && !administersCredentials(p)) {
      denials.push({ missing: 'role:admin', detail: `"${scope}" belongs to a sensitive API: only an admin or owner may grant it` });
    }
  }
  return denials;
}

/**
 * The facts of every scope the listed resources define. The Management API defines the
 * organization scopes; an API of another organization (or none) defines nothing and is reported
 * in `unknown` (it is indistinguishable from one that does not exist).
 */
export async function scopeFactsOf(
  organizationId: string,
  resources: readonly string[],
  findResourceServer: (identifier: string) => Promise<ResourceServer | undefined>,
): Promise<{ facts: Map<string, ScopeFacts>; unknown: number[] }> {
  const facts = new Map<string, ScopeFacts>();
  const unknown: number[] = [];
  for (const [i, resource] of resources.entries()) {
    if (resource === MANAGEMENT_AUDIENCE) {
      for (const s of ORGANIZATION_SCOPES) facts.set(s, { management: true, sensitive: facts.get(s)?.sensitive === true });
      continue;
    }
    const rs = await findResourceServer(resource);
    if (!rs || rs.organization_id !== organizationId) {
      unknown.push(i);
      continue;
    }
    for (const s of rs.scopes) {
      const prior = facts.get(s.name);
      facts.set(s.name, { management: prior?.management === true, sensitive: rs.sensitive || prior?.sensitive === true });
    }
  }
  return { facts, unknown };
}

/** The token whose rotation is asked for: who owns it and what it carries. */
export interface RotatedToken {
  type: 'pat' | 'sat';
  user_id: string | null;
  scopes: readonly string[];
}

/**
 * Rotation returns a new secret with the token's whole power. A PAT is rotated by its own user
 * only (nobody else may hold a secret that acts as that person); a SAT by an administrator. Either
 * way the caller must be able to issue that token, with its scopes, right now.
 */
export function rotationDenials(p: Principal, token: RotatedToken, facts: ReadonlyMap<string, ScopeFacts>): Denial[] {
  if (token.type === 'pat' && !(p.actor.type === 'user' && p.actor.id === token.user_id)) {
    return [{ missing: 'token-owner', detail: 'a personal access token is rotated by its own user only' }];
  }
  if (token.type === 'sat' && !administersCredentials(p)) {
    return [{ missing: 'role:admin', detail: 'only an admin or owner (or a token holding service-accounts:write) may rotate a service access token' }];
  }
  return grantDenials(p, token.type, token.scopes, facts);
}

/**
 * Identifying a raw credential string (`POST /tokens/identify`): the answer names the owner, reach
 * and use of any credential of the organization, whoever holds it, so only an administrator may
 * ask; ending it in the same call is a revocation, which needs `tokens:write` as well.
 */
export function identifyDenials(p: Principal, revoke: boolean): Denial[] {
  const denials: Denial[] = [];
  if (!administersCredentials(p)) denials.push({ missing: 'role:admin', detail: 'only an admin or owner (or a token holding service-accounts:write) may identify a credential string' });
  if (revoke && !p.scopes.has('tokens:write')) denials.push({ missing: 'tokens:write', detail: 'ending the credential in the same call needs "tokens:write"' });
  return denials;
}

/**
 * Giving a user a role, or acting on a user who holds one (setting their password, changing or
 * deleting them), needs every Management API scope of that role: a user of that role can sign in
 * and hold them. An owner is managed only by a caller holding all organization scopes.
 */
export function roleDenials(p: Principal, role: Role): Denial[] {
  return ROLE_SCOPES[role]
    .filter((scope) => !p.scopes.has(scope))
    .map((scope) => ({ missing: scope, detail: `acting on a user with the ${role} role needs "${scope}", which the caller does not hold` }));
}

/**
 * A client change that leaves its power where it was or narrows it (a new name, fewer scopes or
 * resources) is allowed to anyone with `clients:write`; anything else (redirect URIs, grant types,
 * authentication method, keys, owning service account, added scopes or resources) decides where
 * the client's power can be used and is checked as if the caller created the client anew.
 */
export function clientChangeKeepsPower(
  before: { scopes: readonly string[]; resources: readonly string[]; other: Record<string, unknown> },
  after: { scopes: readonly string[]; resources: readonly string[]; other: Record<string, unknown> },
): boolean {
  const subset = (a: readonly string[], b: readonly string[]) => a.every((x) => b.includes(x));
  if (!subset(after.scopes, before.scopes) || !subset(after.resources, before.resources)) return false;
  const keys = new Set([...Object.keys(before.other), ...Object.keys(after.other)]);
  for (const key of keys) if (JSON.stringify(before.other[key] ?? null) !== JSON.stringify(after.other[key] ?? null)) return false;
  return true;
}

/**
 * Re-enabling a disabled service account gives its SATs and clients their power back: the caller
 * must be able to issue that power now (`held`: every scope its live SATs and clients carry), and
 * only a platform administrator re-enables a platform service account.
 */
export function reenableDenials(p: Principal, account: { platform_admin: boolean }, held: Iterable<string>): Denial[] {
  if (!administersCredentials(p)) return [{ missing: 'role:admin', detail: 'only an admin or owner (or a token holding service-accounts:write) may re-enable a service account' }];
  const denials = grantDenials(p, 'sat', held, new Map());
  if (account.platform_admin && !p.scopes.has(PLATFORM_SCOPE)) denials.push({ missing: PLATFORM_SCOPE, detail: `re-enabling a platform service account needs "${PLATFORM_SCOPE}"` });
  return denials;
}

/** A resource server asking about a token: its introspection client, organization and identifiers. */
export interface ResourceServerCaller {
  clientId: string;
  organizationId: string;
  audiences: readonly string[];
}

/**
 * Least privilege per tenant (RFC 7662 §2.2): a resource server learns about a token only if the
 * token is meant for it, in its own organization. Returns the audience through which the caller
 * sees the token (usage is counted per audience), or undefined: to this caller the token is
 * inactive.
 */
export function audienceSeenBy(caller: ResourceServerCaller, token: { organizationId: unknown; audiences: readonly string[] }): string | undefined {
  if (token.organizationId !== caller.organizationId) return undefined;
  return token.audiences.find((a) => caller.audiences.includes(a));
}

/**
 * RFC 7009 §2.1: who may revoke an access token. The client it was issued to (the normal use of
 * revocation: a client discarding its own token) and the resource server it is meant for, both
 * of the token's organization. PATs and SATs have no client, so only the second applies to them.
 * Anyone else is answered 200 and nothing happens (§2.2).
 */
export function mayRevoke(caller: ResourceServerCaller, token: { clientId: unknown; organizationId: unknown; audiences: readonly string[] }): boolean {
  if (token.organizationId !== caller.organizationId) return false;
  return (typeof token.clientId === 'string' && token.clientId === caller.clientId) || audienceSeenBy(caller, token) !== undefined;
}

/** What a token exchange starts from (RFC 8693 §2.1 `subject_token`), as Tessera resolved it. */
export interface ExchangeSubject {
  organizationId: string;
  audiences: readonly string[];
  scopes: readonly string[];
}

/** The exchanging client: its organization, and the scopes it may ask for at the target (the target's scopes it is allowed). */
export interface ExchangeCaller {
  clientId: string;
  organizationId: string;
  /** Scopes the client is allowed at the target API, among those the API defines. */
  scopesAtTarget: readonly string[];
}

export type ExchangeDecision = { ok: true; scopes: string[] } | { ok: false; error: 'invalid_target' | 'invalid_scope'; detail: string };

/**
 * RFC 8693 token exchange under the rule of this module: the token handed out is never stronger
 * than the token presented. It is for one API the subject token is already meant for, in the
 * caller's own organization (the same test as introspection's, `audienceSeenBy`: an exchange is
 * how a client narrows a token it could have shown that API), and its scopes are a subset of the
 * subject token's that the client is also allowed at that API. Asking for more is invalid_scope
 * (RFC 6749 §5.2); another API is invalid_target (RFC 8693 §2.2.2). Without `requested`, the
 * answer is every scope the subject and the client share at the target.
 */
export function exchangeDecision(caller: ExchangeCaller, subject: ExchangeSubject, target: string, requested: readonly string[] | undefined): ExchangeDecision {
  const seen = audienceSeenBy({ clientId: caller.clientId, organizationId: caller.organizationId, audiences: [target] }, { organizationId: subject.organizationId, audiences: subject.audiences });
  if (seen === undefined) return { ok: false, error: 'invalid_target', detail: 'the subject token is not meant for this resource' };
  const held = new Set(subject.scopes);
  const allowed = new Set(caller.scopesAtTarget);
  if (requested === undefined) {
    const scopes = caller.scopesAtTarget.filter((s) => held.has(s));
    return scopes.length > 0 ? { ok: true, scopes } : { ok: false, error: 'invalid_scope', detail: 'the subject token and the client share no scope at this resource' };
  }
  const beyond = requested.find((s) => !held.has(s));
  if (beyond !== undefined) return { ok: false, error: 'invalid_scope', detail: `"${beyond}" exceeds the subject token's scopes` };
  const refused = requested.find((s) => !allowed.has(s));
  if (refused !== undefined) return { ok: false, error: 'invalid_scope', detail: `"${refused}" is not a scope this client may get at this resource` };
  if (requested.length === 0) return { ok: false, error: 'invalid_scope', detail: 'no scope requested' };
  return { ok: true, scopes: [...new Set(requested)] };
}
