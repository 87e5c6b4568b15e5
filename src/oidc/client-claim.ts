import { decodeJwt } from 'jose';

import { parseBasic } from './client-authenticator.js';

/**
 * What a request to a token endpoint says about its client before anything is verified: the
 * client id it names and the secret it presents. Rate limits and audit attribution key on it;
 * only the authenticator (src/oidc/client-authenticator.ts) or the engine decides whether it is
 * true.
 */
export interface ClientClaim {
  /** The Basic user name (RFC 6749 §2.3.1), the `client_id` form member, or the `iss` of a client assertion (RFC 7523 §3). */
  clientId: string | undefined;
  /** The Basic password or the `client_secret` form member, when one was presented. */
  secret: string | undefined;
}

/**
 * The user name of a Basic authorization header (RFC 6749 §2.3.1: form-encoded), read leniently
 * because it only names the client: a string, or undefined when it is not decodable, or null
 * when the header has no `:` (then the form decides).
 */
export function basicClientId(authorization: string): string | undefined | null {
  const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

export function clientClaim(authorization: string | undefined, params: URLSearchParams | undefined): ClientClaim {
  if (authorization !== undefined && /^basic /i.test(authorization)) {
    // Decoded as the authenticator and the engine decode it, so a secret that matches here matches there.
    const basic = parseBasic(authorization);
    if (basic) return { clientId: basic.id, secret: basic.secret };
    const named = basicClientId(authorization);
    if (named !== null) return { clientId: named, secret: undefined };
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
