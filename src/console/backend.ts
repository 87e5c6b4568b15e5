import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import inject from 'light-my-request';

import type { Clock } from '../clock.js';
import { consoleClientId, consoleRedirectUris, CONSOLE_SCOPES } from '../domain/console-client.js';
import { MANAGEMENT_AUDIENCE } from '../domain/types.js';
import type { ConsoleSession, ConsoleSessions, PendingSignIn } from './session-store.js';

/**
 * The console as a client of Tessera: every call goes through Tessera's own HTTP interface,
 * in-process (no socket, so it works behind any load balancer), with the person's own tokens.
 * The token endpoint signs the person in and refreshes their token; the Management API decides
 * what they may do (src/domain/authority.ts, through the routes of src/management/), exactly as
 * for any script holding the same token. The console never decides authority itself.
 */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Who is asking, passed on so that the audit trail names the person's address and browser. */
export interface RequestFacts {
  ip: string;
  userAgent: string | undefined;
}

export interface ApiAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON (problem+json included), or undefined. */
  body: any;
}

/** The session ended, or its refresh token no longer works: the person signs in again. */
export class SignInRequired extends Error {
  override name = 'SignInRequired';
}

/** Refresh a little before expiry, so a call never starts with a token about to lapse. */
const REFRESH_MARGIN_MS = 30_000;

export interface ConsoleBackendDependencies {
  issuer: string;
  clock: Clock;
  sessions: ConsoleSessions;
  /** The server's own request handler (the one src/main.ts serves), known once the pipeline is built. */
  handler: () => RequestHandler;
}

export function createConsoleBackend(deps: ConsoleBackendDependencies) {
  const { sessions, clock } = deps;
  const redirectUri = consoleRedirectUris(deps.issuer)[0]!;
  const host = new URL(deps.issuer).host;

  async function send(method: string, url: string, facts: RequestFacts, options: { headers?: Record<string, string>; form?: Record<string, string>; json?: unknown } = {}): Promise<ApiAnswer> {
    const headers: Record<string, string> = { host, ...options.headers };
    if (facts.userAgent) headers['user-agent'] = facts.userAgent;
    let payload: string | undefined;
    if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      payload = new URLSearchParams(options.form).toString();
    } else if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(options.json);
    }
    const answer = await inject(deps.handler(), { method: method as 'GET', url, headers, payload, remoteAddress: facts.ip });
    let body: unknown;
    try {
      body = answer.payload ? JSON.parse(answer.payload) : undefined;
    } catch {
      body = undefined;
    }
    return { status: answer.statusCode, headers: answer.headers as ApiAnswer['headers'], text: answer.payload, body };
  }

  interface TokenAnswer {
    access_token: string;
    refresh_token?: string;
    expires_in: number;
    scope?: string;
  }

  const tokenFields = (t: TokenAnswer) => ({
    accessToken: t.access_token,
    accessTokenExpiresAt: clock.now() + t.expires_in * 1000,
    refreshToken: t.refresh_token,
    scopes: (t.scope ?? '').split(' ').filter((s) => s !== 'openid' && s !== 'offline_access' && s !== ''),
  });

  /** The access token's claims: it came straight from Tessera's token endpoint, in process. */
  const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; org_id?: string };

  return {
    /** Starts a sign-in (authorization code + PKCE, RFC 7636 S256); returns the pending id and where to send the browser. */
    async beginSignIn(organizationId: string, returnTo: string): Promise<{ pendingId: string; location: string }> {
      const codeVerifier = randomBytes(48).toString('base64url');
      const state = randomBytes(24).toString('base64url');
      const pendingId = await sessions.beginSignIn({ state, codeVerifier, organizationId, returnTo });
      const url = new URL('/auth', deps.issuer);
      url.search = new URLSearchParams({
        client_id: consoleClientId(organizationId),
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: CONSOLE_SCOPES.join(' '),
        resource: MANAGEMENT_AUDIENCE,
        code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'),
        code_challenge_method: 'S256',
        state,
        // The console holds the organization's administration: every console session starts
        // with the password (OpenID Connect Core §3.1.2.1 `login`); `consent` is what makes the
        // engine honour offline_access (§11), and the console's consent is implied
        // (src/interactions/routes.ts).
        prompt: 'login consent',
      }).toString();
      return { pendingId, location: `${url.pathname}${url.search}` };
    },

    /** Exchanges the code of a finished sign-in for the person's tokens; returns the new session id. */
    async finishSignIn(pending: PendingSignIn, code: string, facts: RequestFacts): Promise<{ sessionId: string; session: Omit<ConsoleSession, 'createdAt' | 'lastSeenAt'> } | undefined> {
      const answer = await send('POST', '/token', facts, {
        form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pending.codeVerifier, client_id: consoleClientId(pending.organizationId), resource: MANAGEMENT_AUDIENCE },
      });
      if (answer.status !== 200 || typeof answer.body?.access_token !== 'string') return undefined;
      const fields = tokenFields(answer.body as TokenAnswer);
      const claims = claimsOf(fields.accessToken);
      if (claims.org_id !== pending.organizationId || !claims.sub) return undefined;
      const session = { organizationId: pending.organizationId, userId: claims.sub, username: claims.sub, ...fields };
      return { sessionId: await sessions.create(session), session };
    },

    /**
     * Calls the Management API as the person. An access token close to expiry is refreshed
     * first (the refresh token rotates; RFC 9700 §4.14.2); a refused refresh ends the session.
     */
    async call(sessionId: string, session: ConsoleSession, method: string, path: string, facts: RequestFacts, json?: unknown): Promise<ApiAnswer> {
      if (session.accessTokenExpiresAt - REFRESH_MARGIN_MS <= clock.now()) await refresh(sessionId, session, facts);
      const answer = await send(method, `/api/v1${path}`, facts, { headers: { authorization: `Bearer ${session.accessToken}` }, json });
      if (answer.status === 401) {
        await sessions.destroy(sessionId);
        throw new SignInRequired('the Management API no longer accepts this session');
      }
      return answer;
    },

    /** Ends the session here and revokes its refresh token (RFC 7009), so nothing it held lives on. */
    async signOut(sessionId: string, session: ConsoleSession | undefined, facts: RequestFacts): Promise<void> {
      await sessions.destroy(sessionId);
      if (session?.refreshToken) {
        await send('POST', '/token/revocation', facts, { form: { token: session.refreshToken, token_type_hint: 'refresh_token', client_id: consoleClientId(session.organizationId) } }).catch(() => undefined);
      }
    },
  };

  async function refresh(sessionId: string, session: ConsoleSession, facts: RequestFacts): Promise<void> {
    if (!session.refreshToken) {
      await sessions.destroy(sessionId);
      throw new SignInRequired('the access token expired and the session has no refresh token');
    }
    const answer = await send('POST', '/token', facts, {
      form: { grant_type: 'refresh_token', refresh_token: session.refreshToken, client_id: consoleClientId(session.organizationId), resource: MANAGEMENT_AUDIENCE },
    });
    if (answer.status !== 200 || typeof answer.body?.access_token !== 'string') {
      await sessions.destroy(sessionId);
      throw new SignInRequired('the refresh token was refused');
    }
    const fields = tokenFields(answer.body as TokenAnswer);
    Object.assign(session, { ...fields, refreshToken: fields.refreshToken ?? session.refreshToken });
    await sessions.touch(sessionId, session);
  }
}
export type ConsoleBackend = ReturnType<typeof createConsoleBackend>;
