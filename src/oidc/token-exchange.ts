import { createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';

import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { Clock } from '../clock.js';
import { epochSeconds } from '../clock.js';
import { exchangeDecision } from '../domain/authority.js';
import { TOKEN_EXCHANGE_GRANT } from '../domain/client-policy.js';
import { MANAGEMENT_AUDIENCE } from '../domain/types.js';
import { LINEAGE_CLAIM } from '../tokens/exchange-lineage.js';
import { keyConfirmed } from '../tokens/key-binding.js';
import type { ExchangeSource } from '../tokens/introspection.js';
import { engineGrantHelpers } from './engine-grant-helpers.js';
import { engineSafe } from './unavailable.js';
import type { ClientFacts, ResourceIndicators } from './resource-indicators.js';

/**
 * RFC 8693 token exchange at /token, as a grant of the engine (`registerGrantType`): client
 * authentication, the /token rate limits, the token formats, DPoP and the audit of grants stay
 * where they are for every other grant. The grant itself:
 *
 * - `subject_token` (and `actor_token`) is a PAT, a SAT, or a Tessera access token (JWT or
 *   opaque), of type `urn:ietf:params:oauth:token-type:access_token` (RFC 8693 §3): a PAT or SAT
 *   is a bearer access token too. It is resolved by introspection's own rules
 *   (src/tokens/introspection.ts `exchangeSource`): anything not live, or of another
 *   organization than the client's, is invalid_grant.
 * - The target is one API, named by `resource` (RFC 8707) or `audience` (RFC 8693 §2.1); without
 *   either, the subject token's only API. What may be handed out is the authority module's
 *   decision (src/domain/authority.ts `exchangeDecision`); the client must also be allowed the
 *   target, as for any grant (src/oidc/resource-indicators.ts). The Management API is not a
 *   target: it takes PATs and SATs as they are.
 * - The token lives at most the API's `access_token_ttl`, and never past the subject's (or the
 *   actor's) expiry. It acts for the subject (`sub`), names the client (`client_id`), carries
 *   `act` naming the actor (RFC 8693 §4.1) and its lineage (src/tokens/exchange-lineage.ts), so
 *   that revoking what it came from ends it.
 * - DPoP (RFC 9449) as at every grant: with a proof, the token is bound to its key. A subject
 *   token bound to a key may be exchanged only with a proof of that key: a stolen DPoP token
 *   must not become a bearer token.
 */
export { TOKEN_EXCHANGE_GRANT };
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const PARAMETERS = ['audience', 'resource', 'scope', 'requested_token_type', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'];
/** RFC 8693 §2.1 allows several `resource` and `audience` values; Tessera answers for one (invalid_target otherwise). */
const DUPLICATES = ['audience', 'resource'];

/** The claims an exchanged token carries beside the engine's own, read by extraTokenClaims (src/oidc/provider.ts). */
export const EXCHANGE_CLAIMS = Symbol('tessera.exchangeClaims');

/** What the audit event of an exchange records (src/oidc/provider-events.ts), as the `TokenExchange` entity. */
export interface ExchangeRecord {
  subject: { kind: ExchangeSource['kind']; id: string; sub: string };
  actor?: { kind: ExchangeSource['kind']; id: string; sub: string };
  audience: string;
  scope: string;
  expiresIn: number;
}

export interface TokenExchangeDependencies {
  /** Resolves a presented token the way introspection does (src/tokens/introspection.ts). */
  sources: { exchangeSource(token: string): Promise<ExchangeSource | undefined> };
  resourceIndicators: Pick<ResourceIndicators, 'getResourceServerInfo'>;
  clock: Clock;
  /** Counts a use of a PAT or SAT at an API, as introspection does. */
  recordUse?: (tokenId: string, audience: string) => void;
  /**
   * The client certificate of the request, when certificate-bound tokens are on (src/oidc/mtls.ts):
   * a certificate-bound subject is exchanged only by the holder of its certificate.
   */
  certificate?: (ctx: KoaContextWithOIDC) => X509Certificate | undefined;
}

const list = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : typeof value === 'string' && value !== '' ? [value] : []);

/** RFC 8693 §4.1: the new actor outermost, the actors before it nested inside. */
function actClaim(actor: ExchangeSource | undefined, subject: ExchangeSource): unknown {
  if (!actor) return subject.act;
  return { sub: actor.sub, ...(subject.act !== undefined ? { act: subject.act } : {}) };
}

export function createTokenExchange(deps: TokenExchangeDependencies) {
  const { sources, resourceIndicators, clock } = deps;

  async function source(value: string, organizationId: string | undefined, name: string): Promise<ExchangeSource> {
    const found = await engineSafe(() => sources.exchangeSource(value));
    // Another organization's token is indistinguishable from an unknown one (docs/design.md, "Least privilege per tenant").
    if (!found || found.organizationId !== organizationId) throw new errors.InvalidGrant(`${name} is invalid, expired or revoked`);
    return found;
  }

  async function handle(provider: Provider, ctx: KoaContextWithOIDC): Promise<void> {
    const helpers = engineGrantHelpers(provider);
    const params = ctx.oidc.params as Record<string, unknown>;
    const client = ctx.oidc.client!;
    const facts = client as unknown as ClientFacts;
    const str = (name: string) => (typeof params[name] === 'string' && params[name] !== '' ? (params[name] as string) : undefined);

    const subjectToken = str('subject_token');
    if (!subjectToken) throw new errors.InvalidRequest("missing required parameter 'subject_token'");
    if (!str('subject_token_type')) throw new errors.InvalidRequest("missing required parameter 'subject_token_type'");
    if (str('subject_token_type') !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`unsupported subject_token_type; use ${ACCESS_TOKEN_TYPE}`);
    const requested = str('requested_token_type');
    if (requested !== undefined && requested !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`unsupported requested_token_type; only ${ACCESS_TOKEN_TYPE} is issued`);
    const actorToken = str('actor_token');
    // RFC 8693 §2.1: actor_token_type is required with actor_token, and must not be sent without it.
    if (actorToken !== undefined && str('actor_token_type') === undefined) throw new errors.InvalidRequest("missing required parameter 'actor_token_type'");
    if (actorToken === undefined && str('actor_token_type') !== undefined) throw new errors.InvalidRequest('actor_token_type without actor_token');
    if (actorToken !== undefined && str('actor_token_type') !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`unsupported actor_token_type; use ${ACCESS_TOKEN_TYPE}`);
    const targets = [...new Set([...list(params.resource), ...list(params.audience)])];
    if (targets.length > 1) throw new errors.InvalidTarget('a token exchange names one resource (or audience)');

    const proof = await helpers.validateDpop(ctx);
    const organizationId = facts.tessera_organization_id;
    const subject = await source(subjectToken, organizationId, 'subject_token');
    const actor = actorToken === undefined ? undefined : await source(actorToken, organizationId, 'actor_token');
    // A sender-constrained subject is exchanged only by the holder of its key (RFC 9449 §1: a
    // stolen DPoP token is useless): a DPoP-bound access token, and a key-bound PAT or SAT, by the
    // rule introspection applies (src/tokens/key-binding.ts).
    if (!keyConfirmed(subject.jkt, proof?.thumbprint)) throw new errors.InvalidGrant('subject_token is bound to a DPoP key: prove possession of it');
    if (actor !== undefined && !keyConfirmed(actor.jkt, proof?.thumbprint)) throw new errors.InvalidGrant('actor_token is bound to a DPoP key: prove possession of it');
    // Likewise a certificate-bound one (RFC 8705 §3): only with its certificate, and the result is bound to it, unless a DPoP proof binds it.
    const certificate = subject.x5t !== undefined || actor?.x5t !== undefined ? deps.certificate?.(ctx) : undefined;
    const presentedX5t = certificate ? createHash('sha256').update(certificate.raw).digest('base64url') : undefined;
    if (!keyConfirmed(subject.x5t, presentedX5t)) throw new errors.InvalidGrant('subject_token is bound to a certificate: present it');
    if (actor !== undefined && !keyConfirmed(actor.x5t, presentedX5t)) throw new errors.InvalidGrant('actor_token is bound to a certificate: present it');

    const target = targets[0] ?? (subject.audiences.length === 1 ? subject.audiences[0] : undefined);
    if (target === undefined) throw new errors.InvalidTarget('name the resource the token is for');
    if (target === MANAGEMENT_AUDIENCE) throw new errors.InvalidTarget('the Management API takes PATs and SATs as they are; it is not a token exchange target');
    // The client's allowance at the target (invalid_target for another organization's or an unknown API, or one it may not ask for).
    const info = await resourceIndicators.getResourceServerInfo(target, facts, undefined, { dpop: proof !== undefined });
    const requestedScopes = str('scope')?.split(' ').filter(Boolean);
    const decision = exchangeDecision(
      { clientId: client.clientId, organizationId: organizationId ?? '', scopesAtTarget: (info.scope ?? '').split(' ').filter(Boolean) },
      subject,
      target,
      requestedScopes,
    );
    if (!decision.ok) throw decision.error === 'invalid_target' ? new errors.InvalidTarget(decision.detail) : new errors.InvalidScope(decision.detail, str('scope') ?? '');

    const now = epochSeconds(clock);
    const expiresIn = Math.min(info.accessTokenTTL ?? Number.POSITIVE_INFINITY, subject.exp - now, actor ? actor.exp - now : Number.POSITIVE_INFINITY);
    if (!(expiresIn >= 1)) throw new errors.InvalidGrant('subject_token is about to expire');

    await helpers.checkDpopReplay(ctx, proof);
    helpers.checkDpopRequired(ctx, proof);

    // No grant: the token lives by its lineage, not by a grant of the engine's.
    const token = new provider.AccessToken({ accountId: subject.sub, client, gty: 'token_exchange', scope: decision.scopes.join(' '), expiresIn } as unknown as ConstructorParameters<Provider['AccessToken']>[0]);
    token.resourceServer = new provider.ResourceServer(target, info);
    if (proof) token.setThumbprint('jkt', proof.thumbprint);
    else if (certificate) token.setThumbprint('x5t', certificate);
    const act = actClaim(actor, subject);
    (token as unknown as Record<symbol, unknown>)[EXCHANGE_CLAIMS] = {
      ...(act !== undefined ? { act } : {}),
      [LINEAGE_CLAIM]: [...subject.lineage, ...(actor?.lineage ?? [])],
    };
    ctx.oidc.entity('AccessToken', token);
    const record: ExchangeRecord = {
      subject: { kind: subject.kind, id: subject.id, sub: subject.sub },
      ...(actor ? { actor: { kind: actor.kind, id: actor.id, sub: actor.sub } } : {}),
      audience: target,
      scope: decision.scopes.join(' '),
      expiresIn,
    };
    ctx.oidc.entity('TokenExchange', record);
    const value = await token.save();
    for (const used of actor ? [subject, actor] : [subject]) if (used.kind !== 'access_token') deps.recordUse?.(used.id, target);

    // RFC 8693 §2.2.1.
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: token.tokenType,
      expires_in: token.expiration,
      scope: token.scope,
    };
  }

  return {
    /** Registers the grant on an engine instance (each one the signing keys build). */
    register(provider: Provider): void {
      provider.registerGrantType(TOKEN_EXCHANGE_GRANT, (ctx) => handle(provider, ctx), PARAMETERS, DUPLICATES);
    },
  };
}
export type TokenExchange = ReturnType<typeof createTokenExchange>;
