import { randomBytes } from 'node:crypto';

import type { ResourceServer } from './types.js';
import { isManagementScope } from './authority.js';
import { MANAGEMENT_AUDIENCE, OPENID_SCOPES, PLATFORM_SCOPE } from './types.js';

/**
 * The rules a client must follow, whoever creates it (Management API or RFC 7591 registration):
 * - redirect URIs, post-logout ones included, are https, or http on a loopback address only
 *   (RFC 8252 §7.3, RFC 9700 §2.1): a logout redirect carries the user's browser as much as a
 *   sign-in one does;
 * - resources are the organization's own resource servers, or the Management API;
 * - scopes are the OpenID scopes, scopes of the listed resource servers, and Management API
 *   scopes only when the Management API is listed, only those the creator holds itself, and
 *   never `organizations:admin` (docs/design.md, "Separation of authority": no client is more powerful than whoever made it).
 */
export interface FieldProblem {
  field: string;
  message: string;
}

/** RFC 8693 §2.1: the grant type of token exchange (src/oidc/token-exchange.ts). */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8628 §3.4: the grant type of the device authorization grant. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE_GRANT, DEVICE_CODE_GRANT] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];
export type AuthMethod = (typeof AUTH_METHODS)[number];
export const SECRET_METHODS: ReadonlySet<string> = new Set(['client_secret_basic', 'client_secret_post']);

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** A client secret: 32 random bytes, base64url (43 characters, 256 bits). */
export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Why a redirect URI is refused, or undefined when it is acceptable. */
export function redirectUriProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URI';
  }
  if (value.includes('#')) return 'must not contain a fragment (RFC 6749 §3.1.2)';
  if (url.username || url.password) return 'must not contain user information';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return LOOPBACK_HOSTS.has(url.hostname) ? undefined : 'http is allowed on loopback addresses only; use https';
  return 'must use https (or http on a loopback address)';
}

/** Why a resource server identifier is refused, or undefined (RFC 8707 §2: absolute URI, no fragment). */
export function resourceIdentifierProblem(value: string): string | undefined {
  if (value === MANAGEMENT_AUDIENCE || value.toLowerCase().startsWith('urn:tessera:')) return 'is reserved for Tessera';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URI';
  }
  if (value.includes('#')) return 'must not contain a fragment (RFC 8707 §2)';
  if (url.protocol === 'https:' || url.protocol === 'http:') {
    if (!url.hostname) return 'must name a host';
    if (url.username || url.password) return 'must not contain user information';
    return undefined;
  }
  if (url.protocol === 'urn:') return /^urn:[a-z0-9][a-z0-9-]{0,31}:\S+$/i.test(value) ? undefined : 'is not a valid URN';
  return 'must be an https, http or urn URI';
}

export interface ScopeCheck {
  organizationId: string;
  scopes: string[];
  resources: string[];
  /**
   * The most Management API power the client may get from whoever makes it: an initial access
   * token's (none). Absent for Management API callers, whose ceiling the authority module
   * (src/domain/authority.ts) checks, answering 403 rather than a field problem.
   */
  principalScopes?: ReadonlySet<string>;
  /** Where to name problems: `scopes`/`resources` in the Management API, `scope`/`resources` in RFC 7591. */
  fields?: { scopes: string; resources: string };
  findResourceServer(identifier: string): Promise<ResourceServer | undefined>;
}

/** Checks a client's resources and scopes; returns every problem, each naming its field. */
export async function checkScopesAndResources(input: ScopeCheck): Promise<FieldProblem[]> {
  const fields = input.fields ?? { scopes: 'scopes', resources: 'resources' };
  const problems: FieldProblem[] = [];
  const available = new Set<string>(OPENID_SCOPES);
  let management = false;
  for (const [i, identifier] of input.resources.entries()) {
    if (identifier === MANAGEMENT_AUDIENCE) {
      management = true;
      continue;
    }
    const rs = await input.findResourceServer(identifier);
    // Another organization's API is indistinguishable from one that does not exist (docs/design.md, "Least privilege per tenant").
    if (!rs || rs.organization_id !== input.organizationId) {
      problems.push({ field: `${fields.resources}.${i}`, message: 'no such resource server in this organization' });
      continue;
    }
    for (const scope of rs.scopes) available.add(scope.name);
  }
  for (const [i, scope] of input.scopes.entries()) {
    const field = `${fields.scopes}.${i}`;
    if (scope === PLATFORM_SCOPE) {
      problems.push({ field, message: `${PLATFORM_SCOPE} cannot be given to a client` });
    } else if (isManagementScope(scope)) {
      // Checked whatever a resource server calls its own scopes: a same-named scope must not
      // smuggle Management API power into a client.
      if (!management && !available.has(scope)) problems.push({ field, message: `Management API scopes need ${MANAGEMENT_AUDIENCE} in resources` });
      else if (management && input.principalScopes && !input.principalScopes.has(scope)) problems.push({ field, message: 'exceeds the scopes of the caller' });
    } else if (!available.has(scope)) {
      problems.push({ field, message: 'is neither an OpenID scope nor a scope of the listed resources' });
    }
  }
  return problems;
}

