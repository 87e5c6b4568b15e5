import { audienceSeenBy, mayRevoke } from '../domain/authority.js';
import { addressRefused } from '../domain/token-constraints.js';
import type { ResourceServerCaller } from '../domain/authority.js';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JSONWebKeySet, JWTPayload } from 'jose';

import type { Clock } from '../clock.js';
import { epochSeconds } from '../clock.js';
import { BoundedCache } from './bounded-cache.js';
import { looksLikeReferenceToken, tokenKey } from './format.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { PrincipalLiveness } from './principal-liveness.js';
import type { ReferenceTokenLookup, TokenFacts } from './reference-token-lookup.js';
import type { RevocationList } from './revocation-list.js';
import type { Sightings } from './sightings.js';
import type { UsageRecorder } from './usage-recorder.js';
import { lineageOf, LINEAGE_CLAIM, opaqueLineageId } from './exchange-lineage.js';
import type { LineageEntry } from './exchange-lineage.js';
import { generationLive } from './reference-token-cache.js';
import { keyConfirmed } from './key-binding.js';

/**
 * RFC 7662 introspection of every token kind Tessera issues, from one place:
 * - reference tokens (PAT/SAT): prefix and checksum first, then the stored SHA-256;
 * - JWT access tokens (RFC 9068): signature, issuer, expiry, then the revocation list;
 * - opaque access tokens: as oidc-provider's models find them (src/oidc/engine-tokens.ts), with
 *   the engine's grant binding.
 * A caller sees `active: true` only for a token whose audience includes an API it is the
 * introspection client of, in its own organization (docs/design.md, "Least privilege per tenant"; RFC 7662 §2.2 lets the server
 * answer `{"active":false}` for anything the caller is not entitled to see, and reveal nothing).
 */
/** The authenticated caller of introspection or revocation: a resource server's introspection client. */
export type IntrospectionCaller = ResourceServerCaller;

export type IntrospectionAnswer = Record<string, unknown> & { active: boolean };

export const INACTIVE: IntrospectionAnswer = Object.freeze({ active: false }) as IntrospectionAnswer;

export type TokenShape = 'reference' | 'jwt' | 'opaque';

/** Tells token kinds apart without any lookup. */
export function tokenShape(token: string): TokenShape {
  if (looksLikeReferenceToken(token)) return 'reference';
  if (token.split('.').length === 3) {
    try {
      decodeProtectedHeader(token);
      return 'jwt';
    } catch {
      return 'opaque';
    }
  }
  return 'opaque';
}

/** What a revocation acts on, once `mayRevoke` allowed it. */
export type RevocationTarget =
  | { kind: 'reference'; tokenId: string }
  | { kind: 'jwt'; jti: string; organizationId: string | null; exp: number }
  | { kind: 'opaque'; lineageId: string; organizationId: string | null; exp: number };

/**
 * A token presented for RFC 8693 exchange (as `subject_token` or `actor_token`), resolved by the
 * rules introspection applies to it, without the audience restriction (the exchanging client is
 * not the API the token is for; src/domain/authority.ts `exchangeDecision` decides what it may get).
 */
export interface ExchangeSource {
  kind: 'pat' | 'sat' | 'access_token';
  /** A PAT's or SAT's token id; an access token's revocation id (a JWT's `jti`, an opaque token's digest, src/tokens/exchange-lineage.ts). */
  id: string;
  organizationId: string;
  /** Whom the token acts for: the user, the service account, or a client-credentials token's client. */
  sub: string;
  scopes: string[];
  audiences: string[];
  /** Epoch seconds. */
  exp: number;
  /** What a token exchanged from this one carries (src/tokens/exchange-lineage.ts). */
  lineage: LineageEntry[];
  /** RFC 8693 §4.1: the actor chain this token already carries. */
  act?: unknown;
  /** RFC 9449 §6.1: the key thumbprint a DPoP-bound token is bound to. */
  jkt?: string;
  /** RFC 8705 §3.1: the certificate thumbprint a certificate-bound token is bound to. */
  x5t?: string;
}

