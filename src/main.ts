import cluster from 'node:cluster';
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
/** A worker that died is replaced after this pause, so a crash loop does not spin the CPU. */
const RESTART_DELAY_MS = 1_000;

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
  if (config.workers > 1 && cluster.isPrimary) return superviseWorkers(config);
  const logger = createLogger({ level: config.logLevel });
  let running: RunningServer;
  try {
    running = await startServer(config, logger);
  } catch (error) {
    process.stderr.write(`tessera: cannot start: ${(error as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  }
  logger.info({ issuer: config.issuer, port: config.port, database: config.databaseUrl ? 'postgres' : 'embedded', cache: config.redisUrl ? 'redis' : 'in-process', ...(cluster.isWorker ? { worker: cluster.worker!.id } : {}) }, 'tessera listening');
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

/**
 * `tessera serve` with several workers (config `workers`): the primary opens no storage; it
 * starts N processes that share the port (node:cluster), each a whole Tessera node whose
 * in-process caches are kept coherent by pub/sub, as across machines; background jobs still run
 * on one process at a time (each job holds a PostgreSQL advisory lock). The first worker starts
 * alone, so a first start migrates and bootstraps once before the others open storage. A worker
 * that dies is replaced; SIGTERM (or SIGINT) is passed to every worker, each drains its requests,
 * and the primary exits once all have.
 */
function superviseWorkers(config: Config): void {
  const logger = createLogger({ level: config.logLevel });
  let stopping = false;
  let live = 0;
  const fork = () => {
    live += 1;
    cluster.fork();
  };
  cluster.on('exit', (worker, code, signal) => {
    live -= 1;
    if (stopping) {
      if (live === 0) process.exit(0);
      return;
    }
    if (!started) {
      // A worker that cannot start has said why on stderr; another would fail the same way.
      process.stderr.write(`tessera: a worker could not start (exit ${code ?? signal})\n`);
      process.exit(1);
    }
    logger.warn({ worker: worker.id, code, signal }, 'a worker exited; starting another');
    setTimeout(fork, RESTART_DELAY_MS).unref();
  });
  let started = false;
  cluster.once('listening', () => {
    for (let i = 1; i < config.workers; i += 1) fork();
    started = true;
    logger.info({ workers: config.workers, port: config.port }, 'tessera workers starting');
  });
  fork();
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: every worker drains its in-flight requests');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    if (live === 0) process.exit(0);
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
