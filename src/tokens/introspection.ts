import { audienceSeenBy, mayRevoke } from '../domain/authority.js';
import type { ResourceServerCaller } from '../domain/authority.js';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JSONWebKeySet, JWTPayload } from 'jose';

import type { Clock } from '../clock.js';
import { epochSeconds } from '../clock.js';
import { modelKey } from '../oidc/adapter.js';
import type { CacheStore } from '../storage/cache.js';
import { BoundedCache } from './bounded-cache.js';
import { looksLikeReferenceToken, tokenKey } from './format.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { PrincipalLiveness } from './principal-liveness.js';
import type { ReferenceTokenLookup, TokenFacts } from './reference-token-lookup.js';
import type { RevocationList } from './revocation-list.js';
import type { UsageRecorder } from './usage-recorder.js';

/**
 * RFC 7662 introspection of every token kind Tessera issues, from one place:
 * - reference tokens (PAT/SAT): prefix and checksum first, then the stored SHA-256;
 * - JWT access tokens (RFC 9068): signature, issuer, expiry, then the revocation list;
 * - opaque access tokens: oidc-provider's own record in the cache store.
 * A caller sees `active: true` only for a token whose audience includes an API it is the
 * introspection client of, in its own organization (docs/design.md, principle 2; RFC 7662 §2.2 lets the server
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

export interface IntrospectionDependencies {
  issuer: string;
  cache: CacheStore;
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
  /** Whether the grant behind an opaque token still exists (revoked grants kill their tokens). */
  grantExists: (grantId: string) => Promise<boolean>;
  /** Counts each successful PAT/SAT introspection per token and resource server. */
  usage?: UsageRecorder;
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
  const { issuer, cache, clock } = deps;
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
    };
  }

  /**
   * The last answer built from a cached record for a caller, so a token introspected again and
   * again (the common case: one API, one token, many calls) is not rebuilt each time. Keyed by
   * the record object, which the caches replace on any change, and the caller object, which the
   * fast path keeps per client view; answers are frozen because they are shared.
   */
  const answers = new WeakMap<object, { caller: IntrospectionCaller; answer: IntrospectionAnswer; audience: string }>();
  function remembered(source: object, caller: IntrospectionCaller) {
    const memo = answers.get(source);
    return memo !== undefined && memo.caller === caller ? memo : undefined;
  }
  function remember(source: object, caller: IntrospectionCaller, answer: IntrospectionAnswer, audience = ''): IntrospectionAnswer {
    Object.freeze(answer);
    answers.set(source, { caller, answer, audience });
    return answer;
  }

  function reference(token: string, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    return andThen(deps.referenceTokens.resolve(token), (resolved) => {
      if (!resolved.ok) return INACTIVE;
      const t = resolved.token;
      const memo = remembered(t, caller);
      if (memo !== undefined) {
        deps.usage?.record(t.id, memo.audience);
        return memo.answer;
      }
      const audience = audienceSeenBy(caller, { organizationId: t.org, audiences: t.resources });
      if (audience === undefined) return INACTIVE;
      deps.usage?.record(t.id, audience);
      return remember(t, caller, referenceAnswer(t, caller), audience);
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

  /** oidc-provider's opaque access token, read from the cache store where the adapter keeps it. */
  const opaqueTokens = new BoundedCache<Record<string, unknown>>(OPAQUE_CACHE_ENTRIES, () => clock.now());
  function findOpaque(token: string, key = opaqueCacheKey(token)): MaybePromise<Record<string, unknown> | undefined> {
    if (token.length > 512) return undefined;
    const cached = opaqueTokens.get(key);
    return cached !== undefined ? cached : loadOpaque(token, key);
  }
  async function loadOpaque(token: string, key: string): Promise<Record<string, unknown> | undefined> {
    for (const model of ['AccessToken', 'ClientCredentials']) {
      const value = await cache.get(modelKey(model, token));
      if (value) {
        const payload = JSON.parse(value) as Record<string, unknown>;
        opaqueTokens.set(key, payload, Math.min(OPAQUE_TTL_MS, Number(payload.exp) * 1000 - clock.now()));
        return payload;
      }
    }
    return undefined;
  }

  const opaqueOrganization = (payload: Record<string, unknown>) => ((payload.extra ?? {}) as Record<string, unknown>).org_id;
  const opaqueUnexpired = (payload: Record<string, unknown>) => typeof payload.exp === 'number' && payload.exp > epochSeconds(clock) && !payload.consumed;

  function opaque(payload: Record<string, unknown>, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer> {
    if (!opaqueUnexpired(payload)) return INACTIVE;
    const memo = remembered(payload, caller);
    if (memo === undefined && !visibleTo(caller, opaqueOrganization(payload), audiencesOf(payload.aud))) return INACTIVE;
    const grantLive: MaybePromise<boolean> = typeof payload.grantId === 'string' ? deps.grantExists(payload.grantId) : true;
    return andThen(grantLive, (live) =>
      !live
        ? INACTIVE
        : andThen(principalLive(payload.clientId, payload.accountId ?? payload.clientId, opaqueOrganization(payload)), (active) =>
            !active ? INACTIVE : (memo?.answer ?? remember(payload, caller, opaqueAnswer(payload))),
          ),
    );
  }

  function opaqueAnswer(payload: Record<string, unknown>): IntrospectionAnswer {
    const extra = (payload.extra ?? {}) as Record<string, unknown>;
    return {
      ...extra,
      active: true,
      scope: payload.scope || undefined,
      client_id: payload.clientId,
      // RFC 9068 §2.2 / docs/tokens.md: `sub` is always present; the client for machine tokens.
      sub: (payload.accountId as string | undefined) ?? payload.clientId,
      aud: payload.aud,
      exp: payload.exp,
      iat: payload.iat,
      iss: issuer,
      token_type: 'Bearer',
    };
  }

  async function verifyJwt(token: string): Promise<JWTPayload | undefined> {
    const payload = await verifiedJwt(token);
    return payload && payload.exp! * 1000 > clock.now() ? payload : undefined;
  }

  return {
    findOpaque,
    /** Drops an opaque token from this node's cache (its revocation, here or announced by another node). */
    forgetOpaque(key: string): void {
      opaqueTokens.delete(key);
    },
    /**
     * The answer for `token`, or undefined when the token is not one Tessera answers for here
     * (an opaque value it does not hold: oidc-provider gets the request, e.g. a refresh token).
     */
    introspect(token: string, caller: IntrospectionCaller): MaybePromise<IntrospectionAnswer | undefined> {
      if (token.length === 0 || token.length > 8192) return INACTIVE;
      if (looksLikeReferenceToken(token)) return reference(token, caller);
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
      const payload = await findOpaque(token);
      if (!payload || !opaqueUnexpired(payload)) return undefined;
      return mayRevoke(caller, { clientId: payload.clientId, organizationId: opaqueOrganization(payload), audiences: audiencesOf(payload.aud) }) ? { kind: 'opaque' } : undefined;
    },
  };
}
export type Introspection = ReturnType<typeof createIntrospection>;
