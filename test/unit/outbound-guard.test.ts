/**
 * The outbound guard (src/outbound/outbound-guard.ts): the check when a URL is set, the lookup
 * hook a socket resolves through when it is fetched, and the fetch the engine uses. Names are
 * resolved by a scripted resolver (so rebinding can be played out offline), except where the
 * system's own `localhost` is the point; connections go to a real listener on 127.0.0.1 that
 * counts them.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { LookupAddress } from 'node:dns';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseOutboundAllowList } from '../../src/config/config.js';
import { createOutboundGuard, OutboundRefusedError } from '../../src/outbound/outbound-guard.js';
import type { Resolve } from '../../src/outbound/outbound-guard.js';

const NOTHING_ALLOWED = parseOutboundAllowList(undefined);
const v4 = (address: string): LookupAddress => ({ address, family: 4 });

/** A resolver answering from a table; each name may have several answers in turn (rebinding). */
function scripted(table: Record<string, LookupAddress[][]>): Resolve {
  const calls = new Map<string, number>();
  return async (hostname) => {
    const answers = table[hostname];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const n = calls.get(hostname) ?? 0;
    calls.set(hostname, n + 1);
    return answers[Math.min(n, answers.length - 1)]!;
  };
}

/** The lookup hook called the way node:net calls it. */
function lookupOf(guard: ReturnType<typeof createOutboundGuard>, hostname: string, options: { all?: boolean; family?: number } = {}) {
  return new Promise<{ error: NodeJS.ErrnoException | null; result: unknown }>((resolve) => {
    guard.lookup(hostname, options as never, ((error: NodeJS.ErrnoException | null, address: unknown, family?: number) =>
      resolve({ error, result: options.all ? address : { address, family } })) as never);
  });
}