/** Cross-field rules of grant types, authentication method, redirect URIs and keys. */
export function checkClientShape(input: {
  grant_types: string[];
  token_endpoint_auth_method: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  jwks?: unknown;
  jwks_uri?: string;
}): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const grants = new Set(input.grant_types);
  const method = input.token_endpoint_auth_method;
  if (method === 'none' && grants.has('client_credentials')) {
    problems.push({ field: 'grant_types', message: 'client_credentials needs a confidential client (RFC 6749 §4.4)' });
  }
  if (method === 'none' && grants.has(TOKEN_EXCHANGE_GRANT)) {
    problems.push({ field: 'grant_types', message: 'token exchange needs a confidential client: it turns a token into another, so the caller must prove who it is' });
  }
  if (grants.has('refresh_token') && !grants.has('authorization_code') && !grants.has(DEVICE_CODE_GRANT)) {
    problems.push({ field: 'grant_types', message: 'refresh_token needs authorization_code or the device code grant' });
  }
  if (grants.has('authorization_code') && input.redirect_uris.length === 0) {
    problems.push({ field: 'redirect_uris', message: 'authorization_code needs at least one redirect URI' });
  }
  if (!grants.has('authorization_code') && input.redirect_uris.length > 0) {
    problems.push({ field: 'redirect_uris', message: 'redirect URIs are only used by the authorization_code grant' });
  }
  for (const field of ['redirect_uris', 'post_logout_redirect_uris'] as const) {
    for (const [i, uri] of (input[field] ?? []).entries()) {
      const problem = redirectUriProblem(uri);
      if (problem) problems.push({ field: `${field}.${i}`, message: problem });
    }
  }
  if (method === 'private_key_jwt') {
    if (input.jwks === undefined && input.jwks_uri === undefined) problems.push({ field: 'jwks', message: 'private_key_jwt needs jwks (preferred) or jwks_uri' });
    if (input.jwks !== undefined && input.jwks_uri !== undefined) problems.push({ field: 'jwks_uri', message: 'give jwks or jwks_uri, not both' });
  } else {
    if (input.jwks !== undefined) problems.push({ field: 'jwks', message: 'only private_key_jwt clients have keys' });
    if (input.jwks_uri !== undefined) problems.push({ field: 'jwks_uri', message: 'only private_key_jwt clients have keys' });
  }
  if (input.jwks !== undefined) {
    const keys = (input.jwks as { keys?: unknown }).keys;
    if (!Array.isArray(keys) || keys.length === 0) problems.push({ field: 'jwks.keys', message: 'must be a non-empty array of JWKs' });
    else {
      keys.forEach((key, i) => {
        if (typeof key !== 'object' || key === null || typeof (key as { kty?: unknown }).kty !== 'string') problems.push({ field: `jwks.keys.${i}`, message: 'is not a JWK' });
        else if (['d', 'p', 'q', 'k'].some((member) => member in key)) problems.push({ field: `jwks.keys.${i}`, message: 'must be a public key (private or symmetric key material found)' });
      });
    }
  }
  if (input.jwks_uri !== undefined) {
    try {
      if (new URL(input.jwks_uri).protocol !== 'https:') problems.push({ field: 'jwks_uri', message: 'must use https' });
    } catch {
      problems.push({ field: 'jwks_uri', message: 'must be an absolute URI' });
    }
  }
  return problems;
}

/** oidc-provider metadata of a client (RFC 7591 names) from the Management API's fields. */
export function engineMetadata(input: {
  grant_types: string[];
  token_endpoint_auth_method: string;
  redirect_uris: string[];
  jwks?: unknown;
  jwks_uri?: string;
  /** RFC 8705 §3.4: access tokens bound to the client's TLS certificate (src/oidc/mtls.ts). */
  tls_client_certificate_bound_access_tokens?: boolean;
}): Record<string, unknown> {
  return {
    grant_types: input.grant_types,
    response_types: input.grant_types.includes('authorization_code') ? ['code'] : [],
    redirect_uris: input.redirect_uris,
    token_endpoint_auth_method: input.token_endpoint_auth_method,
    ...(input.jwks !== undefined ? { jwks: input.jwks } : {}),
    ...(input.jwks_uri !== undefined ? { jwks_uri: input.jwks_uri } : {}),
    ...(input.tls_client_certificate_bound_access_tokens === true ? { tls_client_certificate_bound_access_tokens: true } : {}),
  };
}

