import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';

import { createTessera } from './app.js';
import type { Tessera } from './app.js';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import { loadConfig } from './config/config.js';
import type { Config } from './config/config.js';
import { createLogger } from './http/logger.js';
import type { Logger } from './http/logger.js';
import { StartupError } from './storage/open-storage.js';

/** Bounds on a slow client: headers must arrive within 10 s, a whole request within 30 s. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How long SIGTERM waits for in-flight requests before closing anyway. */
const DRAIN_TIMEOUT_MS = 15_000;

export interface RunningServer {
  tessera: Tessera;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

/** Starts Tessera's HTTP server; `stop` drains in-flight requests, then closes pools. */
export async function startServer(config: Config, logger: Logger, extra: { schema?: string; redisPrefix?: string; clock?: Clock } = {}): Promise<RunningServer> {
  const tessera = await createTessera({ config, logger, clock: extra.clock ?? systemClock, schema: extra.schema, redisPrefix: extra.redisPrefix });
  // While draining, every response says `Connection: close`, so a keep-alive client (a load
  // balancer's pool) neither holds the process open nor keeps sending requests on it.
  let draining = false;
  const inFlight = new Set<ServerResponse>();
  const closeAfterResponse = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('connection', 'close');
  };
  const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, maxHeaderSize: 16 * 1024 }, (req, res) => {
    if (draining) closeAfterResponse(res);
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    tessera.handler(req, res);
  });
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, () => resolve());
    });
  } catch (error) {
    // Name the setting to change (docs/operations.md, "Configuration"), and release the pools opened above.
    await tessera.close().catch(() => {});
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'EADDRINUSE' ? 'the port is already in use' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new StartupError(`cannot listen on port ${config.port} (PORT): ${reason}`);
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  let stopping: Promise<void> | undefined;
  return {
    tessera,
    server,
    url: `http://127.0.0.1:${port}`,
    stop() {
      stopping ??= (async () => {
        // Stop accepting, let in-flight requests finish, then release the pools.
        draining = true;
        for (const res of inFlight) closeAfterResponse(res);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timeout = new Promise<void>((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref());
        await Promise.race([closed, timeout]);
        server.closeAllConnections();
        await tessera.close();
      })();
      return stopping;
    },
  };
}

/** `tessera serve`: config from the environment, one clear line on any start-up failure. */
export async function serve(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    process.stderr.write(`tessera: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger({ level: config.logLevel });
  let running: RunningServer;
  try {
    running = await startServer(config, logger);
  } catch (error) {
    process.stderr.write(`tessera: cannot start: ${(error as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  }
  logger.info({ issuer: config.issuer, port: config.port, database: config.databaseUrl ? 'postgres' : 'embedded', cache: config.redisUrl ? 'redis' : 'in-process' }, 'tessera listening');
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
