import { hash, timingSafeEqual } from 'node:crypto';

import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { JSONWebKeySet } from 'jose';

import type { Clock } from '../clock.js';
import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { single } from '../http/form-body.js';
import type { FormParams } from '../http/form-body.js';
import { invalidClient, invalidRequest } from '../http/oauth-error.js';
import type { CacheStore } from '../storage/cache.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';

/**
 * Client authentication for Tessera's own endpoints (introspection, revocation), with the same
 * methods and answers as oidc-provider: client_secret_basic and client_secret_post (RFC 6749
 * §2.3.1) and private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9).
 */
export interface AuthenticatedClient {
  view: ClientView;
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
}

/** The failure detail (logs, audit) of a replaced secret presented after its grace period. */
export const REPLACED_SECRET = 'a replaced client secret was presented after its grace period';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Compares digests, so neither the secret nor its length leaks through timing. */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = hash('sha256', presented, 'buffer');
  const b = hash('sha256', expected, 'buffer');
  return timingSafeEqual(a, b);
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are base64-encoded. */
const BASIC_CREDENTIALS = /^[A-Za-z0-9+/=._~-]+$/;
const unescapeCredential = (s: string) => (s.includes('%') || s.includes('+') ? decodeURIComponent(s.replace(/\+/g, '%20')) : s);

export function parseBasic(header: string): { id: string; secret: string } | undefined {
  const trimmed = header.trim();
  // The scheme is case-insensitive (RFC 9110 §11.1).
  if (trimmed.length < 7 || trimmed.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const credentials = trimmed.slice(6);
  if (!BASIC_CREDENTIALS.test(credentials)) return undefined;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return undefined;
  try {
    return { id: unescapeCredential(decoded.slice(0, colon)), secret: unescapeCredential(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

export function createClientAuthenticator(deps: {
  clients: ClientDirectory;
  cache: CacheStore;
  clock: Clock;
  issuer: string;
  /** Told of each successful secret check (last use of the secret, docs/design.md principle 3); must not block. */
  onSecretUsed?: (clientId: string) => void;
}) {
  const { clients, clock, issuer } = deps;
  const realm = issuer;

  /**
   * 'replaced': the secret is the previous one and its grace period is over. Refused like any
   * wrong secret, but told apart so the audit trail can flag a client still using an old secret
   * (or someone holding a leaked one).
   */
  function checkSecret(view: ClientView, presented: string): 'ok' | 'replaced' | 'wrong' {
    const digest = hash('sha256', presented, 'buffer');
    let ok = view.secretDigest !== undefined && timingSafeEqual(digest, view.secretDigest);
    const previousMatches = view.previousSecretDigest !== undefined && timingSafeEqual(digest, view.previousSecretDigest);
    // A rotated secret keeps working until its grace period ends (docs/management-api.md, "Secret rotation").
    if (previousMatches && (view.previousSecretExpiresAt ?? 0) > clock.now()) ok = true;
    if (ok) return 'ok';
    return previousMatches ? 'replaced' : 'wrong';
  }

  function requireSecret(view: ClientView | undefined, presented: string, basic: boolean): asserts view is ClientView {
    const result = view ? checkSecret(view, presented) : 'wrong';
    if (result === 'replaced') throw invalidClient(basic, realm, REPLACED_SECRET);
    if (result !== 'ok') throw invalidClient(basic, realm, 'unknown client or wrong secret');
    deps.onSecretUsed?.(view!.record.client_id);
  }

  async function viaAssertion(assertion: string, claimedId: string | undefined, endpointUrl: string): Promise<AuthenticatedClient> {
    let clientId: string | undefined;
    try {
      clientId = decodeJwt(assertion).iss;
    } catch {
      throw invalidClient(false, realm, 'client_assertion is not a JWT');
    }
    if (!clientId || (claimedId !== undefined && claimedId !== clientId)) throw invalidClient(false, realm, 'client_assertion issuer mismatch');
    const view = await clients.get(clientId);
    const jwks = view?.metadata.jwks as JSONWebKeySet | undefined;
    if (!view || view.metadata.token_endpoint_auth_method !== 'private_key_jwt' || !jwks) {
      throw invalidClient(false, realm, 'client is not registered for private_key_jwt');
    }
    try {
      const { payload } = await jwtVerify(assertion, createLocalJWKSet(jwks), {
        issuer: clientId,
        subject: clientId,
        // RFC 7523 §3: the audience identifies the authorization server: its issuer or the endpoint.
        audience: [issuer, endpointUrl, `${issuer}/token`],
        currentDate: new Date(clock.now()),
        requiredClaims: ['exp', 'jti'],
        clockTolerance: 5,
      });
      const ttl = Math.max(1, (payload.exp ?? 0) - Math.floor(clock.now() / 1000) + 5);
      // RFC 7523 §3 item 7: a jti is accepted once.
      if (!(await deps.cache.setIfAbsent(`replay:client-assertion:${clientId}:${payload.jti}`, '1', ttl))) {
        throw new Error('client_assertion jti replayed');
      }
    } catch (error) {
      throw invalidClient(false, realm, (error as Error).message);
    }
    return { view, method: 'private_key_jwt' };
  }

  return {
    /**
     * Whether `presented` is the client's secret (or its previous one, within the rotation
     * grace), without counting a use: for a step that only needs to know before the engine
     * authenticates the request itself (the /token rate limit, src/oidc/token-rate-limit.ts).
     */
    secretMatches(view: ClientView, presented: string): boolean {
      return checkSecret(view, presented) === 'ok';
    },
    /**
     * Authenticates the caller of `endpointUrl`, or throws an invalid_client / invalid_request
     * OAuthError (synchronously, or as a rejection). A client_secret_basic/post caller whose
     * client is cached is answered synchronously (the introspection fast path relies on that).
     */
    authenticate(authorization: string | undefined, params: FormParams, endpointUrl: string): MaybePromise<AuthenticatedClient> {
      const assertionType = single(params, 'client_assertion_type');
      const assertion = single(params, 'client_assertion');
      const postId = single(params, 'client_id');
      const postSecret = single(params, 'client_secret');
      const methods = [authorization !== undefined, postSecret !== undefined, assertion !== undefined].filter(Boolean).length;
      if (methods > 1) throw invalidRequest('client authentication must only be provided using one mechanism');

      if (assertion !== undefined) {
        if (assertionType !== JWT_BEARER) throw invalidRequest(`client_assertion_type must be ${JWT_BEARER}`);
        return viaAssertion(assertion, postId, endpointUrl);
      }
      if (authorization !== undefined) {
        const basic = parseBasic(authorization);
        if (!basic) throw invalidClient(true, realm, 'malformed Basic authorization header');
        return andThen(clients.get(basic.id), (view) => {
          requireSecret(view, basic.secret, true);
          return { view, method: 'client_secret_basic' as const };
        });
      }
      if (postId !== undefined && postSecret !== undefined) {
        return andThen(clients.get(postId), (view) => {
          requireSecret(view, postSecret, false);
          return { view, method: 'client_secret_post' as const };
        });
      }
      throw invalidClient(false, realm, 'no client authentication provided');
    },
  };
}
export type ClientAuthenticator = ReturnType<typeof createClientAuthenticator>;
