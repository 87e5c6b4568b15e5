import { timingSafeEqual } from 'node:crypto';

import type { AuditLog } from '../audit/audit-event.js';
import type { InventoryItem, TokenInventory } from '../audit/token-inventory.js';
import type { Clock } from '../clock.js';
import { identifyDenials } from '../domain/authority.js';
import { secretContext } from '../domain/client-metadata.js';
import { rotateClientSecret } from '../domain/client-secrets.js';
import type { Principal } from '../domain/principal.js';
import type { ClientRecord, OrganizationPolicy } from '../domain/types.js';
import { authorityRefused, ProblemError } from '../http/middleware.js';
import type { Envelope } from '../keys/envelope.js';
import type { AuditRepository } from '../storage/audit-repository.js';
import type { ClientRepository } from '../storage/client-repository.js';
import type { ReferenceTokenRepository } from '../storage/reference-token-repository.js';
import { hashToken, looksLikeReferenceToken, MAX_TOKEN_LENGTH, parseToken } from './format.js';
import type { RequestFacts, TokenService } from './token-service.js';

/**
 * "Whose is this?" for a raw credential string an administrator found (in a log, a ticket, a
 * paste): a PAT, SAT or rotation key by its SHA-256 (refused by shape and checksum first, with no
 * lookup), or a client secret of the organization by comparing it with each stored one. The
 * answer gives what the inventory knows (owner, reach, last use, risk score) and the addresses
 * the audit trail recorded for it; with `revoke` the credential ends in the same call. Who may
 * ask is the authority module's rule (`identifyDenials`); anything of another organization, or
 * nothing at all, is the same 404.
 */
export type IdentifiedKind = 'pat' | 'sat' | 'rotation_key' | 'client_secret';

export interface Identified {
  kind: IdentifiedKind;
  /** The token's id (`tok_…`), or the client's id for a client secret. */
  id: string;
  /** Which of the credential's secrets the string is. */
  matched: 'current_secret' | 'previous_secret' | 'rotation_key';
  name: string | null;
  owner: InventoryItem['owner'] | null;
  scopes: string[];
  resources: string[];
  state: 'active' | 'revoked' | 'expired';
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  use_count: number | null;
  addresses: { ip: string; last_seen: string }[];
  risk_score: number | null;
  risk_reasons: InventoryItem['risk_reasons'];
  /** This call ended it. */
  revoked: boolean;
}

export interface CredentialIdentificationDependencies {
  tokens: ReferenceTokenRepository;
  tokenService: Pick<TokenService, 'revoke' | 'policyOf'>;
  clients: ClientRepository;
  envelope: Envelope;
  inventory: TokenInventory;
  auditTrail: Pick<AuditRepository, 'addressesOf'>;
  audit: AuditLog;
  clock: Clock;
  /** A client whose secret changed is dropped from every node's cache. */
  clientsChanged(clientIds: string[]): Promise<void>;
}

const ADDRESSES = 5;
const notFound = () => new ProblemError(404, 'Not Found', 'no credential of this organization matches the string');

/** Constant-time equality of two strings of any length (their digests are compared). */
const sameSecret = (a: string, b: string) => timingSafeEqual(hashToken(a), hashToken(b));

