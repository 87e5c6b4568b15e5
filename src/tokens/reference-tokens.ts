import type { Clock } from '../clock.js';
import type { Queryable } from '../storage/database.js';
import { newId } from '../storage/ids.js';
import type { ReferenceTokenRepository, ReferenceTokenRow } from '../storage/reference-token-repository.js';
import { generateToken, hashToken } from './format.js';

/** Issuing PATs and SATs. The secret exists in memory once, is returned to the caller, and only its SHA-256 is stored. */
export interface IssueReferenceToken {
  organizationId: string;
  type: 'pat' | 'sat';
  name: string;
  userId?: string;
  serviceAccountId?: string;
  scopes: string[];
  resources: string[];
  expiresInSeconds: number;
  createdBy: string;
  pair?: boolean;
  /** Constraints (src/domain/token-constraints.ts). */
  notBefore?: Date;
  allowedIps?: string[];
  /** Key binding: the RFC 7638 thumbprint of the DPoP key the token is bound to (docs/tokens.md). */
  jkt?: string;
}

export interface IssuedReferenceToken {
  row: ReferenceTokenRow;
  token: string;
  rotationKey?: string;
}

export function createReferenceTokenIssuer(deps: { tokens: ReferenceTokenRepository; clock: Clock }) {
  return {
    async issue(input: IssueReferenceToken, q?: Queryable): Promise<IssuedReferenceToken> {
      const token = generateToken(input.type);
      const rotationKey = input.pair ? generateToken('rk') : undefined;
      const now = new Date(deps.clock.now());
      const row = await deps.tokens.insert(
        {
          id: newId('tok'),
          organization_id: input.organizationId,
          type: input.type,
          name: input.name,
          user_id: input.userId ?? null,
          service_account_id: input.serviceAccountId ?? null,
          scopes: input.scopes,
          resources: input.resources,
          secret_hash: hashToken(token),
          rotation_key_hash: rotationKey ? hashToken(rotationKey) : null,
          created_by: input.createdBy,
          expires_at: new Date(now.getTime() + input.expiresInSeconds * 1000),
          not_before: input.notBefore ?? null,
          allowed_ips: input.allowedIps ?? null,
          cnf_jkt: input.jkt ?? null,
          now,
        },
        q,
      );
      return { row, token, rotationKey };
    },
  };
}
export type ReferenceTokenIssuer = ReturnType<typeof createReferenceTokenIssuer>;