const audiencesOf = (aud: unknown): string[] => (Array.isArray(aud) ? aud.map(String) : typeof aud === 'string' ? [aud] : []);
/**
 * RFC 9449 §6.2 / RFC 8705 §3.2: how a token is bound to its sender, as every introspection
 * answer states it (JWT and opaque, fast path and Koa path alike): `token_type` DPoP and `cnf`
 * for a DPoP-bound token, `cnf` alone for a certificate-bound one, Bearer otherwise. A resource
 * server then knows to demand the proof; the Management API refuses such a token outright
 * (src/management/auth.ts).
 */
export function senderConstraint(cnf: unknown): { token_type: 'DPoP' | 'Bearer'; cnf?: Record<string, string> } {
  if (typeof cnf !== 'object' || cnf === null) return { token_type: 'Bearer' };
  const members = Object.fromEntries(Object.entries(cnf).filter(([name, value]) => (name === 'jkt' || name === 'x5t#S256') && typeof value === 'string')) as Record<string, string>;
  if (Object.keys(members).length === 0) return { token_type: 'Bearer' };
  return { token_type: members.jkt !== undefined ? 'DPoP' : 'Bearer', cnf: members };
}

const scopesOf = (scope: unknown): string[] => (typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);

/**
 * An opaque access token as the engine's model holds it: the fields the engine's introspection
 * answers from (node_modules/oidc-provider/lib/actions/introspection.js).
 */
export interface OpaqueAccessToken {
  kind: 'AccessToken' | 'ClientCredentials';
  clientId: string;
  accountId?: string;
  grantId?: string;
  aud?: string | string[];
  scope?: string;
  /** Epoch seconds. */
  exp: number;
  iat: number;
  sid?: string;
  /** extraTokenClaims (src/oidc/provider.ts): `org_id`. */
  extra: Record<string, unknown>;
  /** RFC 7800 confirmation of a sender-constrained token (`jkt`, `x5t#S256`). */
  cnf?: Record<string, string>;
}

/** The grant a token was issued under, as the engine's Grant model has it. */
export interface EngineGrant {
  clientId?: string;
  accountId?: string;
  exp?: number;
}

/** The engine's opaque access tokens, asked through its models (src/oidc/engine-tokens.ts). */
export interface OpaqueTokenSource {
  /** The token, whether or not it has expired (expiry is judged on Tessera's clock), or undefined when the engine holds no such token. */
  find(token: string): Promise<OpaqueAccessToken | undefined>;
  grant(grantId: string): Promise<EngineGrant | undefined>;
  /** Revokes the token through its model. */
  destroy(token: string): Promise<void>;
}

export interface IntrospectionDependencies {
  issuer: string;
  referenceTokens: ReferenceTokenLookup;
  revocations: RevocationList;
  clock: Clock;
  /** Current public JWKS (changes with key rotation). */
  publicJwks: () => JSONWebKeySet;
  /**
   * Whether the principal behind a JWT or opaque token is still live: the client it was issued
   * to exists and its owning service account is active, and the user it acts for is active in
   * the organization (src/tokens/principal-liveness.ts). Any stop ends the token before `exp`.
   */
  principals?: Pick<PrincipalLiveness, 'check'>;
  /** Opaque access tokens and their grants, from the engine's models. */
  opaqueTokens: OpaqueTokenSource;
  /** Counts each successful PAT/SAT introspection per token and resource server. */
  usage?: UsageRecorder;
  /** Where PATs/SATs are used from, when the resource server says (`client_ip`). */
  sightings?: Sightings;
}

/**
 * What a resource server may tell about the request it is authorizing (docs/tokens.md): the
 * client's address and user agent, and the thumbprint of the key of the DPoP proof it verified
 * (`dpop_jkt`, src/tokens/key-binding.ts).
 */
export interface UseContext {
  clientIp?: string;
  userAgent?: string;
  dpopJkt?: string;
}

/**
 * Verified JWT payloads are kept until the token expires (a JWT cannot change; its revocation is
 * checked on every call against the in-memory revocation list). Opaque tokens are kept 1 s:
 * their revocation is announced on pub/sub, and the short life bounds a lost announcement.
 */