export function createCredentialIdentification(deps: CredentialIdentificationDependencies) {
  const { clock } = deps;
  const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

  async function riskOf(organizationId: string, id: string) {
    const policy: OrganizationPolicy = await deps.tokenService.policyOf(organizationId);
    const items = await deps.inventory.list(organizationId, policy);
    return items.find((i) => i.id === id);
  }

  /** Where it was used from (a token's telemetry), then what the audit trail recorded for it; most recent first. */
  async function addressesOf(organizationId: string, id: string, seen: { ip: string; last_seen: Date }[] = []) {
    const byIp = new Map<string, number>();
    for (const a of [...seen, ...(await deps.auditTrail.addressesOf(organizationId, id, ADDRESSES))]) {
      const at = new Date(a.last_seen).getTime();
      byIp.set(a.ip, Math.max(byIp.get(a.ip) ?? 0, at));
    }
    return [...byIp].sort((a, b) => b[1] - a[1]).slice(0, ADDRESSES).map(([ip, at]) => ({ ip, last_seen: new Date(at).toISOString() }));
  }

  async function referenceToken(p: Principal, candidate: string, revoke: boolean, reason: string, facts: RequestFacts): Promise<Identified> {
    if (candidate.length > MAX_TOKEN_LENGTH || !parseToken(candidate)) throw notFound();
    const hash = hashToken(candidate);
    const [row] = await deps.tokens.findByAnyHash([hash]);
    if (!row || row.organization_id !== p.organizationId) throw notFound();
    const matched = row.rotation_key_hash?.equals(hash) ? 'rotation_key' : row.secret_hash.equals(hash) ? 'current_secret' : 'previous_secret';
    // The risk it carried, as the inventory scores live credentials: read before it may end.
    const item = await riskOf(row.organization_id, row.id);
    let revokedNow = false;
    if (revoke && !row.revoked_at) {
      await deps.tokenService.revoke(p, row.id, reason, facts);
      revokedNow = true;
    }
    const current = (await deps.tokens.findWithOwnerById(row.id)) ?? { ...row, owner_name: null, owner_status: 'deleted' };
    const state = current.revoked_at ? 'revoked' : current.expires_at.getTime() <= clock.now() ? 'expired' : 'active';
    return {
      kind: matched === 'rotation_key' ? 'rotation_key' : row.type,
      id: row.id,
      matched,
      name: row.name,
      owner: { type: row.type === 'pat' ? 'user' : 'service_account', id: (row.user_id ?? row.service_account_id)!, name: current.owner_name, status: current.owner_status },
      scopes: row.scopes,
      resources: row.resources,
      state,
      created_at: row.created_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      last_used_at: iso(current.last_used_at),
      use_count: Number(current.use_count),
      addresses: await addressesOf(row.organization_id, row.id, await deps.tokens.sightings(row.id)),
      risk_score: item?.risk_score ?? null,
      risk_reasons: item?.risk_reasons ?? [],
      revoked: revokedNow,
    };
  }

  /** The client whose current secret, or previous one still in its grace period, is `candidate`. */
  async function clientHolding(organizationId: string, candidate: string): Promise<{ record: ClientRecord; matched: 'current_secret' | 'previous_secret' } | undefined> {
    for (const record of await deps.clients.withSecrets(organizationId)) {
      if (sameSecret(deps.envelope.open(record.secret_enc!, secretContext(record.client_id)), candidate)) return { record, matched: 'current_secret' };
      const graceLive = record.previous_secret_enc && record.previous_secret_expires_at && record.previous_secret_expires_at.getTime() > clock.now();
      if (graceLive && sameSecret(deps.envelope.open(record.previous_secret_enc!, secretContext(record.client_id, 'previous')), candidate)) return { record, matched: 'previous_secret' };
    }
    return undefined;
  }

  async function clientSecret(p: Principal, candidate: string, revoke: boolean, reason: string, facts: RequestFacts): Promise<Identified> {
    const found = await clientHolding(p.organizationId, candidate);
    if (!found) throw notFound();
    const { record, matched } = found;
    const item = await riskOf(record.organization_id, record.client_id);
    if (revoke) {
      // A client secret has no revoked state: it is replaced by one nobody is shown, and the
      // previous one ends at once. The client stops until an administrator rotates it again.
      await rotateClientSecret({ clients: deps.clients, envelope: deps.envelope, clock }, record, 0);
      await deps.clientsChanged([record.client_id]);
      deps.audit.record({
        organizationId: record.organization_id,
        actor: { type: p.actor.type, id: p.actor.id, name: p.actor.name },
        action: 'client.secret_revoked',
        target: { type: 'client', id: record.client_id },
        outcome: 'success',
        ...facts,
        details: { reason, matched },
      });
    }
    return {
      kind: 'client_secret',
      id: record.client_id,
      matched,
      name: record.name,
      owner: item?.owner ?? null,
      scopes: record.allowed_scopes,
      resources: record.allowed_resources,
      state: revoke ? 'revoked' : 'active',
      created_at: (record.secret_rotated_at ?? record.created_at).toISOString(),
      expires_at: iso(matched === 'previous_secret' ? record.previous_secret_expires_at : null),
      last_used_at: item?.last_used_at ?? null,
      use_count: item?.use_count ?? null,
      addresses: await addressesOf(record.organization_id, record.client_id),
      risk_score: item?.risk_score ?? null,
      risk_reasons: item?.risk_reasons ?? [],
      revoked: revoke,
    };
  }

  return {
    async identify(p: Principal, input: { token: string; revoke?: boolean; reason?: string }, facts: RequestFacts): Promise<Identified> {
      const revoke = input.revoke === true;
      const denials = identifyDenials(p, revoke);
      if (denials.length > 0) throw authorityRefused(denials);
      const reason = input.reason ?? 'leaked';
      const identified = looksLikeReferenceToken(input.token)
        ? await referenceToken(p, input.token, revoke, reason, facts)
        : await clientSecret(p, input.token, revoke, reason, facts);
      deps.audit.record({
        organizationId: p.organizationId,
        actor: { type: p.actor.type, id: p.actor.id, name: p.actor.name },
        action: 'credential.identified',
        target: { type: identified.kind === 'client_secret' ? 'client' : 'reference_token', id: identified.id },
        outcome: 'success',
        ...facts,
        details: { kind: identified.kind, matched: identified.matched, revoked: identified.revoked },
      });
      return identified;
    },
  };
}
export type CredentialIdentification = ReturnType<typeof createCredentialIdentification>;
