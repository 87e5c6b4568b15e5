import { hash, timingSafeEqual } from 'node:crypto';

import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { JSONWebKeySet } from 'jose';

import type { AuditLog } from '../audit/audit-event.js';
import type { Clock } from '../clock.js';
import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { single } from '../http/form-body.js';
import type { FormParams } from '../http/form-body.js';
import { invalidClient, invalidRequest } from '../http/oauth-error.js';
import { andThen } from '../maybe-promise.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { AssertionReplay } from './assertion-replay.js';
import { ENGINE_CLOCK_TOLERANCE_SECONDS } from './assertion-replay.js';

/**
 * The one client authentication of Tessera: every endpoint Tessera answers itself
 * (introspection, revocation, both fast paths, the refresh-token grace) and every step in front
 * of the engine that needs to know who a request is from (the /token rate limit, the
 * client-secret grace) reads the credentials here, with the rules oidc-provider applies at its
 * own endpoints (node_modules/oidc-provider/lib/shared/client_auth.js):
 *
 * 1. one mechanism per request: Basic header, `client_secret` in the form, or an assertion
 *    (RFC 6749 §2.3.1, RFC 7523 §2.2); a form `client_id` must name the same client;
 * 2. the mechanism's class must be the client's registered `token_endpoint_auth_method`'s: a
 *    secret (Basic or form, either one, as the engine allows) for client_secret_basic and
 *    client_secret_post, an assertion for private_key_jwt, nothing for `none`;
 * 3. a secret is the current one, or the previous one within its rotation grace — and every use
 *    of the previous one is audited (`client.previous_secret_used`), on every endpoint;
 * 4. an assertion is verified against the client's registered keys and algorithm, for an
 *    audience of the issuer, the token endpoint or the endpoint called, and its `jti` is
 *    accepted once in the store the engine's ReplayDetection uses (src/oidc/assertion-replay.ts).
 */
export interface AuthenticatedClient {
  view: ClientView;
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';
}

/** Facts about the request, for the audit event of a previous secret's use. */
export interface RequestFacts {
  requestId?: string;
  ip?: string;
  userAgent?: string;
}

/** The failure detail (logs, audit) of a replaced secret presented after its grace period. */
export const REPLACED_SECRET = 'a replaced client secret was presented after its grace period';

/** The failure detail when the mechanism is not of the class the client registered (the engine's words). */
export const METHOD_MISMATCH = 'the provided authentication mechanism does not match the registered client authentication method';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * Algorithms a client assertion may be signed with when the client registered none: the engine's
 * `enabledJWA.clientAuthSigningAlgValues` (src/oidc/provider.ts reads it from here, so the two
 * never differ).
 */
export const CLIENT_AUTH_SIGNING_ALGS = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;

/** Registered methods that authenticate with a secret: either presentation is accepted for either (as the engine does). */
const SECRET_METHODS: ReadonlySet<string> = new Set(['client_secret_basic', 'client_secret_post']);

/** RFC 7591 §2: a client registered without the member uses client_secret_basic. */
export const registeredMethod = (view: ClientView) => String(view.metadata.token_endpoint_auth_method ?? 'client_secret_basic');

/** Compares digests, so neither the secret nor its length leaks through timing. */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = hash('sha256', presented, 'buffer');
  const b = hash('sha256', expected, 'buffer');
  return timingSafeEqual(a, b);
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are base64-encoded. */
const BASIC_CREDENTIALS = /^[A-Za-z0-9+/=._~-]+$/;
const unescapeCredential = (s: string) => (s.includes('%') || s.includes('+') ? decodeURIComponent(s.replace(/\+/g, '%20')) : s);

