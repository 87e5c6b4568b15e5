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
  | { kind: 'opaque' };

const audiencesOf = (aud: unknown): string[] => (Array.isArray(aud) ? aud.map(String) : typeof aud === 'string' ? [aud] : []);

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
  /** 'Bearer', or 'DPoP' for a DPoP-bound token (RFC 9449 §6). */
  tokenType: string;
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

/** What a resource server may tell about the request it is authorizing (docs/tokens.md): the client's address and user agent. */
export interface UseContext {
  clientIp?: string;
  userAgent?: string;
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
      token_type: 'Bearer',
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

  function jwt(verified: MaybePromise<JWTPayload | undefined>, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    return andThen(verified, (payload) => {
      // Expiry is checked on every call: a cached payload never outlives its token.
      if (!payload || payload.exp! * 1000 <= clock.now()) return INACTIVE;
      const memo = remembered(payload, caller);
      if (memo === undefined && !visibleTo(caller, payload.org_id, audiencesOf(payload.aud))) return INACTIVE;
      return andThen(deps.revocations.isRevoked(payload.jti!), (revoked) =>
        revoked ? INACTIVE : andThen(principalLive(payload.client_id, payload.sub, payload.org_id), (live) => (!live ? INACTIVE : (memo?.answer ?? remember(payload, caller, jwtAnswer(payload))))),
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
      token_type: 'Bearer',
      org_id: payload.org_id,
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
  const grantBinds = (t: OpaqueAccessToken): MaybePromise<boolean> =>
    t.grantId === undefined
      ? true
      : deps.opaqueTokens.grant(t.grantId).then(
          (grant) => grant !== undefined && (grant.exp === undefined || grant.exp > epochSeconds(clock)) && grant.clientId === t.clientId && grant.accountId === t.accountId,
        );

  function opaque(t: OpaqueAccessToken, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    if (!opaqueUnexpired(t)) return INACTIVE;
    const memo = remembered(t, caller);
    if (memo === undefined && !visibleTo(caller, opaqueOrganization(t), audiencesOf(t.aud))) return INACTIVE;
    return andThen(grantBinds(t), (bound) =>
      !bound
        ? INACTIVE
        : andThen(principalLive(t.clientId, t.accountId ?? t.clientId, opaqueOrganization(t)), (active) =>
            !active ? INACTIVE : (memo?.answer ?? remember(t, caller, opaqueAnswer(t))),
          ),
    );
  }

  function opaqueAnswer(t: OpaqueAccessToken): IntrospectionAnswer {
    return {
      ...t.extra,
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
      token_type: t.tokenType,
      cnf: t.cnf,
    };
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
      if (known !== undefined || tokenShape(token) === 'jwt') return jwt(known ?? verifiedJwt(token, key), caller);
      return andThen(findOpaque(token, key), (payload) => (payload ? opaque(payload, caller) : undefined));
    },
    /** Decoded and verified JWT payload, for revocation. */
    verifyJwt,
    /**
     * What revoking `token` on behalf of `caller` acts on: a live token the caller may revoke
     * (`mayRevoke`), or undefined when nothing is to be done.
     */
    async revocable(token: string, caller: IntrospectionCaller): Promise<RevocationTarget | undefined> {
      if (token.length === 0 || token.length > 8192) return undefined;
      const shape = tokenShape(token);
      if (shape === 'reference') {
        const resolved = await deps.referenceTokens.resolve(token);
        if (!resolved.ok) return undefined;
        const t = resolved.token;
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
      return mayRevoke(caller, { clientId: found.clientId, organizationId: opaqueOrganization(found), audiences: audiencesOf(found.aud) }) ? { kind: 'opaque' } : undefined;
    },
  };
}
export type Introspection = ReturnType<typeof createIntrospection>;
