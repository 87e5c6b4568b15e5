import { hash } from 'node:crypto';

import { ProblemError } from '../http/middleware.js';
import type { Envelope } from '../keys/envelope.js';
import type { CacheStore } from '../storage/cache.js';

/**
 * Idempotency-Key (the IETF httpapi draft "The Idempotency-Key HTTP Header Field") for calls that
 * hand out a new secret: a rotation retried after a lost answer must return the secret the first
 * call made, not make a third one (and, with a rotation key, not look like a stolen key being
 * reused). The first answer is kept in the cache store, shared by every node, for `ttlSeconds`,
 * encrypted with the KEK (it holds a secret) and bound to what the caller is acting on (`scope`:
 * the caller and the credential) and to the request's own content: the same key with another
 * request is 422, a retry while the first call is still running 409.
 */
export interface Idempotency {
  /** Runs `produce` once per (scope, key); a repeat gets the first answer back. Without a key, just runs it. */
  run<T>(scope: string, key: string | undefined, fingerprint: string, produce: () => Promise<T>): Promise<T>;
}

const IN_PROGRESS = 'in-progress';
/** How long a first call may take before a retry may run it again. */
const IN_PROGRESS_SECONDS = 60;
/** RFC 9110 field value: visible ASCII; long enough for a UUID or a ULID and then some. */
const KEY_SYNTAX = /^[\x21-\x7e]{1,255}$/;

export function createIdempotency(deps: { cache: CacheStore; envelope: Envelope; ttlSeconds: number }): Idempotency {
  const context = (id: string) => `idempotency:${id}`;

  function replay<T>(stored: string, id: string, fingerprint: string): T {
    if (stored === IN_PROGRESS) throw new ProblemError(409, 'Conflict', 'a request with this Idempotency-Key is still being processed; retry shortly');
    const record = JSON.parse(deps.envelope.open(stored, context(id))) as { fingerprint: string; value: T };
    if (record.fingerprint !== fingerprint) {
      throw new ProblemError(422, 'Unprocessable Content', 'this Idempotency-Key was used for a different request', { errors: [{ field: 'Idempotency-Key', message: 'already used for a different request' }] });
    }
    return record.value;
  }

  return {
    async run(scope, key, fingerprint, produce) {
      if (key === undefined) return produce();
      if (!KEY_SYNTAX.test(key)) throw new ProblemError(400, 'Bad Request', 'Idempotency-Key must be 1 to 255 visible ASCII characters', { errors: [{ field: 'Idempotency-Key', message: 'invalid' }] });
      const id = hash('sha256', `${scope}\u0000${key}`, 'base64url');
      const cacheKey = `idempotency:${id}`;
      const existing = await deps.cache.get(cacheKey);
      if (existing !== null) return replay(existing, id, fingerprint);
      if (!(await deps.cache.setIfAbsent(cacheKey, IN_PROGRESS, IN_PROGRESS_SECONDS))) {
        const raced = await deps.cache.get(cacheKey);
        if (raced !== null) return replay(raced, id, fingerprint);
      }
      let value: Awaited<ReturnType<typeof produce>>;
      try {
        value = await produce();
      } catch (error) {
        // Nothing was handed out: a retry may try again.
        await deps.cache.del(cacheKey).catch(() => {});
        throw error;
      }
      await deps.cache.set(cacheKey, deps.envelope.seal(JSON.stringify({ fingerprint, value }), context(id)), deps.ttlSeconds);
      return value;
    },
  };
}
