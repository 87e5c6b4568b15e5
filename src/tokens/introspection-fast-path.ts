import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { FORM_BODY_LIMIT } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { HTML_CSP } from '../http/middleware.js';
import type { ClientAuthenticator } from '../oidc/client-authenticator.js';
import type { Introspection } from './introspection.js';
import { INTROSPECTION_PATH } from './token-endpoints.js';

/**
 * The introspection fast path, in front of Koa. Koa plus oidc-provider cost most of an
 * introspection's time (DESIGN.md, measured), so the common case is answered here from a bare
 * Node request handler: a POST to /token/introspection with an urlencoded body, a client that
 * authenticates with client_secret_basic or client_secret_post (client directory, cached), and a
 * token the bounded caches answer (PAT/SAT, JWT, opaque).
 *
 * Everything else is handed to Koa unchanged, with the body already read left on `req.body`
 * (readFormBody honours it): private_key_jwt, a JWT response (RFC 9701), a failed client
 * authentication, a missing or repeated parameter, a token Tessera does not hold, any error.
 * Koa therefore produces every error, so error answers are identical whichever path they took;
 * the success answer is byte-for-byte what the Koa path writes, with the same headers.
 */
export interface FastPathDependencies {
  authenticator: ClientAuthenticator;
  introspection: Introspection;
  issuer: string;
  logger: Logger;
  /** Security headers the Koa stack adds; HSTS only for an https issuer. */
  hsts: boolean;
  fallback: (req: IncomingMessage, res: ServerResponse) => void;
}

const REQUEST_ID = /^[\w.-]{1,128}$/;
const FORM = 'application/x-www-form-urlencoded';

function readBody(req: IncomingMessage, length: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Node stops at content-length; this only guards a lying header.
      if (size <= length) chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function createIntrospectionFastPath(deps: FastPathDependencies) {
  const { authenticator, introspection, logger, fallback } = deps;
  const endpointUrl = `${deps.issuer}${INTROSPECTION_PATH}`;
  const logRequests = () => logger.isLevelEnabled('info');
  /** Introspections answered here, and handed on to Koa (for metrics and tests). */
  const stats = { answered: 0, handedOn: 0 };
  const handOn = (req: IncomingMessage, res: ServerResponse) => {
    stats.handedOn += 1;
    fallback(req, res);
  };

  async function tryAnswer(req: IncomingMessage & { body?: unknown }, res: ServerResponse, started: number): Promise<boolean> {
    const contentLength = Number(req.headers['content-length']);
    if (!(contentLength > 0 && contentLength <= FORM_BODY_LIMIT)) return false;
    if ((req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== FORM) return false;
    const text = await readBody(req, contentLength);
    req.body = text;
    const params = new URLSearchParams(text);
    if (params.has('client_assertion')) return false;
    const tokens = params.getAll('token');
    if (tokens.length !== 1 || tokens[0]!.length === 0) return false;
    let caller;
    try {
      const { view } = await authenticator.authenticate(req.headers.authorization, params, endpointUrl);
      caller = { clientId: view.record.client_id, organizationId: view.record.organization_id, audiences: view.introspectionAudiences };
    } catch {
      return false;
    }
    const answer = await introspection.introspect(tokens[0]!, caller);
    if (answer === undefined) return false;
    const body = JSON.stringify(answer);
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const headers: Record<string, string | number> = {
      'x-request-id': requestId,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      // The same headers as the Koa path (securityHeaders), so the two answers are indistinguishable.
      'content-security-policy': HTML_CSP,
      // RFC 7662 §2.2 / RFC 6749 §5.1: token information must not be cached.
      'cache-control': 'no-store',
      pragma: 'no-cache',
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    };
    if (deps.hsts) headers['strict-transport-security'] = 'max-age=31536000; includeSubDomains';
    res.writeHead(200, headers);
    res.end(body);
    stats.answered += 1;
    if (logRequests()) logger.info({ requestId, method: 'POST', path: INTROSPECTION_PATH, status: 200, ms: Math.round((performance.now() - started) * 10) / 10 }, 'request');
    return true;
  }

  function handler(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST' || req.url !== INTROSPECTION_PATH) {
      fallback(req, res);
      return;
    }
    if (req.headers.accept?.includes('jwt')) {
      handOn(req, res);
      return;
    }
    const started = performance.now();
    tryAnswer(req, res, started).then(
      (answered) => {
        if (!answered) handOn(req, res);
      },
      () => {
        // Whatever failed here (a cache down, a malformed header), Koa answers it in its own format.
        if (!res.headersSent) handOn(req, res);
      },
    );
  }
  return Object.assign(handler, { stats });
}
