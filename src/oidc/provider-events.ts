import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { Logger } from '../http/logger.js';
import type { TesseraMetrics } from '../metrics/metrics.js';
import type { AuditEvent, AuditLog } from '../audit/audit-event.js';
import type { ExchangeRecord } from './token-exchange.js';

type ClientLike = { clientId?: string; tessera_organization_id?: string; clientName?: string } | undefined;
type TokenLike = { aud?: string | string[]; scope?: string; format?: string; jti?: string; accountId?: string; grantId?: string; resourceServer?: { audience?: string; accessTokenFormat?: string } } | undefined;

function requestFacts(ctx: KoaContextWithOIDC): Pick<AuditEvent, 'requestId' | 'ip' | 'userAgent'> {
  // The engine runs as its own Koa app: Tessera's request id reaches it as the response header set before it.
  const requestId = (ctx.state?.requestId as string | undefined) ?? (String(ctx.res.getHeader('x-request-id') ?? '') || undefined);
  return { requestId, ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };
}

/**
 * Turns oidc-provider's events into audit events (docs/design.md, "Every use leaves a trace"): tokens issued at /token with
 * grant type, client, audience and scopes; refreshes; failed client authentication; revoked
 * grants. Listeners only queue events, so they add nothing to the token endpoint's latency.
 */
export function attachProviderAuditing(
  provider: Provider,
  audit: AuditLog,
  logger: Logger,
  metrics?: Pick<TesseraMetrics, 'tokenIssued' | 'tokenRevoked'>,
  /** Where failed /token requests go: anyone can send them, so repeats are folded into one event (src/audit/failure-aggregator.ts). */
  failureAudit: Pick<AuditLog, 'record'> = audit,
): void {
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client as ClientLike;
    const grantType = String(ctx.oidc.params?.grant_type ?? '');
    const entities = ctx.oidc.entities as Record<string, TokenLike>;
    const token = entities.ClientCredentials ?? entities.AccessToken;
    const audience = token?.resourceServer?.audience ?? token?.aud;
    // The grant handler has set the response by now: what it holds is what was issued (the
    // engine keeps no IdToken entity, and a refresh may or may not rotate its token).
    const body = ctx.body && typeof ctx.body === 'object' ? (ctx.body as { refresh_token?: unknown; id_token?: unknown }) : undefined;
    const refreshIssued = body ? Boolean(body.refresh_token) : Boolean(entities.RefreshToken);
    const idTokenIssued = body ? Boolean(body.id_token) : Boolean(entities.IdToken);
    if (metrics) {
      const org = client?.tessera_organization_id;
      metrics.tokenIssued(grantType, 'access_token', org);
      if (refreshIssued) metrics.tokenIssued(grantType, 'refresh_token', org);
      if (idTokenIssued) metrics.tokenIssued(grantType, 'id_token', org);
    }
    const exchange = entities.TokenExchange as ExchangeRecord | undefined;
    if (exchange) {
      // RFC 8693: what was exchanged for what, by which client (src/oidc/token-exchange.ts).
      audit.record({
        organizationId: client?.tessera_organization_id ?? null,
        actor: { type: 'client', id: client?.clientId ?? null },
        action: 'token.exchanged',
        target: { type: exchange.subject.kind === 'access_token' ? 'access_token' : 'reference_token', id: exchange.subject.id },
        outcome: 'success',
        ...requestFacts(ctx),
        details: {
          ...(exchange.actor ? { actor: exchange.actor } : {}),
          audience: exchange.audience,
          client_id: client?.clientId,
          expires_in: exchange.expiresIn,
          scope: exchange.scope,
          subject: exchange.subject,
          token_format: token?.resourceServer?.accessTokenFormat ?? 'opaque',
          token_type: (token as { tokenType?: string } | undefined)?.tokenType,
        },
      });
      return;
    }
    audit.record({
      organizationId: client?.tessera_organization_id ?? null,
      actor: token?.accountId ? { type: 'user', id: token.accountId } : { type: 'client', id: client?.clientId ?? null },
      action: grantType === 'refresh_token' ? 'token.refreshed' : 'token.issued',
      target: { type: 'client', id: client?.clientId ?? '' },
      outcome: 'success',
      ...requestFacts(ctx),
      // Members in sorted order: the audit writer's canonical JSON then serialises them as they are.
      details: {
        audience,
        client_id: client?.clientId,
        grant_id: token?.grantId,
        grant_type: grantType,
        id_token_issued: idTokenIssued,
        refresh_token_issued: refreshIssued,
        scope: token?.scope,
        token_format: token?.resourceServer?.accessTokenFormat ?? 'opaque',
      },
    });
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error?: string; error_description?: string }) => {
    // A device polling for its code (RFC 8628 §3.5) is told to wait: not a failed request.
    if (error.error === 'authorization_pending' || error.error === 'slow_down') return;
    const client = ctx.oidc?.client as ClientLike;
    const clientId = client?.clientId ?? (typeof ctx.oidc?.params?.client_id === 'string' ? ctx.oidc.params.client_id : undefined);
    failureAudit.record({
      organizationId: client?.tessera_organization_id ?? null,
      actor: { type: 'client', id: clientId ?? null },
      action: error.error === 'invalid_client' ? 'client.authentication_failed' : 'token.request_failed',
      target: clientId ? { type: 'client', id: clientId } : undefined,
      outcome: 'failure',
      ...requestFacts(ctx),
      details: { grant_type: ctx.oidc?.params?.grant_type, error: error.error, error_description: error.error_description },
    });
  });

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    const client = ctx.oidc?.client as ClientLike;
    // At the token endpoint with grant_type=refresh_token the engine revokes a grant for one
    // reason only: a consumed refresh token was presented again (rotation reuse detection), and
    // the whole family goes with it.
    const reuse = ctx.oidc?.route === 'token' && ctx.oidc?.params?.grant_type === 'refresh_token';
    const reason = reuse ? 'reuse_detected' : ctx.oidc?.route === 'revocation' ? 'rfc7009' : 'other';
    const account = (ctx.oidc?.entities as Record<string, TokenLike> | undefined)?.RefreshToken?.accountId;
    metrics?.tokenRevoked(reason, reuse ? 'refresh_token' : 'grant', client?.tessera_organization_id);
    audit.record({
      organizationId: client?.tessera_organization_id ?? null,
      actor: { type: 'client', id: client?.clientId ?? null },
      action: reuse ? 'token.refresh_reuse_detected' : 'grant.revoked',
      target: { type: 'grant', id: grantId },
      outcome: reuse ? 'failure' : 'success',
      ...requestFacts(ctx),
      details: { route: ctx.oidc?.route, reason, ...(reuse ? { family_revoked: true, account_id: account } : {}) },
    });
  });

  provider.on('server_error', (ctx: KoaContextWithOIDC, error: Error) => {
    logger.error({ requestId: ctx.state?.requestId, err: error, route: ctx.oidc?.route }, 'engine server error');
  });
}
