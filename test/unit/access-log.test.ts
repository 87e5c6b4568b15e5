/**
 * The access log's levels: failures and slow answers are info (what an operator reads the log
 * for); successful answers are debug, so the shipped default (info) writes no line per
 * introspection or token request that went well.
 */
import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { logRequest, SLOW_REQUEST_MS } from '../../src/http/middleware.js';
import { createLogger } from '../../src/http/logger.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

const line = (status: number, started = performance.now()) => ({ requestId: 'r1', method: 'POST', path: '/token/introspection', status, started });

describe('access log levels', () => {
  it('writes failures and slow answers at info, and successful ones only at debug', async () => {
    const info = capture('info');
    logRequest(info.logger, line(200));
    logRequest(info.logger, line(401));
    logRequest(info.logger, line(503));
    logRequest(info.logger, line(200, performance.now() - SLOW_REQUEST_MS - 5));
    const debug = capture('debug');
    logRequest(debug.logger, line(200));
    await new Promise((resolve) => setImmediate(resolve));
    expect(info.lines.map((l) => l.status)).toEqual([401, 503, 200]);
    expect(info.lines.every((l) => l.msg === 'request' && l.level === 'info')).toBe(true);
    expect(debug.lines).toEqual([expect.objectContaining({ msg: 'request', status: 200, level: 'debug', path: '/token/introspection' })]);
  });
});
