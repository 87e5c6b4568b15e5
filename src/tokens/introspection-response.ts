import { CompactEncrypt, importJWK } from 'jose';
import type { JWK } from 'jose';

import type { Clock } from '../clock.js';
import { epochSeconds } from '../clock.js';
import { isEncryptionKeyFor } from '../domain/client-policy.js';
import type { EngineClientMetadata } from '../domain/client-metadata.js';
import { invalidRequest } from '../http/oauth-error.js';
import type { KeyRing } from '../keys/key-ring.js';
import type { IntrospectionAnswer } from './introspection.js';

export const JWT_RESPONSE = 'application/token-introspection+jwt';

/**
 * RFC 9701 answers, as the engine gives them for the tokens it answers itself
 * (node_modules/oidc-provider/lib/actions/introspection.js, `jwtIntrospectionResponse`):
 * - a JWT when the caller asks for one (`Accept`), signed with the calling client's registered
 *   `introspection_signed_response_alg` (RS256 when it registered none), `typ`
 *   `token-introspection+jwt` (RFC 9701 §5), `iss` the issuer, `aud` the caller, `iat`, and the
 *   answer in `token_introspection`;
 * - encrypted (a nested JWT, `cty: JWT`) to the client's registered key when it registered
 *   `introspection_encrypted_response_alg`, with `iss` and `aud` repeated in the JWE header;
 * - a client that registered encryption must ask for a JWT: a plain JSON answer would give away
 *   what it wanted kept confidential (RFC 9701 §5), so it is refused with invalid_request.
 */
export interface ResponseClient {
  clientId: string;
  metadata: EngineClientMetadata;
}

export const encryptsAnswers = (metadata: EngineClientMetadata) => typeof metadata.introspection_encrypted_response_alg === 'string';

/** Refuses a JSON request from a client registered for encrypted answers; checked before the token is looked up, where the engine checks it. */
export function checkAccept(client: ResponseClient, wantsJwt: boolean): void {
  if (!wantsJwt && encryptsAnswers(client.metadata)) throw invalidRequest(`introspection must be requested with Accept: ${JWT_RESPONSE} for this client`);
}

export function createIntrospectionResponder(deps: { issuer: string; keys: Pick<KeyRing, 'sign'>; clock: Clock }) {
  const { issuer, keys, clock } = deps;

  async function encrypt(signed: string, client: ResponseClient): Promise<string> {
    const alg = String(client.metadata.introspection_encrypted_response_alg);
    // RFC 9701 §5 / RFC 7591 §2: A128CBC-HS256 when only the algorithm is registered.
    const enc = typeof client.metadata.introspection_encrypted_response_enc === 'string' ? client.metadata.introspection_encrypted_response_enc : 'A128CBC-HS256';
    const registered = (client.metadata.jwks as { keys?: JWK[] } | undefined)?.keys ?? [];
    const jwk = registered.find(isEncryptionKeyFor(alg));
    // The Management API refuses settings without a fitting key (src/domain/client-policy.ts).
    if (!jwk) throw new Error(`client ${client.clientId} has no key for ${alg}`);
    const key = await importJWK(jwk, alg);
    return new CompactEncrypt(new TextEncoder().encode(signed))
      .setProtectedHeader({ alg, enc, cty: 'JWT', ...(jwk.kid !== undefined ? { kid: jwk.kid } : {}), iss: issuer, aud: client.clientId })
      .encrypt(key);
  }

  /** The JWT (or JWE) answer for `client`. */
  async function render(answer: IntrospectionAnswer, client: ResponseClient): Promise<string> {
    const registeredAlg = client.metadata.introspection_signed_response_alg;
    const alg = registeredAlg === 'ES256' ? 'ES256' : 'RS256';
    const signed = await keys.sign({ iss: issuer, aud: client.clientId, iat: epochSeconds(clock), token_introspection: answer }, { alg, typ: 'token-introspection+jwt' });
    return encryptsAnswers(client.metadata) ? encrypt(signed, client) : signed;
  }

  return { render };
}
export type IntrospectionResponder = ReturnType<typeof createIntrospectionResponder>;
