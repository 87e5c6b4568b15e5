import { errors } from 'oidc-provider';

import { CacheUnavailableError } from '../storage/cache.js';
import { StorageUnavailableError } from '../storage/database.js';

/**
 * The engine's form of "a dependency is down": 503 `temporarily_unavailable`, exposed to the
 * client so it knows to retry, instead of the engine's generic 500 server_error. The adapter
 * throws it whenever PostgreSQL or Redis cannot be reached, so no answer is ever a guess.
 */
export class TemporarilyUnavailable extends errors.OIDCProviderError {
  constructor(cause: Error) {
    super(503, 'temporarily_unavailable', { cause });
    this.expose = true;
    this.error_description = 'the service is temporarily unavailable, retry later';
  }
}

export function isDependencyFailure(error: unknown): error is Error {
  return error instanceof StorageUnavailableError || error instanceof CacheUnavailableError;
}

/** Runs `fn`, turning a dependency failure into TemporarilyUnavailable for the engine. */
export async function engineSafe<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isDependencyFailure(error)) throw new TemporarilyUnavailable(error);
    throw error;
  }
}
