import type { IncomingMessage, ServerResponse } from 'node:http';

import { FORM_BODY_LIMIT, parseForm, readBodyText } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { baselineSecurityHeaders, logRequest, requestIdFor } from '../http/middleware.js';
import type { IntrospectionMetrics } from '../metrics/metrics.js';
import { sourceAddress } from '../http/source-address.js';
import type { ClientAuthenticator } from '../oidc/client-authenticator.js';
import type { ClientFailureLimit } from '../oidc/client-failure-limit.js';
import { andThen } from '../maybe-promise.js';
import type { Introspection, IntrospectionAnswer } from './introspection.js';
import { CORS_WITHOUT_ORIGIN } from './cross-origin.js';
import { createIntrospectionSteps } from './introspection-steps.js';
import type { AuthenticatedCaller } from './introspection-steps.js';
import { INTROSPECTION_PATH, metricKind } from './token-endpoints.js';

/**
 * The introspection fast path, in front of Koa. Koa plus oidc-provider cost most of an
 * introspection's time (docs/performance.md), so the common case is answered here from a bare
 * Node request handler: a POST to /token/introspection with an urlencoded body, a client that
 * authenticates with client_secret_basic or client_secret_post (client directory, cached), and a
 * token the bounded caches answer (PAT/SAT, JWT, opaque).
 *
 * Everything else is handed to Koa unchanged, with the body already read left on `req.body`
 * (readFormBody honours it): a request with an Origin (src/tokens/cross-origin.ts), private_key_jwt, a JWT response (RFC 9701) or a client registered
 * for encrypted ones (whose JSON request Koa refuses, src/tokens/introspection-response.ts), a failed client
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
  /** Result, kind and latency of each answer given here (optional, see metrics.ts). */
  metrics?: IntrospectionMetrics;
  /** Sources over their failure budget, whose requests Koa refuses (optional, src/oidc/client-failure-limit.ts). */
  failures?: Pick<ClientFailureLimit, 'retryAfter' | 'shutsOutAny'>;
  /** Whether X-Forwarded-For names the source (Koa's `app.proxy`). */
  trustProxy?: boolean;
}

const FORM = 'application/x-www-form-urlencoded';

const isForm = (contentType: string | undefined) =>
  contentType !== undefined && (contentType === FORM || contentType.split(';')[0]!.trim().toLowerCase() === FORM);

export function createIntrospectionFastPath(deps: FastPathDependencies) {
  const { logger, fallback, failures } = deps;
  // The Koa path's steps (src/tokens/introspection-steps.ts), run synchronously when all is cached.
  // RFC 9701 answers are not rendered here: those requests go to Koa, so no signer.
  const steps = createIntrospectionSteps({ authenticator: deps.authenticator, introspection: deps.introspection, endpointUrl: `${deps.issuer}${INTROSPECTION_PATH}` });
  /** Introspections answered here, and handed on to Koa (for metrics and tests). */
  const stats = { answered: 0, handedOn: 0 };
  // The Koa path's own security and CORS headers, so the two answers are indistinguishable. A
  // request with an Origin, whose CORS answer depends on it and on the client, goes to Koa.
  const securityHeaders = { ...Object.fromEntries(baselineSecurityHeaders({ hsts: deps.hsts }, INTROSPECTION_PATH)), ...CORS_WITHOUT_ORIGIN };
  const handOn = (req: IncomingMessage, res: ServerResponse) => {
    stats.handedOn += 1;
    fallback(req, res);
  };
  function respond(req: IncomingMessage, res: ServerResponse, token: string, who: AuthenticatedCaller, answer: IntrospectionAnswer | undefined, started: number, requestId: string): void {
    if (answer === undefined) return handOn(req, res);
    deps.metrics?.observe(metricKind(token), answer.active ? 'active' : 'inactive', (performance.now() - started) / 1000, who.caller.organizationId);
    const body = steps.render.json(answer);
    const headers: Record<string, string | number> = {
      'x-request-id': requestId,
      ...securityHeaders,
      // RFC 7662 §2.2 / RFC 6749 §5.1: token information must not be cached.
      'cache-control': 'no-store',
      pragma: 'no-cache',
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    };
    res.writeHead(200, headers);
    res.end(body);
    stats.answered += 1;
    logRequest(logger, { requestId, method: 'POST', path: INTROSPECTION_PATH, status: 200, started });
  }

  /**
   * Answers the request, synchronously when the client and the token are cached; anything this
   * path does not answer itself (returns false, throws or rejects) goes to Koa unchanged.
   */
  function answer(req: IncomingMessage & { body?: unknown }, res: ServerResponse, text: string, started: number): void {
    req.body = text;
    const params = parseForm(text);
    if (params.has('client_assertion')) return handOn(req, res);
    // A missing or repeated token is Koa's to refuse (parse throws on a repeated one).
    const token = steps.parse(params);
    if (token === undefined) return handOn(req, res);
    const incomingId = req.headers['x-request-id'];
    const requestId = requestIdFor(typeof incomingId === 'string' ? incomingId : undefined);
    const source = sourceAddress(req, deps.trustProxy === true);
    // A previous secret within its grace is left to Koa, which audits its use once (a request
    // handed on after authenticating here would otherwise be audited twice).
    const result = andThen(steps.authenticate(req.headers.authorization, params, {}, { previousSecret: 'elsewhere' }), (who) => {
      // A source over its failure budget for this client gets Koa's 429 even with the right
      // secret, or the answers would tell a guesser which attempt was right.
      if (failures?.shutsOutAny() && failures.retryAfter(source, who.caller.clientId) !== undefined) return handOn(req, res);
      // Throws for a client registered for encrypted answers, whose JSON request Koa refuses.
      steps.negotiate(token, who, false);
      // Throws for a malformed client_ip, which Koa refuses.
      const context = steps.context(params);
      return andThen(steps.load(token, who, context), (found) => respond(req, res, token, who, found, started, requestId));
    });
    if (result instanceof Promise) {
      result.catch(() => {
        // Whatever failed here (a cache down, a failed authentication), Koa answers it in its own format.
        if (!res.headersSent) handOn(req, res);
      });
    }
  }

  function handler(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST' || req.url !== INTROSPECTION_PATH) return fallback(req, res);
    const headers = req.headers;
    const contentLength = Number(headers['content-length']);
    if (headers.accept?.includes('jwt') || headers.origin !== undefined || !(contentLength > 0 && contentLength <= FORM_BODY_LIMIT) || !isForm(headers['content-type'])) {
      return handOn(req, res);
    }
    const started = performance.now();
    readBodyText(
      req,
      (text) => {
        try {
          answer(req, res, text, started);
        } catch {
          if (!res.headersSent) handOn(req, res);
        }
      },
      () => {
        if (!res.headersSent) handOn(req, res);
      },
    );
  }
  return Object.assign(handler, { stats });
}
