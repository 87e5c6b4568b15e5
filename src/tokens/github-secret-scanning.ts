import { createPublicKey, hash, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

import type { Clock } from '../clock.js';
import type { Logger } from '../http/logger.js';
import type { CacheStore } from '../storage/cache.js';

/**
 * GitHub's secret-scanning partner reports (docs/leaked-tokens.md): GitHub posts the Tessera
 * tokens it found in public code, signed with ECDSA P-256 over SHA-256 of the exact body bytes.
 * `Github-Public-Key-Identifier` names the key, `Github-Public-Key-Signature` carries the
 * signature (base64 of its DER form). The keys come from a URL (GitHub's
 * `meta/public_keys/secret_scanning`, `{"public_keys":[{"key_identifier","key","is_current"}]}`),
 * fetched through the outbound guard (src/outbound/outbound-guard.ts), kept for a while, and
 * fetched again once when a report names a key that is not known, so a key GitHub rotated in
 * is picked up at once while made-up key ids cannot make Tessera fetch on every request.
 */
export type SignatureVerdict = 'valid' | 'invalid' | 'unknown_key';

/** The key list could not be fetched or read: the report can be neither accepted nor refused now. */
export class PartnerKeysUnavailableError extends Error {
  override name = 'PartnerKeysUnavailableError';
}

export interface GithubScanningDependencies {
  keysUrl: string;
  /** The outbound guard's fetch: the key URL is refused if it leads to an internal address. */
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  clock: Clock;
  logger: Logger;
  /** Remembers each verified report for `replayWindowSeconds`, on every node. */
  cache: CacheStore;
  /** How long a fetched key list is used before it is fetched again. */
  keysCacheSeconds: number;
  /** The shortest time between two fetches caused by an unknown key id. */
  refetchIntervalSeconds: number;
  replayWindowSeconds: number;
}

/** A key list larger than this is not GitHub's. */
const MAX_KEY_LIST_BYTES = 256 * 1024;
const FETCH_TIMEOUT_MS = 5000;

export function createGithubScanning(deps: GithubScanningDependencies) {
  const { clock, logger } = deps;
  let keys = new Map<string, KeyObject>();
  let fetchedAt = -Infinity;
  let loading: Promise<void> | undefined;

  async function fetchKeys(): Promise<void> {
    let response: Response;
    try {
      response = await deps.fetch(deps.keysUrl, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (error) {
      throw new PartnerKeysUnavailableError(`the secret-scanning key list could not be fetched: ${(error as Error).message}`);
    }
    const text = await response.text().catch(() => '');
    if (response.status !== 200 || text.length > MAX_KEY_LIST_BYTES) throw new PartnerKeysUnavailableError(`the secret-scanning key list answered ${response.status}`);
    let list: unknown;
    try {
      list = (JSON.parse(text) as { public_keys?: unknown }).public_keys;
    } catch {
      throw new PartnerKeysUnavailableError('the secret-scanning key list is not JSON');
    }
    if (!Array.isArray(list)) throw new PartnerKeysUnavailableError('the secret-scanning key list has no public_keys');
    const next = new Map<string, KeyObject>();
    for (const entry of list as { key_identifier?: unknown; key?: unknown }[]) {
      if (typeof entry?.key_identifier !== 'string' || typeof entry.key !== 'string') continue;
      try {
        const key = createPublicKey(entry.key);
        // Only what the partner program signs with: ECDSA on P-256.
        if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') next.set(entry.key_identifier, key);
      } catch {
        logger.warn({ keyId: entry.key_identifier }, 'ignored an unreadable secret-scanning public key');
      }
    }
    keys = next;
    fetchedAt = clock.now();
  }

  /** One fetch at a time; callers arriving meanwhile wait for it. */
  function refresh(): Promise<void> {
    loading ??= fetchKeys().finally(() => {
      loading = undefined;
    });
    return loading;
  }

  return {
    /** Whether `signature` (base64 DER) by key `keyId` signs `body`. Throws PartnerKeysUnavailableError when no key list can be had. */
    async verify(body: Buffer, keyId: string, signature: string): Promise<SignatureVerdict> {
      if (clock.now() - fetchedAt > deps.keysCacheSeconds * 1000) await refresh();
      let key = keys.get(keyId);
      if (!key && clock.now() - fetchedAt >= deps.refetchIntervalSeconds * 1000) {
        await refresh();
        key = keys.get(keyId);
      }
      if (!key) return 'unknown_key';
      try {
        return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64')) ? 'valid' : 'invalid';
      } catch {
        return 'invalid';
      }
    },
    /**
     * True the first time a verified body is seen (within the replay window, on any node). A
     * report carries no time or nonce of its own, so the body is what identifies it: the same
     * bytes again are a replay (or a retry of a report already acted on).
     */
    async firstDelivery(body: Buffer): Promise<boolean> {
      return deps.cache.setIfAbsent(`leak-report:github:${hash('sha256', body, 'base64url')}`, '1', deps.replayWindowSeconds);
    },
  };
}
export type GithubScanning = ReturnType<typeof createGithubScanning>;