/**
 * RFC 9701 §5 / RFC 7591 §2: how a resource server's introspection client wants a JWT
 * introspection answer. Signing: the algorithms Tessera holds keys for (src/keys). Encryption:
 * the asymmetric key-management algorithms, to a public key the API registers; the symmetric ones
 * (`dir`, `A*KW`) would derive a key from the client secret, which Tessera does not offer.
 */
export const INTROSPECTION_SIGNING_ALGS = ['RS256', 'ES256'] as const;
export const INTROSPECTION_ENCRYPTION_ALGS = ['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES'] as const;
export const INTROSPECTION_ENCRYPTION_ENCS = ['A128CBC-HS256', 'A128GCM', 'A256CBC-HS512', 'A256GCM'] as const;

export interface IntrospectionResponseSettings {
  introspection_signed_response_alg?: string;
  introspection_encrypted_response_alg?: string;
  introspection_encrypted_response_enc?: string;
  /** The public keys the answer is encrypted to (the client's `jwks`). */
  introspection_jwks?: unknown;
}

/** The key type an encryption algorithm needs (RFC 7518 §4.3, §4.6). */
export const encryptionKeyType = (alg: string) => (alg.startsWith('RSA') ? ['RSA'] : ['EC', 'OKP']);

/** A registered key the answer may be encrypted to with `alg`: its type fits, and its `use` and `alg`, when set, allow it. */
export const isEncryptionKeyFor = (alg: string) => (key: { kty?: unknown; use?: unknown; alg?: unknown }) =>
  encryptionKeyType(alg).includes(String(key.kty)) && (key.use === undefined || key.use === 'enc') && (key.alg === undefined || key.alg === alg);

/** Cross-field rules of the settings above; every problem names its field. */
export function checkIntrospectionResponse(input: IntrospectionResponseSettings): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const alg = input.introspection_encrypted_response_alg;
  if (input.introspection_encrypted_response_enc !== undefined && alg === undefined) {
    problems.push({ field: 'introspection_encrypted_response_enc', message: 'needs introspection_encrypted_response_alg (RFC 9701 §5)' });
  }
  if (alg === undefined) {
    if (input.introspection_jwks !== undefined) problems.push({ field: 'introspection_jwks', message: 'keys are only used to encrypt answers: set introspection_encrypted_response_alg' });
    return problems;
  }
  const keys = (input.introspection_jwks as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    problems.push({ field: 'introspection_jwks', message: 'encrypted answers need the public keys to encrypt them to ({"keys": [...]})' });
    return problems;
  }
  keys.forEach((key, i) => {
    if (typeof key !== 'object' || key === null || typeof (key as { kty?: unknown }).kty !== 'string') problems.push({ field: `introspection_jwks.keys.${i}`, message: 'is not a JWK' });
    else if (['d', 'p', 'q', 'k'].some((member) => member in key)) problems.push({ field: `introspection_jwks.keys.${i}`, message: 'must be a public key (private or symmetric key material found)' });
  });
  if (problems.length === 0 && !keys.some(isEncryptionKeyFor(alg))) {
    problems.push({ field: 'introspection_jwks', message: `no key fits ${alg} (${encryptionKeyType(alg).join(' or ')}, use "enc")` });
  }
  return problems;
}

/** The engine's metadata members (RFC 7591 / RFC 9701 names) for the settings above. */
export function introspectionResponseMetadata(input: IntrospectionResponseSettings): Record<string, unknown> {
  return {
    ...(input.introspection_signed_response_alg !== undefined ? { introspection_signed_response_alg: input.introspection_signed_response_alg } : {}),
    ...(input.introspection_encrypted_response_alg !== undefined
      ? {
          introspection_encrypted_response_alg: input.introspection_encrypted_response_alg,
          // RFC 9701 §5: the content encryption defaults to A128CBC-HS256.
          introspection_encrypted_response_enc: input.introspection_encrypted_response_enc ?? 'A128CBC-HS256',
          jwks: input.introspection_jwks,
        }
      : {}),
  };
}