/** The two halves of a Basic header's credentials, still form-encoded; null without a `:`. */
function basicHalves(credentials: string): [string, string] | null {
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 1 ? null : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/** The Basic header's client id and secret, or undefined when it is not one that can be checked. */
export function parseBasic(header: string): { id: string; secret: string } | undefined {
  const trimmed = header.trim();
  // The scheme is case-insensitive (RFC 9110 §11.1).
  if (trimmed.length < 7 || trimmed.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const credentials = trimmed.slice(6);
  if (!BASIC_CREDENTIALS.test(credentials)) return undefined;
  const halves = basicHalves(credentials);
  if (!halves) return undefined;
  try {
    return { id: unescapeCredential(halves[0]), secret: unescapeCredential(halves[1]) };
  } catch {
    return undefined;
  }
}

/**
 * What a request to a token endpoint says about its client before anything is verified: the
 * client id it names and the secret it presents. Rate limits and audit attribution key on it;
 * only `authenticate` (or the engine) decides whether it is true.
 */
export interface ClientClaim {
  /** The Basic user name, the `client_id` form member, or the `iss` of a client assertion (RFC 7523 §3). */
  clientId: string | undefined;
  /** The Basic password or the `client_secret` form member, when one was presented. */
  secret: string | undefined;
}

export function clientClaim(authorization: string | undefined, params: URLSearchParams | undefined): ClientClaim {
  if (authorization !== undefined && /^basic /i.test(authorization)) {
    // Decoded as `authenticate` decodes it, so a secret that matches here matches there.
    const basic = parseBasic(authorization);
    if (basic) return { clientId: basic.id, secret: basic.secret };
    // A header that cannot be checked still names its client (read leniently: it only names),
    // unless it has no `:`; then the form decides.
    const halves = basicHalves(authorization.slice(6).trim());
    if (halves !== null) {
      try {
        return { clientId: decodeURIComponent(halves[0].replace(/\+/g, '%20')), secret: undefined };
      } catch {
        return { clientId: undefined, secret: undefined };
      }
    }
  }
  const clientId = params?.get('client_id') || undefined;
  if (clientId !== undefined) return { clientId, secret: params?.get('client_secret') ?? undefined };
  const assertion = params?.get('client_assertion');
  if (assertion) {
    try {
      return { clientId: decodeJwt(assertion).iss, secret: undefined };
    } catch {
      return { clientId: undefined, secret: undefined };
    }
  }
  return { clientId: undefined, secret: undefined };
}

export interface AuthenticateOptions {
  /**
   * A client registered for `none` may name itself with `client_id` alone: only at /token,
   * where its code or refresh token authenticates it (RFC 8252 §8.4).
   */
  publicClients?: boolean;
  /**
   * 'elsewhere': a previous secret within its grace is refused here, unaudited, because the
   * caller (a fast path) hands the request to the Koa path, which accepts and audits it once.
   */
  previousSecret?: 'elsewhere';
  /**
   * Called once the named client is found and before its credential is checked: where the engine
   * checks a request's CORS origin against the client (src/tokens/cross-origin.ts); it may throw.
   */
  found?: (view: ClientView) => void;
}

/** The failure detail of a previous secret a fast path leaves to the Koa path (never reaches a client). */
export const PREVIOUS_SECRET_ELSEWHERE = 'a previous secret within its grace is answered by the Koa path';

export interface ClientAuthenticatorDependencies {
  clients: ClientDirectory;
  clock: Clock;
  issuer: string;
  /** Where accepted assertion `jti`s are remembered: the engine's store (src/oidc/assertion-replay.ts). */
  replay: AssertionReplay;
  /** Where each use of a previous secret within its grace is recorded (the README promises one event per use). */
  audit?: Pick<AuditLog, 'record'>;
  /** Told of each successful secret check (last use of the secret); must not block. */
  onSecretUsed?: (clientId: string) => void;
}

export function createClientAuthenticator(deps: ClientAuthenticatorDependencies) {
  const { clients, clock, issuer } = deps;
  const realm = issuer;

  /**
   * 'previous': the previous secret within its grace. 'replaced': the previous secret after its
   * grace, refused like any wrong secret but told apart so the audit trail can flag a client
   * still using an old secret (or someone holding a leaked one).
   */
  function checkSecret(view: ClientView, presented: string): 'current' | 'previous' | 'replaced' | 'wrong' {
    const digest = hash('sha256', presented, 'buffer');
    if (view.secretDigest !== undefined && timingSafeEqual(digest, view.secretDigest)) return 'current';
    if (view.previousSecretDigest === undefined || !timingSafeEqual(digest, view.previousSecretDigest)) return 'wrong';
    return (view.previousSecretExpiresAt ?? 0) > clock.now() ? 'previous' : 'replaced';
  }

  function recordPreviousSecretUse(view: ClientView, method: string, facts: RequestFacts): void {
    deps.audit?.record({
      organizationId: view.record.organization_id,
      actor: { type: 'client', id: view.record.client_id, name: view.record.name ?? undefined },
      action: 'client.previous_secret_used',
      target: { type: 'client', id: view.record.client_id },
      outcome: 'success',
      ...facts,
      details: { method, previous_secret_expires_at: new Date(view.previousSecretExpiresAt!).toISOString() },
    });
  }

  function viaSecret(view: ClientView | undefined, presented: string, method: 'client_secret_basic' | 'client_secret_post', facts: RequestFacts, options: AuthenticateOptions): AuthenticatedClient {
    const basic = method === 'client_secret_basic';
    if (!view) throw invalidClient(basic, realm, 'unknown client or wrong secret');
    options.found?.(view);
    if (!SECRET_METHODS.has(registeredMethod(view))) throw invalidClient(basic, realm, METHOD_MISMATCH);
    const result = checkSecret(view, presented);
    if (result === 'replaced') throw invalidClient(basic, realm, REPLACED_SECRET);
    if (result === 'wrong') throw invalidClient(basic, realm, 'unknown client or wrong secret');
    if (result === 'previous') {
      if (options.previousSecret === 'elsewhere') throw invalidClient(basic, realm, PREVIOUS_SECRET_ELSEWHERE);
      recordPreviousSecretUse(view, method, facts);
    }
    deps.onSecretUsed?.(view.record.client_id);
    return { view, method };
  }

  async function viaAssertion(assertion: string, claimedId: string | undefined, endpointUrl: string, options: AuthenticateOptions): Promise<AuthenticatedClient> {
    let clientId: string | undefined;
    try {
      clientId = decodeJwt(assertion).iss;
    } catch {
      throw invalidClient(false, realm, 'client_assertion is not a JWT');
    }
    if (!clientId || (claimedId !== undefined && claimedId !== clientId)) throw invalidClient(false, realm, 'client_assertion issuer mismatch');
    const view = await clients.get(clientId);
    if (!view) throw invalidClient(false, realm, 'client not found');
    options.found?.(view);
    if (registeredMethod(view) !== 'private_key_jwt') throw invalidClient(false, realm, METHOD_MISMATCH);
    const jwks = view.metadata.jwks as JSONWebKeySet | undefined;
    if (!jwks) throw invalidClient(false, realm, 'client has no registered keys');
    const registeredAlg = view.metadata.token_endpoint_auth_signing_alg as string | undefined;
    try {
      const { payload } = await jwtVerify(assertion, createLocalJWKSet(jwks), {
        issuer: clientId,
        subject: clientId,
        // RFC 7523 §3: the audience identifies the authorization server: its issuer or the endpoint.
        audience: [issuer, endpointUrl, `${issuer}/token`],
        algorithms: registeredAlg ? [registeredAlg] : [...CLIENT_AUTH_SIGNING_ALGS],
        currentDate: new Date(clock.now()),
        requiredClaims: ['exp', 'jti'],
        clockTolerance: ENGINE_CLOCK_TOLERANCE_SECONDS,
      });
      // RFC 7523 §3 item 7: a jti is accepted once, in the engine's store as much as here.
      if (!(await deps.replay.unique(clientId, String(payload.jti), payload.exp!))) throw new Error('client assertion tokens must only be used once');
    } catch (error) {
      throw invalidClient(false, realm, (error as Error).message);
    }
    return { view, method: 'private_key_jwt' };
  }

  return {
    /**
     * Whether `presented` is the client's secret (or its previous one, within the rotation
     * grace) and the client authenticates with a secret, without counting or auditing a use:
     * for a step that only needs to know before the engine authenticates the request itself
     * (the /token rate limit, src/oidc/token-rate-limit.ts).
     */
    secretMatches(view: ClientView, presented: string): boolean {
      if (!SECRET_METHODS.has(registeredMethod(view))) return false;
      const result = checkSecret(view, presented);
      return result === 'current' || result === 'previous';
    },
    /**
     * The current secret to hand the engine instead of `presented`, when `presented` is the
     * previous one within its grace (src/oidc/secret-grace.ts); undefined otherwise.
     */
    graceReplacement(view: ClientView | undefined, presented: string): string | undefined {
      if (!view || !SECRET_METHODS.has(registeredMethod(view))) return undefined;
      return checkSecret(view, presented) === 'previous' ? (view.metadata.client_secret as string | undefined) : undefined;
    },
    recordPreviousSecretUse,
    /**
     * Authenticates the caller of `endpointUrl`, or throws an invalid_client / invalid_request
     * OAuthError (synchronously, or as a rejection). A client_secret_basic/post caller whose
     * client is cached is answered synchronously (the introspection fast path relies on that).
     */
    authenticate(
      authorization: string | undefined,
      params: FormParams,
      endpointUrl: string,
      facts: RequestFacts = {},
      options: AuthenticateOptions = {},
    ): MaybePromise<AuthenticatedClient> {
      const assertionType = single(params, 'client_assertion_type');
      const assertion = single(params, 'client_assertion');
      const postId = single(params, 'client_id');
      const postSecret = single(params, 'client_secret');
      const methods = [authorization !== undefined, postSecret !== undefined, assertion !== undefined].filter(Boolean).length;
      if (methods > 1) throw invalidRequest('client authentication must only be provided using one mechanism');

      if (assertion !== undefined) {
        if (assertionType !== JWT_BEARER) throw invalidRequest(`client_assertion_type must be ${JWT_BEARER}`);
        return viaAssertion(assertion, postId, endpointUrl, options);
      }
      if (authorization !== undefined) {
        const basic = parseBasic(authorization);
        if (!basic) throw invalidClient(true, realm, 'malformed Basic authorization header');
        if (postId !== undefined && postId !== basic.id) throw invalidRequest('client_id mismatch');
        return andThen(clients.get(basic.id), (view) => viaSecret(view, basic.secret, 'client_secret_basic', facts, options));
      }
      if (postId !== undefined && postSecret !== undefined) {
        return andThen(clients.get(postId), (view) => viaSecret(view, postSecret, 'client_secret_post', facts, options));
      }
      if (postId !== undefined && options.publicClients) {
        return andThen(clients.get(postId), (view) => {
          if (view) options.found?.(view);
          if (!view || registeredMethod(view) !== 'none') throw invalidClient(false, realm, 'no client authentication provided');
          return { view, method: 'none' as const };
        });
      }
      throw invalidClient(false, realm, 'no client authentication provided');
    },
  };
}
export type ClientAuthenticator = ReturnType<typeof createClientAuthenticator>;
