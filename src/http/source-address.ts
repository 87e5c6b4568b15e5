import type { IncomingMessage } from 'node:http';

/**
 * The address a request came from, as Koa's `ctx.ip` has it, for the handlers that answer in
 * front of Koa (the introspection and client-credentials fast paths): behind a trusted proxy
 * (`app.proxy`, production) the first X-Forwarded-For entry, else the socket's peer. Both paths
 * must agree, or a limit keyed by address would count one client under two names.
 */
export function sourceAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded)?.split(',', 1)[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? '';
}
