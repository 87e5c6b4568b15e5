import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';

import type { OutboundAllowList } from '../config/config.js';
import { createAddressPolicy, hostOf } from './address-policy.js';

/**
 * Every URL Tessera fetches for a client goes through here (src/outbound/address-policy.ts says
 * which addresses are refused). Two checks, because either alone can be bypassed:
 * - when the URL is set (Management API, RFC 7591 registration): `urlProblem` refuses a literal
 *   internal address, or a name that resolves only to internal addresses, so the mistake or the
 *   attempt is answered at once, naming the field;
 * - when the engine fetches it (oidc-provider's `fetch` option, src/oidc/provider.ts): the socket
 *   resolves the name through `lookup`, which drops internal addresses, and connects to one of the
 *   addresses it checked. A name that resolved to a public address at registration and to
 *   127.0.0.1 now (DNS rebinding), or a URL stored before these checks existed, never gets a
 *   connection.
 * Redirects are not followed: a 3xx is handed to the engine as it is, and it accepts only 200.
 */
export type Resolve = (hostname: string) => Promise<LookupAddress[]>;

/** The system resolver (getaddrinfo: /etc/hosts, then DNS), every address in the order given. */
export const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Why no connection was made; `code` lets a log line tell it from a network failure. */
export class OutboundRefusedError extends Error {
  override name = 'OutboundRefusedError';
  readonly code = 'ERR_OUTBOUND_REFUSED';
}

const REFUSAL = 'Tessera does not fetch from internal networks';

/** Long enough for a slow resolver; past it a registration is not held up (the fetch still checks). */
const DEFAULT_RESOLVE_TIMEOUT_MS = 2000;

export interface OutboundGuardDependencies {
  allow: OutboundAllowList;
  resolve?: Resolve;
  resolveTimeoutMs?: number;
}

export type OutboundGuard = ReturnType<typeof createOutboundGuard>;

export function createOutboundGuard(deps: OutboundGuardDependencies) {
  const policy = createAddressPolicy(deps.allow);
  const resolve = deps.resolve ?? systemResolve;
  const resolveTimeoutMs = deps.resolveTimeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;

  /** A literal address's refusal message, or undefined when it may be connected to. */
  function literalProblem(host: string): string | undefined {
    const kind = policy.refusal(host);
    return kind ? `${host} is an internal address (${kind}): ${REFUSAL}` : undefined;
  }

  /** The addresses of `host` a socket may use: those the policy accepts (all, for a host the operator named). */
  async function usableAddresses(host: string): Promise<LookupAddress[]> {
    const addresses = await resolve(host);
    if (policy.hostAllowed(host)) return addresses;
    const usable = addresses.filter((a) => policy.refusal(a.address) === undefined);
    if (usable.length === 0) throw new OutboundRefusedError(`${host} resolves only to internal addresses: ${REFUSAL}`);
    return usable;
  }

  /**
   * node:net's `lookup` option: resolves, refuses internal addresses, and hands the socket only
   * addresses that passed, so the address checked is the address connected to.
   */
  const lookup: LookupFunction = (hostname, options, callback) => {
    const host = hostname.replace(/\.$/, '').toLowerCase();
    usableAddresses(host).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const matching = family ? addresses.filter((a) => a.family === family) : addresses;
        if (matching.length === 0) {
          callback(Object.assign(new Error(`no IPv${family} address for ${host}`), { code: 'ENOTFOUND' }), '', 0);
        } else if (options.all) {
          (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, matching);
        } else {
          callback(null, matching[0]!.address, matching[0]!.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };

  /**
   * Why Tessera will not fetch `value`, or undefined. A name that cannot be resolved now is not
   * refused here (it may exist tomorrow); the fetch checks it again whatever this said.
   */
  async function urlProblem(value: string): Promise<string | undefined> {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return undefined; // Malformed URIs are named by the field's own rules.
    }
    const host = hostOf(url);
    if (!host || policy.hostAllowed(host)) return undefined;
    if (isIP(host)) return literalProblem(host);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('resolve timeout')), resolveTimeoutMs);
      });
      await Promise.race([usableAddresses(host), timeout]);
      return undefined;
    } catch (error) {
      // The refusal names no address: the caller learns nothing about the internal network.
      return error instanceof OutboundRefusedError ? `resolves only to internal addresses: ${REFUSAL}` : undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A WHATWG `fetch` for oidc-provider's `fetch` option, on node:http(s) so the connection goes
   * through `lookup`. It ignores the `dispatcher` the engine passes (its own guard checks the
   * address only after the socket has connected, which is already the blind request).
   */
  async function fetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    if (typeof input !== 'string' && !(input instanceof URL)) throw new TypeError('outbound fetch takes a URL');
    const url = new URL(input);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OutboundRefusedError(`${url.protocol} URLs are not fetched`);
    if (url.username || url.password) throw new OutboundRefusedError('URLs with credentials are not fetched');
    const host = hostOf(url);
    // A literal address never reaches `lookup` (node:net connects to it directly).
    if (isIP(host) && !policy.hostAllowed(host)) {
      const problem = literalProblem(host);
      if (problem) throw new OutboundRefusedError(problem);
    }
    const method = (init.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    // An empty value means "send none" (the engine blanks user-agent that way).
    new Headers(init.headers).forEach((value, name) => {
      if (value !== '') headers[name] = value;
    });
    const body = requestBody(init.body);
    if (init.body instanceof URLSearchParams && !('content-type' in headers)) headers['content-type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
    const options: RequestOptions = { method, headers, lookup, signal: init.signal ?? undefined, agent: false };

    return new Promise<Response>((resolvePromise, reject) => {
      const onResponse = (res: IncomingMessage) => {
        try {
          const status = res.statusCode ?? 0;
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const empty = method === 'HEAD' || [204, 205, 304].includes(status);
          if (empty) res.resume();
          const stream = empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
          resolvePromise(new Response(stream, { status, statusText: res.statusMessage ?? '', headers: responseHeaders }));
        } catch (error) {
          res.destroy();
          reject(error as Error);
        }
      };
      const req = url.protocol === 'https:' ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
      req.on('error', reject);
      req.end(body);
    });
  }

  return { lookup, urlProblem, fetch };
}

function requestBody(body: RequestInit['body']): string | Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof Uint8Array) return Buffer.from(body);
  throw new TypeError('outbound fetch sends string, URLSearchParams or byte bodies only');
}
