import { importJWK, SignJWT } from 'jose';
import type { JSONWebKeySet, JWK, JWTPayload } from 'jose';

import type { KeyService, KeySet } from './key-service.js';

/**
 * The keys this node is using right now. Rotation happens in the database (any node, or the
 * CLI); every node reloads on a pub/sub announcement and on a timer, and calls `onChange` so the
 * provider is rebuilt with the new set. Verification always uses the whole published set.
 */
export function createKeyRing(service: KeyService, initial: KeySet) {
  let current = initial;
  const signers = new Map<string, Promise<{ key: CryptoKey | Uint8Array; kid: string }>>();
  const listeners = new Set<(set: KeySet) => void>();

  return {
    get current(): KeySet {
      return current;
    },
    publicJwks(): JSONWebKeySet {
      return current.publicJwks as JSONWebKeySet;
    },
    /** Reloads from storage; true when the set changed. */
    async reload(): Promise<boolean> {
      const next = await service.load();
      if (next.version === current.version) return false;
      current = next;
      signers.clear();
      for (const listener of listeners) listener(next);
      return true;
    },
    onChange(listener: (set: KeySet) => void): void {
      listeners.add(listener);
    },
    /** Signs with the current key of `alg` (the first of that alg in the private set). */
    async sign(payload: JWTPayload, options: { alg: 'ES256' | 'RS256'; typ: string }): Promise<string> {
      let signer = signers.get(options.alg);
      if (!signer) {
        const jwk = current.privateJwks.keys.find((k: JWK) => k.alg === options.alg);
        if (!jwk) throw new Error(`no ${options.alg} signing key`);
        signer = importJWK(jwk, options.alg).then((key) => ({ key, kid: jwk.kid! }));
        signers.set(options.alg, signer);
      }
      const { key, kid } = await signer;
      return new SignJWT(payload).setProtectedHeader({ alg: options.alg, typ: options.typ, kid }).sign(key);
    },
  };
}
export type KeyRing = ReturnType<typeof createKeyRing>;
