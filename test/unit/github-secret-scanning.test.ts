/**
 * GitHub's key list is fetched through the outbound guard (src/tokens/github-secret-scanning.ts):
 * a key URL that leads to an internal address is never connected to, and a report then can be
 * neither accepted nor refused (the route answers 503, so GitHub retries), never verified
 * against whatever answered there. A listener on 127.0.0.1 counts the connections it gets.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseOutboundAllowList } from '../../src/config/config.js';
import { createLogger } from '../../src/http/logger.js';
import { createOutboundGuard } from '../../src/outbound/outbound-guard.js';
import { createMemoryCache } from '../../src/storage/memory-cache.js';
import { createGithubScanning, PartnerKeysUnavailableError } from '../../src/tokens/github-secret-scanning.js';
import { createTestClock } from '../helpers/test-clock.js';

describe('the secret-scanning key list and the outbound guard', () => {
  let server: Server;
  let port: number;
  let connections = 0;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      connections += 1;
      res.setHeader('content-type', 'application/json');
      res.end('{"public_keys":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const scanning = (keysUrl: string, allow: string | undefined) => {
    const clock = createTestClock();
    const guard = createOutboundGuard({ allow: parseOutboundAllowList(allow) });
    return createGithubScanning({ keysUrl, fetch: guard.fetch, clock, logger: createLogger({ level: 'silent' }), cache: createMemoryCache({ clock }), keysCacheSeconds: 60, refetchIntervalSeconds: 60, replayWindowSeconds: 60 });
  };

  it('refuses a key URL on an internal address: no connection, no verdict', async () => {
    for (const url of [`http://127.0.0.1:${port}/keys`, `http://localhost:${port}/keys`, 'http://169.254.169.254/latest/keys', 'http://10.0.0.1/keys']) {
      await expect(scanning(url, undefined).verify(Buffer.from('[]'), 'k1', 'sig'), url).rejects.toBeInstanceOf(PartnerKeysUnavailableError);
    }
    expect(connections).toBe(0);
  });

  it('fetches from an internal address the operator allowed, and finds no key there', async () => {
    expect(await scanning(`http://127.0.0.1:${port}/keys`, '127.0.0.1').verify(Buffer.from('[]'), 'k1', 'sig')).toBe('unknown_key');
    expect(connections).toBe(1);
  });
});
