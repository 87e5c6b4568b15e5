import { createHash } from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';

import type { Clock } from '../clock.js';
import type { SigningKeyRepository, SigningKeyRow } from '../storage/signing-key-repository.js';
import type { Envelope } from './envelope.js';

/**
 * Signing keys. ES256 signs access tokens (RFC 9068 allows any JWS alg; ES256 is small and
 * fast), RS256 signs ID tokens because OpenID Connect Core §15.1 requires RS256 support.
 *
 * Rotation follows the usual three steps so no verifier ever meets an unknown `kid`:
 *   1. stage: a `next` key is published in /jwks but does not sign;
 *   2. promote (once it has been published for `publishBeforeSignSeconds`): it signs, and the
 *      old key becomes `retired`;
 *   3. a retired key stays published until every token it signed has expired
 *      (`maxTokenLifetimeSeconds`), then it is removed.
 */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export interface KeySet {
  /** Private JWKS for oidc-provider: per alg the current key first, so it is the one that signs. */
  privateJwks: { keys: JWK[] };
  publicJwks: { keys: JWK[] };
  /** Changes whenever the published set or the signing keys change. */
  version: string;
}

export interface RotationStep {
  alg: string;
  action: 'staged' | 'promoted' | 'waiting';
  kid: string;
  /** For 'waiting': when the staged key may be promoted. */
  notBefore?: string;
}

export interface KeyServiceOptions {
  repository: SigningKeyRepository;
  envelope: Envelope;
  clock: Clock;
  publishBeforeSignSeconds: number;
  maxTokenLifetimeSeconds: number;
}

async function generate(alg: SigningAlg): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg, use: 'sig' };
  return { kid, publicJwk: { ...publicJwk, ...meta }, privateJwk: { ...(await exportJWK(privateKey)), ...meta } };
}

export function createKeyService(options: KeyServiceOptions) {
  const { repository, envelope, clock } = options;
  const now = () => new Date(clock.now());
  const context = (kid: string) => `signing-key:${kid}`;

  async function stage(alg: SigningAlg, state: 'next' | 'current'): Promise<string> {
    const key = await generate(alg);
    await repository.insert(
      { kid: key.kid, alg, state, public_jwk: key.publicJwk, private_jwk_enc: envelope.seal(JSON.stringify(key.privateJwk), context(key.kid)) },
      now(),
    );
    return key.kid;
  }

  function toKeySet(rows: SigningKeyRow[]): KeySet {
    const privateKeys = rows.map((row) => JSON.parse(envelope.open(row.private_jwk_enc, context(row.kid))) as JWK);
    const version = createHash('sha256').update(rows.map((r) => `${r.kid}:${r.state}`).join(',')).digest('base64url');
    return {
      privateJwks: { keys: privateKeys },
      publicJwks: { keys: rows.map((row) => row.public_jwk as JWK) },
      version,
    };
  }

  return {
    /** First start: make sure each algorithm has a current key. Safe when nodes start together. */
    async ensureKeys(): Promise<void> {
      const rows = await repository.listPublished(now());
      for (const alg of SIGNING_ALGS) {
        if (!rows.some((r) => r.alg === alg && r.state === 'current')) await stage(alg, 'current');
      }
    },

    async load(): Promise<KeySet> {
      return toKeySet(await repository.listPublished(now()));
    },

    /**
     * One rotation step per algorithm: stage a key if none is staged; promote the staged key once
     * it has been published long enough (or at once with `force`, for a suspected compromise).
     */
    async rotate(opts: { force?: boolean } = {}): Promise<RotationStep[]> {
      const rows = await repository.listPublished(now());
      const steps: RotationStep[] = [];
      for (const alg of SIGNING_ALGS) {
        const staged = rows.find((r) => r.alg === alg && r.state === 'next');
        if (!staged) {
          steps.push({ alg, action: 'staged', kid: await stage(alg, 'next') });
          continue;
        }
        const notBefore = staged.created_at.getTime() + options.publishBeforeSignSeconds * 1000;
        if (opts.force || clock.now() >= notBefore) {
          await repository.promote(alg, staged.kid, now(), new Date(clock.now() + options.maxTokenLifetimeSeconds * 1000));
          steps.push({ alg, action: 'promoted', kid: staged.kid });
        } else {
          steps.push({ alg, action: 'waiting', kid: staged.kid, notBefore: new Date(notBefore).toISOString() });
        }
      }
      await repository.deleteRemoved(now());
      return steps;
    },
  };
}

export type KeyService = ReturnType<typeof createKeyService>;
