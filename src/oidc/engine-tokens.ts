import type Provider from 'oidc-provider';

import type { EngineGrant, OpaqueAccessToken, OpaqueTokenSource } from '../tokens/introspection.js';
import { TemporarilyUnavailable } from './unavailable.js';

/**
 * Opaque access tokens as oidc-provider's own models know them: `AccessToken.find` and
 * `ClientCredentials.find` (the lookups of the engine's introspection,
 * node_modules/oidc-provider/lib/helpers/token_find.js), `Grant.find` for the grant a token was
 * issued under, and the model's `destroy` for revocation. Nothing here reads the adapter's
 * storage layout: the engine decides what a stored token means (its payload fields, its session
 * binding, its sender constraint), and Tessera's introspection applies its rules to that.
 *
 * A model instance carries the fields of OpaqueAccessToken, plus what the model computes.
 */
type EngineToken = Omit<OpaqueAccessToken, 'extra' | 'cnf' | 'kind'> & {
  kind: string;
  extra?: Record<string, unknown>;
  jkt?: string;
  'x5t#S256'?: string;
  isSenderConstrained(): boolean;
  destroy(): Promise<void>;
};

/** RFC 7800 §3.1 / RFC 9449 §6.1 / RFC 8705 §3.1: the confirmation a sender-constrained token carries. */
function confirmation(token: EngineToken): Record<string, string> | undefined {
  if (!token.isSenderConstrained()) return undefined;
  return { ...(token['x5t#S256'] ? { 'x5t#S256': token['x5t#S256'] } : {}), ...(token.jkt ? { jkt: token.jkt } : {}) };
}

/**
 * The adapter turns a storage outage into the engine's TemporarilyUnavailable (src/oidc/unavailable.ts),
 * which the engine renders itself. Tessera's endpoints render errors with their own handler, which
 * knows the storage error underneath: hand that on, so an outage stays 503 temporarily_unavailable.
 */
async function outsideTheEngine<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof TemporarilyUnavailable && error.cause instanceof Error) throw error.cause;
    throw error;
  }
}

export function createEngineTokens(deps: { provider: () => Provider }): OpaqueTokenSource {
  /** Both models, as the engine's introspection asks them; expiry is judged by the caller on Tessera's clock. */
  async function load(token: string): Promise<EngineToken | undefined> {
    const provider = deps.provider();
    const [access, credentials] = await outsideTheEngine(() => Promise.all([
      provider.AccessToken.find(token, { ignoreExpiration: true }),
      provider.ClientCredentials.find(token, { ignoreExpiration: true }),
    ]));
    return (access ?? credentials) as unknown as EngineToken | undefined;
  }

  return {
    async find(token) {
      const found = await load(token);
      if (!found) return undefined;
      const answer: OpaqueAccessToken = {
        kind: found.kind as OpaqueAccessToken['kind'],
        clientId: found.clientId,
        accountId: found.accountId,
        grantId: found.grantId,
        aud: found.aud,
        scope: found.scope,
        exp: found.exp,
        iat: found.iat,
        sid: found.sid,
        extra: found.extra ?? {},
        cnf: confirmation(found),
      };
      return answer;
    },
    async grant(grantId) {
      const grant = await outsideTheEngine(() => deps.provider().Grant.find(grantId, { ignoreExpiration: true }));
      return grant ? ({ clientId: grant.clientId, accountId: grant.accountId, exp: grant.exp } as EngineGrant) : undefined;
    },
    async destroy(token) {
      const found = await load(token);
      if (found) await outsideTheEngine(() => found.destroy());
    },
  };
}
