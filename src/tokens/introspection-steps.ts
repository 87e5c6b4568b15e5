import { isIP } from 'node:net';

import type { ClientView } from '../domain/client-directory.js';
import type { FormParams } from '../http/form-body.js';
import { single } from '../http/form-body.js';
import { invalidRequest } from '../http/oauth-error.js';
import type { MaybePromise } from '../maybe-promise.js';
import { andThen } from '../maybe-promise.js';
import type { AuthenticateOptions, ClientAuthenticator, RequestFacts } from '../oidc/client-authenticator.js';
import type { Introspection, IntrospectionAnswer, IntrospectionCaller, UseContext } from './introspection.js';
import { checkAccept } from './introspection-response.js';
import { isThumbprint } from './key-binding.js';
import type { IntrospectionResponder, ResponseClient } from './introspection-response.js';

/**
 * Introspection (RFC 7662) as a pipeline of one-job steps, in the order both transports run them:
 * the Koa path (src/tokens/token-endpoints.ts) awaits each; the fast path
 * (src/tokens/introspection-fast-path.ts) runs the same steps synchronously when the client and
 * the token are cached, and hands the request to Koa whenever a step throws or cannot answer.
 * 1. `parse`: the one `token` parameter (a repeated one is invalid_request, RFC 7662 §2.1);
 * 2. `authenticate`: the caller, through the one client authenticator (src/oidc/client-authenticator.ts);
 * 3. `negotiate`: JSON or an RFC 9701 JWT; a client registered for encryption must ask for the JWT;
 * 4. `load`: the token's answer as the caller may see it — found, live, and restricted to the
 *    caller's audience and organization (src/tokens/introspection.ts), or undefined when Tessera
 *    does not hold the token;
 * 5. `render`: the JSON text, or the signed (and perhaps encrypted) JWT.
 */
export interface AuthenticatedCaller {
  /** Who asks: what the audience and organization restriction needs. */
  caller: IntrospectionCaller;
  /** How the answer is rendered for it: its registered RFC 9701 metadata. */
  client: ResponseClient;
  view: ClientView;
}

export function createIntrospectionSteps(deps: {
  authenticator: ClientAuthenticator;
  introspection: Introspection;
  /** Signs RFC 9701 answers; absent on the fast path, which hands those requests to Koa. */
  responder?: IntrospectionResponder;
  /** The endpoint's URL, an audience of client assertions (RFC 7523 §3). */
  endpointUrl: string;
}) {
  const { authenticator, introspection, responder, endpointUrl } = deps;

  /**
   * One caller object per client view: the introspection module remembers answers per caller
   * (src/tokens/introspection.ts), so both transports reuse what either built.
   */
  const callers = new WeakMap<ClientView, AuthenticatedCaller>();
  const callerOf = (view: ClientView): AuthenticatedCaller => {
    let found = callers.get(view);
    if (found === undefined) {
      const clientId = view.record.client_id;
      found = {
        caller: { clientId, organizationId: view.record.organization_id, audiences: view.introspectionAudiences },
        client: { clientId, metadata: view.metadata },
        view,
      };
      callers.set(view, found);
    }
    return found;
  };

  /** Serialized answers, for answers the introspection module shares between requests. */
  const bodies = new WeakMap<IntrospectionAnswer, string>();

  return {
    /** The `token` parameter; undefined when it is missing or empty (refused after authentication, as the engine orders it). */
    parse(params: FormParams): string | undefined {
      return single(params, 'token') || undefined;
    },

    /**
     * What the resource server says about the request it authorizes (docs/tokens.md): `client_ip`
     * (an IP address; anything else is invalid_request), `client_user_agent`, and `dpop_jkt`, the
     * RFC 7638 thumbprint of the key of the DPoP proof it verified (src/tokens/key-binding.ts;
     * anything but a base64url SHA-256 is invalid_request).
     */
    context(params: FormParams): UseContext {
      const clientIp = single(params, 'client_ip') || undefined;
      if (clientIp !== undefined && isIP(clientIp) === 0) throw invalidRequest("'client_ip' must be an IP address");
      const userAgent = single(params, 'client_user_agent') || undefined;
      const dpopJkt = single(params, 'dpop_jkt') || undefined;
      if (dpopJkt !== undefined && !isThumbprint(dpopJkt)) throw invalidRequest("'dpop_jkt' must be the base64url SHA-256 thumbprint of the DPoP proof's key (RFC 7638, 43 characters)");
      return { ...(clientIp !== undefined ? { clientIp } : {}), ...(userAgent !== undefined ? { userAgent } : {}), ...(dpopJkt !== undefined ? { dpopJkt } : {}) };
    },

    authenticate(authorization: string | undefined, params: FormParams, facts: RequestFacts = {}, options: AuthenticateOptions = {}): MaybePromise<AuthenticatedCaller> {
      return andThen(authenticator.authenticate(authorization, params, endpointUrl, facts, options), ({ view }) => callerOf(view));
    },

    /** Refuses a request without a token, then one in a format the client may not get (after authentication, as the engine orders it); the token. */
    negotiate(token: string | undefined, who: AuthenticatedCaller, wantsJwt: boolean): string {
      if (!token) throw invalidRequest("missing required parameter 'token'");
      checkAccept(who.client, wantsJwt);
      return token;
    },

    load(token: string, who: AuthenticatedCaller, context: UseContext = {}): MaybePromise<IntrospectionAnswer | undefined> {
      return introspection.introspect(token, who.caller, context);
    },

    render: {
      json(answer: IntrospectionAnswer): string {
        let body = bodies.get(answer);
        if (body === undefined) {
          body = JSON.stringify(answer);
          if (Object.isFrozen(answer)) bodies.set(answer, body);
        }
        return body;
      },
      async jwt(answer: IntrospectionAnswer, who: AuthenticatedCaller): Promise<string> {
        if (!responder) throw new Error('no RFC 9701 signer on this path');
        return responder.render(answer, who.client);
      },
    },
  };
}
export type IntrospectionSteps = ReturnType<typeof createIntrospectionSteps>;
