/**
 * One Tessera node as its own process, for multi-node tests and benchmarks: configuration from
 * the environment (plus TEST_SCHEMA / TEST_REDIS_PREFIX for isolation), one line on stdout
 * once listening (`TESSERA_READY` and JSON {"url", "bootstrapped"}), a clean stop on SIGTERM.
 */
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/http/logger.js';
import { startServer } from '../../src/main.js';

/** Logs share stdout; this marks the one line the parent waits for. */
const READY_MARKER = 'TESSERA_READY';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.logLevel });
const running = await startServer(config, logger, { schema: process.env.TEST_SCHEMA || undefined, redisPrefix: process.env.TEST_REDIS_PREFIX || undefined });
process.stdout.write(`${READY_MARKER} ${JSON.stringify({ url: running.url, bootstrapped: running.tessera.bootstrapped ?? null })}\n`);
const stop = () => {
  running.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
