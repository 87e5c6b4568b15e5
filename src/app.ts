import { openDirectory } from './app/directory.js';
import { openEngine } from './app/engine.js';
import { openFoundation } from './app/foundation.js';
import type { FoundationOptions } from './app/foundation.js';
import { buildHttp } from './app/http.js';
import { startJobs } from './app/jobs.js';
import { buildManagementApi } from './app/management.js';
import { openTokens } from './app/tokens.js';
import { createLoginThrottle } from './domain/login-throttle.js';
import type { CacheStore } from './storage/cache.js';
import type { Database } from './storage/database.js';

export { CLIENTS_CHANNEL } from './app/directory.js';
export { KEYS_CHANNEL } from './app/foundation.js';
export { TESSERA_VERSION } from './app/management.js';

/** What the server is built from: the foundation's options (src/app/foundation.ts). */
export type TesseraOptions = FoundationOptions;

/**
 * The composition root. Each layer is a module of src/app/ that takes the layers before it and
 * returns a small object:
 *
 *   foundation  settings, migrated storage, repositories, keys, issuer, audit, policy, inventory
 *   directory   clients and principal liveness, cached and invalidated on every node
 *   engine      the OpenID engine and Tessera's steps around it (client authentication, graces)
 *   tokens      revocation list, PAT/SAT cache and lifecycle, introspection, rate limits
 *   http        the Management API, the Koa pipeline and the two fast paths in front of it
 *   jobs        periodic work, one node at a time
 *
 * `close` releases everything in reverse order; `main.ts` owns the HTTP server and signals.
 */
export async function createTessera(options: TesseraOptions) {
  const foundation = await openFoundation(options);
  try {
    const directory = await openDirectory(foundation);
    const engine = await openEngine(foundation, directory);
    const tokens = await openTokens(foundation, directory, engine);
    const loginThrottle = createLoginThrottle({ cache: foundation.cache, clock: foundation.clock });
    const management = buildManagementApi(foundation, directory, engine, tokens, loginThrottle);
    const http = buildHttp(foundation, directory, engine, tokens, { management, loginThrottle });
    const scheduler = startJobs(foundation, tokens, engine);
    return {
      ...foundation,
      ...tokens,
      ...http,
      clients: directory.clients,
      resourceServerCache: engine.resourceServerCache,
      secretUsage: engine.secretUsage,
      /** Failed-sign-in throttling; `listLockouts(organizationId)` is what administrators see. */
      loginThrottle,
      management,
      scheduler,
      get provider() {
        return engine.provider();
      },
    };
  } catch (error) {
    await foundation.close();
    throw error;
  }
}

export type Tessera = Awaited<ReturnType<typeof createTessera>>;

export type { Database, CacheStore };
