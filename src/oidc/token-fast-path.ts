import type { IncomingMessage, ServerResponse } from 'node:http';

import type { ClientDirectory, ClientView } from '../domain/client-directory.js';
import { FORM_BODY_LIMIT, readBodyText } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { baselineSecurityHeaders, logRequest, requestIdFor } from '../http/middleware.js';
import { sourceAddress } from '../http/source-address.js';
import { parseBasic } from './client-authenticator.js';
import { COUNTED, TOKEN_PATH } from './token-rate-limit.js';
import type { CountedRequest, TokenRateLimit } from './token-rate-limit.js';

/**
 * The client-credentials fast path, in front of Koa. A client-credentials grant needs only a few
 * of the Koa middlewares that run before the engine (request id, security headers, access log,
 * the rate limits, the client-secret grace check); the rest (health, protocol method
 * table, introspection and revocation, refresh-token grace, Management API, interaction router)
 * only matter for other requests, and together with Koa's own context they cost a client
 * credentials grant more than the engine's client authentication does. So the common case —
 * POST /token, urlencoded, `grant_type=client_credentials`, client_secret_basic — runs those few
 * steps here and goes straight to the engine, which answers as it does behind Koa. The rate
 * limits are counted as Koa's path counts them: a right secret against the client, a wrong one
 * against the source address (src/oidc/token-rate-limit.ts).
 *
 * Everything else goes to Koa unchanged, with the body read left on `req.body` (readFormBody
 * honours it): other grants, client_secret_post and assertions, a secret in its rotation grace
 * (the grace step rewrites it there, and audits it), a request over the rate limit (Koa answers
 * the 429, with the verdict counted here so it is not counted twice), and any error. Koa
 * therefore produces every Tessera error, so error answers are identical whichever path a
 * request took.
 */
export interface TokenFastPathDependencies {
  /** The /token rate limits, the same Koa's path counts with (src/oidc/token-rate-limit.ts). */
  limits: Pick<TokenRateLimit, 'admit'>;
  clients: ClientDirectory;
  /** Whether X-Forwarded-For names the source (Koa's `app.proxy`), so both paths count one address. */
  trustProxy: boolean;
  /** The client-secret grace step: a request it would change is left to it. */
  secretGrace: { replaces(view: ClientView | undefined, presented: string): boolean };
  /** The engine's request handler, current at the time of the request (it changes with the signing keys). */
  engine: () => (req: IncomingMessage, res: ServerResponse) => void;
  logger: Logger;
  hsts: boolean;
  fallback: (req: IncomingMessage, res: ServerResponse) => void;
}

const FORM = 'application/x-www-form-urlencoded';

/** Marks a request this path sent to the engine: a client-credentials grant, which no refresh-token step concerns. */
export const CLIENT_CREDENTIALS_GRANT = Symbol('tessera.clientCredentialsGrant');
export const isClientCredentialsGrant = (req: IncomingMessage) => (req as IncomingMessage & { [CLIENT_CREDENTIALS_GRANT]?: true })[CLIENT_CREDENTIALS_GRANT] === true;

export function createTokenFastPath(deps: TokenFastPathDependencies) {
  const { limits, clients, logger, fallback } = deps;
  const securityHeaders = baselineSecurityHeaders({ hsts: deps.hsts }, TOKEN_PATH);
  /** Grants answered here, and handed on to Koa (for tests). */
  const stats = { answered: 0, handedOn: 0 };
  const handOn = (req: IncomingMessage, res: ServerResponse) => {
    stats.handedOn += 1;
    fallback(req, res);
  };

  /** Runs the steps Koa would run before the engine; false when the request is Koa's to answer. */
  async function prepare(req: IncomingMessage & CountedRequest & { body?: unknown }, res: ServerResponse, authorization: string): Promise<boolean> {
    const contentLength = Number(req.headers['content-length']);
    if (!(contentLength > 0 && contentLength <= FORM_BODY_LIMIT)) return false;
    if ((req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== FORM) return false;
    const text = await new Promise<string>((resolve, reject) => readBodyText(req, resolve, reject));
    req.body = text;
    const params = new URLSearchParams(text);
    const grantTypes = params.getAll('grant_type');
    if (grantTypes.length !== 1 || grantTypes[0] !== 'client_credentials' || params.has('client_secret') || params.has('client_assertion')) return false;
    // A header the authenticator can read is read as the engine reads it (src/oidc/client-authenticator.ts);
    // any other goes to Koa, which counts it its own way.
    const basic = parseBasic(authorization);
    if (!basic) return false;
    const view = await clients.get(basic.id);
    const retryAfter = await limits.admit({ clientId: basic.id, secret: basic.secret }, view, sourceAddress(req, deps.trustProxy), res);
    req[COUNTED] = { retryAfter };
    if (retryAfter !== undefined) return false;
    return !deps.secretGrace.replaces(view, basic.secret);
  }

  function handler(req: IncomingMessage, res: ServerResponse): void {
    const authorization = req.headers.authorization;
    if (req.method !== 'POST' || req.url !== TOKEN_PATH || authorization === undefined || !/^basic /i.test(authorization)) {
      fallback(req, res);
      return;
    }
    const started = performance.now();
    prepare(req, res, authorization).then(
      (ready) => {
        if (!ready) {
          handOn(req, res);
          return;
        }
        stats.answered += 1;
        (req as IncomingMessage & { [CLIENT_CREDENTIALS_GRANT]?: true })[CLIENT_CREDENTIALS_GRANT] = true;
        const incoming = req.headers['x-request-id'];
        const requestId = requestIdFor(typeof incoming === 'string' ? incoming : undefined);
        res.setHeader('x-request-id', requestId);
        for (const [name, value] of securityHeaders) res.setHeader(name, value);
        if (logger.isLevelEnabled('info')) res.once('finish', () => logRequest(logger, { requestId, method: 'POST', path: TOKEN_PATH, status: res.statusCode, started }));
        deps.engine()(req, res);
      },
      () => {
        // Whatever failed here (the client directory's database, a broken body), Koa answers it
        // in its own format; a request already counted is not counted again there.
        if (!res.headersSent) handOn(req, res);
      },
    );
  }
  return Object.assign(handler, { stats });
}