describe('outbound guard', () => {
  let server: Server;
  let port: number;
  let connections = 0;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();

  beforeAll(async () => {
    server = createServer((req, res) => handler(req, res));
    server.on('connection', () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('lookup: refuses a name that resolves to loopback (the system resolver\'s localhost too), keeps only public addresses of a mixed answer', async () => {
    const guard = createOutboundGuard({
      allow: NOTHING_ALLOWED,
      resolve: scripted({ 'inside.test': [[v4('127.0.0.1')]], 'metadata.test': [[v4('169.254.169.254')]], 'mixed.test': [[v4('10.0.0.5'), v4('93.184.215.14'), { address: '::1', family: 6 }]] }),
    });
    for (const name of ['inside.test', 'metadata.test']) {
      const { error } = await lookupOf(guard, name);
      expect(error, name).toBeInstanceOf(OutboundRefusedError);
      expect(error?.code).toBe('ERR_OUTBOUND_REFUSED');
      expect(error?.message).not.toMatch(/127\.0\.0\.1|169\.254/);
    }
    expect(await lookupOf(guard, 'mixed.test')).toEqual({ error: null, result: { address: '93.184.215.14', family: 4 } });
    expect(await lookupOf(guard, 'mixed.test', { all: true })).toEqual({ error: null, result: [v4('93.184.215.14')] });
    expect((await lookupOf(guard, 'mixed.test', { family: 6 })).error?.code).toBe('ENOTFOUND');
    expect((await lookupOf(guard, 'absent.test')).error?.code).toBe('ENOTFOUND');

    const system = createOutboundGuard({ allow: NOTHING_ALLOWED });
    expect((await lookupOf(system, 'localhost')).error).toBeInstanceOf(OutboundRefusedError);
    expect((await lookupOf(system, 'localhost', { all: true })).error).toBeInstanceOf(OutboundRefusedError);
  });

  it('urlProblem: refuses literal internal addresses and names that resolve only inside, without naming the address a name led to', async () => {
    const guard = createOutboundGuard({
      allow: NOTHING_ALLOWED,
      resolveTimeoutMs: 50,
      resolve: async (hostname) => {
        if (hostname === 'slow.test') return new Promise<never>(() => {});
        return scripted({ 'inside.test': [[v4('10.9.8.7')]], 'mixed.test': [[v4('10.0.0.5'), v4('93.184.215.14')]], 'public.test': [[v4('93.184.215.14')]] })(hostname);
      },
    });
    expect(await guard.urlProblem('https://[::ffff:127.0.0.1]/jwks')).toMatch(/^::ffff:7f00:1 is an internal address \(loopback\)/);
    expect(await guard.urlProblem('https://2130706433/jwks')).toMatch(/^127\.0\.0\.1 is an internal address \(loopback\)/);
    const named = await guard.urlProblem('https://inside.test/jwks');
    expect(named).toMatch(/resolves only to internal addresses/);
    expect(named).not.toContain('10.9.8.7');
    // Not refused now; the fetch checks again.
    for (const url of ['https://mixed.test/jwks', 'https://public.test/jwks', 'https://absent.test/jwks', 'https://slow.test/jwks', 'not a url', 'https://8.8.8.8/jwks']) {
      expect(await guard.urlProblem(url), url).toBeUndefined();
    }
  });

  it('DNS rebinding: a name that was public when registered and points inside when fetched gets no connection', async () => {
    const guard = createOutboundGuard({ allow: NOTHING_ALLOWED, resolve: scripted({ 'rebind.test': [[v4('93.184.215.14')], [v4('127.0.0.1')]] }) });
    const url = `http://rebind.test:${port}/jwks`;
    expect(await guard.urlProblem(url)).toBeUndefined();
    const before = connections;
    await expect(guard.fetch(url, { signal: AbortSignal.timeout(2000) })).rejects.toBeInstanceOf(OutboundRefusedError);
    // A literal address never goes through lookup, so it is checked on its own.
    await expect(guard.fetch(`http://127.0.0.1:${port}/jwks`)).rejects.toThrow(/internal address \(loopback\)/);
    await expect(guard.fetch(`http://[::ffff:7f00:1]:${port}/jwks`)).rejects.toBeInstanceOf(OutboundRefusedError);
    expect(connections - before).toBe(0);
  });

  it('fetch: an allowed host gets a WHATWG Response the engine can read; redirects are handed back, not followed', async () => {
    const seen: { method?: string; headers?: Record<string, unknown>; body?: string }[] = [];
    handler = (req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method, headers: req.headers, body });
        if (req.url === '/moved') {
          res.writeHead(302, { location: `http://127.0.0.1:${port}/jwks` }).end();
        } else if (req.url === '/empty') {
          res.writeHead(204).end();
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' }).end(JSON.stringify({ keys: [] }));
        }
      });
    };
    const byName = createOutboundGuard({ allow: parseOutboundAllowList('keys.internal.test'), resolve: scripted({ 'keys.internal.test': [[v4('127.0.0.1')]] }) });
    const response = await byName.fetch(`http://keys.internal.test:${port}/jwks`, { method: 'GET', headers: new Headers({ accept: 'application/json', 'user-agent': '' }), signal: AbortSignal.timeout(2000) });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('max-age=300');
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body!) chunks.push(chunk);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toEqual({ keys: [] });
    expect(seen.at(-1)?.headers).toMatchObject({ accept: 'application/json', host: `keys.internal.test:${port}` });
    expect(seen.at(-1)?.headers?.['user-agent']).toBeUndefined();

    const byNetwork = createOutboundGuard({ allow: parseOutboundAllowList('127.0.0.0/8') });
    const moved = await byNetwork.fetch(`http://127.0.0.1:${port}/moved`);
    expect(moved.status).toBe(302);
    expect(moved.headers.get('location')).toBe(`http://127.0.0.1:${port}/jwks`);
    expect((await byNetwork.fetch(`http://localhost:${port}/empty`)).status).toBe(204);
    const posted = await byNetwork.fetch(`http://127.0.0.1:${port}/logout`, { method: 'POST', body: new URLSearchParams({ logout_token: 'x' }) });
    expect(posted.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: 'logout_token=x', headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' } });
    await expect(byNetwork.fetch('file:///etc/passwd')).rejects.toBeInstanceOf(OutboundRefusedError);
  });
});