const JWT_CACHE_ENTRIES = 10_000;
const OPAQUE_CACHE_ENTRIES = 10_000;
const OPAQUE_TTL_MS = 1_000;
/** Key of an opaque token in the local cache and in revocation messages: never the token itself. */
export const opaqueCacheKey = tokenKey;

export function createIntrospection(deps: IntrospectionDependencies) {
  const { issuer, clock } = deps;
  let jwksSource: JSONWebKeySet | undefined;
  let jwks: ReturnType<typeof createLocalJWKSet> | undefined;
  const verificationKeys = () => {
    const current = deps.publicJwks();
    if (current !== jwksSource) {
      jwksSource = current;
      jwks = createLocalJWKSet(current);
    }
    return jwks!;
  };

  const visibleTo = (caller: IntrospectionCaller, organizationId: unknown, audiences: string[]) => audienceSeenBy(caller, { organizationId, audiences }) !== undefined;

  /** PAT/SAT answer members: RFC 7662 §2.2 ones plus Tessera's documented `token_kind`, `token_id`, `org_id`, `owner_name`. */
  function referenceAnswer(t: TokenFacts, caller: IntrospectionCaller): IntrospectionAnswer {
    return {
      active: true,
      scope: t.scopes.join(' '),
      client_id: caller.clientId,
      sub: t.ownerId,
      ...(t.type === 'pat' ? { username: t.ownerName } : {}),
      aud: t.resources.length === 1 ? t.resources[0] : t.resources,
      exp: Math.floor(t.exp / 1000),
      iat: Math.floor(t.iat / 1000),
      iss: issuer,
      // A key-bound token says so, as every sender-constrained token does (RFC 9449 §6.2).
      ...senderConstraint(t.jkt !== null ? { jkt: t.jkt } : undefined),
      token_kind: t.type,
      token_id: t.id,
      org_id: t.org,
      owner_name: t.ownerName,
      // Remaining lifetime in seconds (docs/tokens.md), so automation can rotate in time without
      // reading a clock against `exp`.
      expires_in: Math.max(0, Math.floor(t.exp / 1000) - epochSeconds(clock)),
    };
  }

  /**
   * The last answer built from a cached record for a caller, so a token introspected again and
   * again (the common case: one API, one token, many calls) is not rebuilt each time. Keyed by
   * the record object, which the caches replace on any change, and the caller object, which the
   * fast path keeps per client view; answers are frozen because they are shared.
   */
  const answers = new WeakMap<object, { caller: IntrospectionCaller; answer: IntrospectionAnswer; audience: string; until: number }>();
  function remembered(source: object, caller: IntrospectionCaller) {
    const memo = answers.get(source);
    return memo !== undefined && memo.caller === caller && clock.now() < memo.until ? memo : undefined;
  }
  /** `forMs`: how long the answer stays true (a PAT/SAT answer carries its remaining lifetime). */
  function remember(source: object, caller: IntrospectionCaller, answer: IntrospectionAnswer, audience = '', forMs = Infinity): IntrospectionAnswer {
    Object.freeze(answer);
    answers.set(source, { caller, answer, audience, until: clock.now() + forMs });
    return answer;
  }

  function reference(token: string, caller: IntrospectionCaller, context: UseContext): MaybePromise<IntrospectionAnswer> {
    return andThen(deps.referenceTokens.resolve(token), (resolved) => {
      if (!resolved.ok) return INACTIVE;
      const t = resolved.token;
      // A key-bound token is active only for the holder of its key (src/tokens/key-binding.ts),
      // checked before any cached answer is reused: the answer is per caller, not per proof.
      if (!keyConfirmed(t.jkt, context.dpopJkt)) return INACTIVE;
      if (context.clientIp !== undefined) {
        // The address constraint holds only where the address is known (src/domain/token-constraints.ts).
        if (addressRefused(t, context.clientIp)) return INACTIVE;
        if (audienceSeenBy(caller, { organizationId: t.org, audiences: t.resources }) !== undefined) deps.sightings?.record(t.id, context.clientIp, context.userAgent);
      }
      const memo = remembered(t, caller);
      if (memo !== undefined) {
        deps.usage?.record(t.id, memo.audience);
        return memo.answer;
      }
      const audience = audienceSeenBy(caller, { organizationId: t.org, audiences: t.resources });
      if (audience === undefined) return INACTIVE;
      deps.usage?.record(t.id, audience);
      // Kept until the next whole second, when `expires_in` (counted in whole seconds) changes.
      return remember(t, caller, referenceAnswer(t, caller), audience, 1000 - (clock.now() % 1000));
    });
  }

  // Keyed by the token's SHA-256, not the token: a JWT is hundreds of bytes, and the heap
  // must not grow with the tokens presented. Only verified tokens are kept; a forged or
  // foreign JWT costs a signature check each time rather than a cache entry.
  const verifiedJwts = new BoundedCache<JWTPayload>(JWT_CACHE_ENTRIES, () => clock.now());
  function verifiedJwt(token: string, key = opaqueCacheKey(token)): MaybePromise<JWTPayload | undefined> {
    const cached = verifiedJwts.get(key);
    return cached !== undefined ? cached : verifyAndKeep(token, key);
  }
  async function verifyAndKeep(token: string, key: string): Promise<JWTPayload | undefined> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, verificationKeys(), {
        issuer,
        typ: 'at+jwt',
        algorithms: ['ES256', 'RS256'],
        currentDate: new Date(clock.now()),
      }));
    } catch {
      return undefined;
    }
    if (!payload.jti || !payload.exp) return undefined;
    verifiedJwts.set(key, payload, payload.exp * 1000 - clock.now());
    return payload;
  }

  /**
   * Whether the principal of an OAuth access token is still live (see `principals`). A token of
   * the client credentials grant has the client as `sub` (RFC 9068 §2.2); any other acts for a user.
   */
  const principalLive = (clientId: unknown, subject: unknown, organizationId: unknown): MaybePromise<boolean> =>
    deps.principals ? andThen(deps.principals.check(clientId, subject === clientId ? undefined : subject, organizationId), (p) => p !== undefined) : true;

  /** One credential of an exchanged token's lineage still stands (src/tokens/exchange-lineage.ts). */
  function entryLive(entry: LineageEntry, organizationId: unknown, scopes: readonly string[]): MaybePromise<boolean> {
    if ('tok' in entry) {
      // The PAT or SAT, by id: live, that secret still valid, and (after a demotion) still holding every scope the token carries.
      return andThen(deps.referenceTokens.resolveById(entry.tok), (t) => generationLive(t, entry.gen, clock.now()) && t!.org === organizationId && scopes.every((s) => t!.scopes.includes(s)));
    }
    return andThen(deps.revocations.isRevoked(entry.jti), (revoked) =>
      revoked
        ? false
        : andThen(principalLive(entry.client_id, entry.sub ?? entry.client_id, organizationId), (live) =>
            !live ? false : entry.grant === undefined ? true : grantBinds(entry.grant, entry.client_id, entry.sub),
          ),
    );
  }
  function lineageLive(lineage: readonly LineageEntry[], organizationId: unknown, scopes: readonly string[], from = 0): MaybePromise<boolean> {
    if (from >= lineage.length) return true;
    return andThen(entryLive(lineage[from]!, organizationId, scopes), (live) => (live ? lineageLive(lineage, organizationId, scopes, from + 1) : false));
  }

  /**
   * Whether an OAuth access token may still act: its principal is live (`principalLive`), or, for
   * a token made by exchange, its own client is live and every credential it was exchanged from
   * still stands; its subject (perhaps a service account) acts through that lineage.
   */
  function tokenLive(clientId: unknown, subject: unknown, organizationId: unknown, claims: Record<string, unknown>, scope: unknown): MaybePromise<boolean> {
    const lineage = lineageOf(claims);
    if (lineage === undefined) return principalLive(clientId, subject, organizationId);
    if (lineage === null) return false;
    return andThen(principalLive(clientId, clientId, organizationId), (live) => (live ? lineageLive(lineage, organizationId, scopesOf(scope)) : false));
  }

  function jwt(verified: MaybePromise<JWTPayload | undefined>, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    return andThen(verified, (payload) => {
      // Expiry is checked on every call: a cached payload never outlives its token.
      if (!payload || payload.exp! * 1000 <= clock.now()) return INACTIVE;
      const memo = remembered(payload, caller);
      if (memo === undefined && !visibleTo(caller, payload.org_id, audiencesOf(payload.aud))) return INACTIVE;
      return andThen(deps.revocations.isRevoked(payload.jti!), (revoked) =>
        revoked ? INACTIVE : andThen(tokenLive(payload.client_id, payload.sub, payload.org_id, payload, payload.scope), (live) => (!live ? INACTIVE : (memo?.answer ?? remember(payload, caller, jwtAnswer(payload))))),
      );
    });
  }

  function jwtAnswer(payload: JWTPayload): IntrospectionAnswer {
    return {
      active: true,
      scope: payload.scope,
      client_id: payload.client_id,
      sub: payload.sub,
      aud: payload.aud,
      exp: payload.exp,
      iat: payload.iat,
      iss: payload.iss,
      jti: payload.jti,
      ...senderConstraint(payload.cnf),
      org_id: payload.org_id,
      // RFC 8693 §4.1: who acts for the subject, for a token made by delegation.
      ...(payload.act !== undefined ? { act: payload.act } : {}),
    };
  }

  /** The engine's opaque access token, kept here for at most OPAQUE_TTL_MS. */
  const opaqueTokens = new BoundedCache<OpaqueAccessToken>(OPAQUE_CACHE_ENTRIES, () => clock.now());
  function findOpaque(token: string, key = opaqueCacheKey(token)): MaybePromise<OpaqueAccessToken | undefined> {
    if (token.length > 512) return undefined;
    const cached = opaqueTokens.get(key);
    return cached !== undefined ? cached : loadOpaque(token, key);
  }
  async function loadOpaque(token: string, key: string): Promise<OpaqueAccessToken | undefined> {
    const found = await deps.opaqueTokens.find(token);
    if (found) opaqueTokens.set(key, Object.freeze(found), Math.min(OPAQUE_TTL_MS, found.exp * 1000 - clock.now()));
    return found;
  }

  const opaqueOrganization = (t: OpaqueAccessToken) => t.extra.org_id;
  const opaqueUnexpired = (t: OpaqueAccessToken) => typeof t.exp === 'number' && t.exp > epochSeconds(clock);

  /**
   * The engine's binding rules for a token issued under a grant (its introspection and
   * userinfo apply the same): the grant still exists, has not expired, and is the token's
   * client's and user's. A revoked grant (logout, RFC 7009 of its refresh token) ends its tokens.
   */
  const grantBinds = (grantId: string | undefined, clientId: unknown, accountId: unknown): MaybePromise<boolean> =>
    grantId === undefined
      ? true
      : deps.opaqueTokens.grant(grantId).then(
          (grant) => grant !== undefined && (grant.exp === undefined || grant.exp > epochSeconds(clock)) && grant.clientId === clientId && grant.accountId === accountId,
        );

  function opaque(t: OpaqueAccessToken, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    if (!opaqueUnexpired(t)) return INACTIVE;
    const memo = remembered(t, caller);
    if (memo === undefined && !visibleTo(caller, opaqueOrganization(t), audiencesOf(t.aud))) return INACTIVE;
    return andThen(grantBinds(t.grantId, t.clientId, t.accountId), (bound) =>
      !bound
        ? INACTIVE
        : andThen(tokenLive(t.clientId, t.accountId ?? t.clientId, opaqueOrganization(t), t.extra, t.scope), (active) =>
            !active ? INACTIVE : (memo?.answer ?? remember(t, caller, opaqueAnswer(t))),
          ),
    );
  }

  function opaqueAnswer(t: OpaqueAccessToken): IntrospectionAnswer {
    // The lineage is for Tessera's own checks; `act` (RFC 8693 §4.1) and `org_id` are for the API.
    const { [LINEAGE_CLAIM]: _lineage, ...extra } = t.extra;
    return {
      ...extra,
      active: true,
      scope: t.scope || undefined,
      client_id: t.clientId,
      // RFC 9068 §2.2 / docs/tokens.md: `sub` is always present; the client for machine tokens.
      sub: t.accountId ?? t.clientId,
      aud: t.aud,
      exp: t.exp,
      iat: t.iat,
      iss: issuer,
      // The session the token was issued in, as the engine's own answer gives it (OpenID Connect Front/Back-Channel Logout `sid`).
      sid: t.sid,
      // RFC 9449 §6.2 / RFC 8705 §3.2: a sender-constrained token says how it is bound.
      ...senderConstraint(t.cnf),
    };
  }

  /**
   * A DPoP-bound access token of the engine's: without `dpop_jkt` its answer is as before (the
   * API compares `cnf.jkt` with its proof itself); with one, a key other than its own makes it
   * inactive, by the same rule as a key-bound PAT or SAT (src/tokens/key-binding.ts).
   */
  function presentedKey(answer: MaybePromise<IntrospectionAnswer>, context: UseContext): MaybePromise<IntrospectionAnswer> {
    if (context.dpopJkt === undefined) return answer;
    return andThen(answer, (a) => (a.active && !keyConfirmed((a.cnf as { jkt?: string } | undefined)?.jkt, context.dpopJkt) ? INACTIVE : a));
  }

  /** A presented token's shape; undefined for an empty or oversized value, which names nothing. */
  const presentedShape = (token: string): TokenShape | undefined => (token.length === 0 || token.length > 8192 ? undefined : tokenShape(token));
  /** A presented PAT or SAT that resolves to a live token. */
  async function liveReference(token: string) {
    const resolved = await deps.referenceTokens.resolve(token);
    return resolved.ok ? resolved : undefined;
  }

  async function verifyJwt(token: string): Promise<JWTPayload | undefined> {
    const payload = await verifiedJwt(token);
    return payload && payload.exp! * 1000 > clock.now() ? payload : undefined;
  }

  return {
    findOpaque,
    /** Revokes an opaque access token through the engine's model, and drops it from this node's cache. */
    async destroyOpaque(token: string): Promise<void> {
      await deps.opaqueTokens.destroy(token);
      opaqueTokens.delete(opaqueCacheKey(token));
    },
    /** Drops an opaque token from this node's cache (its revocation, here or announced by another node). */
    forgetOpaque(key: string): void {
      opaqueTokens.delete(key);
    },
    /**
     * The answer for `token`, or undefined when the token is not one Tessera answers for here
     * (an opaque value it does not hold: oidc-provider gets the request, e.g. a refresh token).
     */
    introspect(token: string, caller: IntrospectionCaller, context: UseContext = {}): MaybePromise<IntrospectionAnswer | undefined> {
      if (token.length === 0 || token.length > 8192) return INACTIVE;
      if (looksLikeReferenceToken(token)) return reference(token, caller, context);
      const key = opaqueCacheKey(token);
      // A JWT verified before is known by its digest: no header decoding for the common case.
      const known = verifiedJwts.get(key);
      if (known !== undefined || tokenShape(token) === 'jwt') return presentedKey(jwt(known ?? verifiedJwt(token, key), caller), context);
      return andThen(findOpaque(token, key), (payload) => (payload ? presentedKey(opaque(payload, caller), context) : undefined));
    },
    /** Decoded and verified JWT payload, for revocation. */
    verifyJwt,
    /**
     * What revoking `token` on behalf of `caller` acts on: a live token the caller may revoke
     * (`mayRevoke`), or undefined when nothing is to be done.
     */
    async revocable(token: string, caller: IntrospectionCaller): Promise<RevocationTarget | undefined> {
      const shape = presentedShape(token);
      if (shape === undefined) return undefined;
      if (shape === 'reference') {
        const t = (await liveReference(token))?.token;
        if (!t) return undefined;
        return mayRevoke(caller, { clientId: undefined, organizationId: t.org, audiences: t.resources }) ? { kind: 'reference', tokenId: t.id } : undefined;
      }
      if (shape === 'jwt') {
        const payload = await verifyJwt(token);
        if (!payload || !mayRevoke(caller, { clientId: payload.client_id, organizationId: payload.org_id, audiences: audiencesOf(payload.aud) })) return undefined;
        if (await deps.revocations.isRevoked(payload.jti!)) return undefined;
        return { kind: 'jwt', jti: payload.jti!, organizationId: typeof payload.org_id === 'string' ? payload.org_id : null, exp: payload.exp! };
      }
      const found = await findOpaque(token);
      if (!found || !opaqueUnexpired(found)) return undefined;
      const organizationId = opaqueOrganization(found);
      return mayRevoke(caller, { clientId: found.clientId, organizationId, audiences: audiencesOf(found.aud) })
        ? { kind: 'opaque', lineageId: opaqueLineageId(token), organizationId: typeof organizationId === 'string' ? organizationId : null, exp: found.exp }
        : undefined;
    },

    /**
     * A token presented for exchange (RFC 8693 §2.1), if it is a live Tessera access token, PAT
     * or SAT: the same checks as introspection (lifecycle, revocation, principal, lineage), but
     * no audience restriction.
     */
    async exchangeSource(token: string): Promise<ExchangeSource | undefined> {
      const shape = presentedShape(token);
      if (shape === undefined) return undefined;
      if (shape === 'reference') {
        const resolved = await liveReference(token);
        if (!resolved) return undefined;
        const t = resolved.token;
        return {
          kind: t.type,
          id: t.id,
          organizationId: t.org,
          sub: t.ownerId,
          scopes: [...t.scopes],
          audiences: [...t.resources],
          exp: Math.floor(t.exp / 1000),
          lineage: [{ tok: t.id, gen: resolved.viaPreviousSecret ? t.gen - 1 : t.gen }],
          // A key-bound PAT or SAT is exchanged only with a proof of its key (src/oidc/token-exchange.ts).
          ...(t.jkt !== null ? { jkt: t.jkt } : {}),
        };
      }
      let claims: Record<string, unknown>;
      let jti: string;
      let clientId: unknown;
      let subject: unknown;
      let grantId: string | undefined;
      let exp: number;
      if (shape === 'jwt') {
        const payload = await verifyJwt(token);
        if (!payload || (await deps.revocations.isRevoked(payload.jti!))) return undefined;
        ({ client_id: clientId, sub: subject } = payload);
        [claims, jti, exp] = [payload, payload.jti!, payload.exp!];
      } else {
        const found = await findOpaque(token);
        if (!found || !opaqueUnexpired(found) || !(await grantBinds(found.grantId, found.clientId, found.accountId))) return undefined;
        claims = { ...found.extra, scope: found.scope, aud: found.aud, act: found.extra.act, cnf: found.cnf };
        [clientId, subject, grantId, jti, exp] = [found.clientId, found.accountId ?? found.clientId, found.grantId, opaqueLineageId(token), found.exp];
      }
      const organizationId = claims.org_id;
      if (typeof organizationId !== 'string' || typeof clientId !== 'string' || typeof subject !== 'string') return undefined;
      if (!(await tokenLive(clientId, subject, organizationId, claims, claims.scope))) return undefined;
      const inherited = lineageOf(claims);
      // An exchanged token's subject acts through its lineage; any other token's through its client and user.
      const own: LineageEntry = {
        jti,
        client_id: clientId,
        ...(inherited === undefined && subject !== clientId ? { sub: subject } : {}),
        ...(grantId !== undefined ? { grant: grantId } : {}),
      };
      return {
        kind: 'access_token',
        id: jti,
        organizationId,
        sub: subject,
        scopes: scopesOf(claims.scope),
        audiences: audiencesOf(claims.aud),
        exp,
        lineage: [...(inherited ?? []), own],
        ...(claims.act !== undefined ? { act: claims.act } : {}),
        ...(typeof (claims.cnf as { jkt?: unknown } | undefined)?.jkt === 'string' ? { jkt: (claims.cnf as { jkt: string }).jkt } : {}),
        ...(typeof (claims.cnf as Record<string, unknown> | undefined)?.['x5t#S256'] === 'string' ? { x5t: (claims.cnf as Record<string, string>)['x5t#S256'] } : {}),
      };
    },
  };
}
export type Introspection = ReturnType<typeof createIntrospection>;
