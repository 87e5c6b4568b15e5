import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
// oidc-provider binds its grant helpers (DPoP proof validation, replay detection, sender
// constraints) only to its built-in grants; `registerGrantType` hands a custom grant the context
// alone. A grant Tessera registers (src/oidc/token-exchange.ts) must treat a DPoP proof exactly as
// the built-in ones do, so it calls the same helpers; this file is the one place that knows
// where they live in the engine, and what they take.
// @ts-expect-error: an internal module of the engine, without type declarations
import validateDpopInternal, { checkDpopReplay as checkDpopReplayInternal } from 'oidc-provider/lib/helpers/validate_dpop.js';
// @ts-expect-error: as above
import { checkDpopRequired as checkDpopRequiredInternal } from 'oidc-provider/lib/helpers/sender_constraints.js';

/** A verified DPoP proof (RFC 9449 §4.3): the JWK thumbprint of its key, and its `jti` and `iat`. */
export interface DpopProof {
  thumbprint: string;
  jti: string;
  iat: number;
}

export interface EngineGrantHelpers {
  /** Validates the request's DPoP proof (signature, `typ`, `htm`, `htu`, `iat`, nonce), or undefined without one. */
  validateDpop(ctx: KoaContextWithOIDC): Promise<DpopProof | undefined>;
  /** Refuses a proof whose `jti` was seen before for this client (RFC 9449 §11.1), as every built-in grant does. */
  checkDpopReplay(ctx: KoaContextWithOIDC, proof: DpopProof | undefined): Promise<void>;
  /** Refuses a request without a proof from a client registered `dpop_bound_access_tokens`. */
  checkDpopRequired(ctx: KoaContextWithOIDC, proof: DpopProof | undefined): void;
}

export function engineGrantHelpers(provider: Provider): EngineGrantHelpers {
  return {
    validateDpop: (ctx) => validateDpopInternal(provider, ctx) as Promise<DpopProof | undefined>,
    checkDpopReplay: (ctx, proof) => checkDpopReplayInternal(provider, ctx, proof, ctx.oidc.client!.clientId) as Promise<void>,
    checkDpopRequired: (ctx, proof) => checkDpopRequiredInternal(provider, ctx, proof) as void,
  };
}
