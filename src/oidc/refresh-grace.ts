import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { Clock } from '../clock.js';
import type { PolicyService } from '../domain/organization-policy.js';
import { readFormBody } from '../http/form-body.js';
import type { Logger } from '../http/logger.js';
import { OAuthError } from '../http/oauth-error.js';
import type { CacheStore } from '../storage/cache.js';
import type { PrincipalLiveness } from '../tokens/principal-liveness.js';
import type { ClientAuthenticator } from './client-authenticator.js';

/**
 * The refresh-token reuse grace window (RFC 9700 §4.14.2).
 *
 * Tessera rotates refresh tokens on every use, and oidc-provider treats a rotated (consumed) token
 * presented again as theft: it revokes the whole family (every token of the grant). Honest clients
 * present a token twice too: two browser tabs refreshing at the same moment, a mobile app whose
 * first request's answer was lost when the device slept, a retry after a timeout. RFC 9700 §4.14.2
 * lets the server weigh this; Tessera gives a short window (organization policy
 * `refresh_reuse_grace_seconds`, default 5 s) in which the same old token gets the same answer the
 * first use got (same new refresh token, same access token), instead of a revocation. After the
 * window the engine's reuse detection applies unchanged.
 *
 * How:
 * - after a successful rotation (`recorder`, an oidc-provider middleware), the token response is
 *   kept in the cache store for the window, under sha256(old token), encrypted with a key derived
 *   from the old token itself: the store alone never holds a usable token;
 * - before the engine sees a refresh request (`middleware`, in front of oidc-provider), a kept
 *   answer for the presented token is replayed to the same, authenticated client, if its grant
 *   still lives (a family revoked meanwhile stays revoked) and its principal too: the user
 *   deactivated or deleted, or the client's service account disabled, since the rotation gets
 *   the refusal the engine would give, not the kept tokens (src/tokens/principal-liveness.ts);
 * - two requests with the same token at the same moment are serialised by a short lock, so the
 *   second waits for the first one's answer instead of racing it into a false reuse.
 */
const TOKEN_PATH = '/token';
/** How long a rotation may hold the lock; longer than any sane token request. */
const LOCK_SECONDS = 10;
/** How long a concurrent request waits for the rotation in progress, and how often it looks. */
const WAIT_MS = 3_000;
const POLL_MS = 25;

interface GraceRecord {
  clientId: string;
  grantId: string;
  /** Epoch ms of the rotation and of the end of the window (checked on the injected clock). */
  at: number;
  until: number;
  iv: string;
  body: string;
  tag: string;
}

const recordKey = (id: string) => `refresh-grace:${id}`;
const lockKey = (id: string) => `refresh-grace:lock:${id}`;
const fingerprint = (token: string) => createHash('sha256').update(token).digest('base64url');
const keyFor = (token: string) => Buffer.from(hkdfSync('sha256', token, Buffer.alloc(0), 'tessera refresh-token reuse grace', 32));

export interface RefreshGraceDependencies {
  issuer: string;
  cache: CacheStore;
  clock: Clock;
  policies: PolicyService;
  authenticator: ClientAuthenticator;
  logger: Logger;
  /** A grant (a refresh family) if it still exists, with the user it is for. */
  findGrant(grantId: string): Promise<{ accountId?: string } | undefined>;
  /** Whether the grant's client and user may still act (the rule every token check uses). */
  principals: Pick<PrincipalLiveness, 'check'>;
}

export function createRefreshGrace(deps: RefreshGraceDependencies) {
  const { cache, clock } = deps;

  async function load(id: string): Promise<GraceRecord | undefined> {
    const value = await cache.get(recordKey(id));
    if (!value) return undefined;
    const record = JSON.parse(value) as GraceRecord;
    return record.until > clock.now() ? record : undefined;
  }

  async function waitForAnswer(id: string): Promise<GraceRecord | undefined> {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const record = await load(id);
      if (record) return record;
      // The lock is gone without an answer: the first request failed; let the engine judge this one.
      if ((await cache.get(lockKey(id))) === null) return load(id);
    }
    return undefined;
  }

  /** The client making this request, authenticated the way it is registered (src/oidc/client-authenticator.ts). */
  async function callerOf(ctx: Context, params: URLSearchParams): Promise<string> {
    const facts = { requestId: ctx.state.requestId as string | undefined, ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };
    const { view } = await deps.authenticator.authenticate(ctx.get('authorization') || undefined, params, `${deps.issuer}${TOKEN_PATH}`, facts, { publicClients: true });
    return view.record.client_id;
  }

  async function replay(ctx: Context, params: URLSearchParams, token: string, record: GraceRecord): Promise<void> {
    const clientId = await callerOf(ctx, params);
    // The same answers as the engine's, so a caller learns nothing more from this path.
    if (clientId !== record.clientId) throw new OAuthError(400, 'invalid_grant', 'grant request is invalid', {}, 'refresh grace: client mismatch');
    const grant = await deps.findGrant(record.grantId);
    if (!grant) throw new OAuthError(400, 'invalid_grant', 'grant request is invalid', {}, 'refresh grace: family revoked');
    if (!(await deps.principals.check(clientId, grant.accountId ?? null))) throw new OAuthError(400, 'invalid_grant', 'grant request is invalid', {}, 'refresh grace: principal stopped');
    const decipher = createDecipheriv('aes-256-gcm', keyFor(token), Buffer.from(record.iv, 'base64url'));
    decipher.setAAD(Buffer.from(record.clientId));
    decipher.setAuthTag(Buffer.from(record.tag, 'base64url'));
    const body = JSON.parse(Buffer.concat([decipher.update(Buffer.from(record.body, 'base64url')), decipher.final()]).toString('utf8')) as Record<string, unknown>;
    if (typeof body.expires_in === 'number') body.expires_in = Math.max(1, body.expires_in - Math.floor((clock.now() - record.at) / 1000));
    // RFC 6749 §5.1: token responses are never cached.
    ctx.set('cache-control', 'no-store');
    ctx.set('pragma', 'no-cache');
    ctx.status = 200;
    ctx.body = body;
  }

  return {
    /** Koa middleware in front of oidc-provider: replays an answer within the window, or serialises. */
    async middleware(ctx: Context, next: Next): Promise<void> {
      if (ctx.method !== 'POST' || ctx.path !== TOKEN_PATH || !ctx.is('application/x-www-form-urlencoded')) return next();
      const params = await readFormBody(ctx.req);
      const tokens = params.getAll('refresh_token');
      if (params.get('grant_type') !== 'refresh_token' || tokens.length !== 1 || !tokens[0] || tokens[0].length > 1024) return next();
      const token = tokens[0];
      const id = fingerprint(token);
      let record = await load(id);
      if (!record) {
        if (await cache.setIfAbsent(lockKey(id), '1', LOCK_SECONDS)) {
          try {
            return await next();
          } finally {
            await cache.del(lockKey(id)).catch(() => {});
          }
        }
        record = await waitForAnswer(id);
        if (!record) return next();
      }
      await replay(ctx, params, token, record);
    },

    /** oidc-provider middleware: keeps the answer of each successful rotation for the window. */
    async recorder(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
      await next();
      if (ctx.oidc?.route !== 'token' || ctx.status !== 200 || !ctx.oidc.entities.RotatedRefreshToken) return;
      const token = ctx.oidc.params?.refresh_token;
      const client = ctx.oidc.client as unknown as { clientId: string; tessera_organization_id?: string } | undefined;
      const rotated = ctx.oidc.entities.RotatedRefreshToken as unknown as { grantId?: string };
      if (typeof token !== 'string' || !client || !rotated.grantId || typeof ctx.body !== 'object' || ctx.body === null) return;
      try {
        const grace = (await deps.policies.forOrganization(client.tessera_organization_id)).refresh_reuse_grace_seconds;
        if (grace <= 0) return;
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', keyFor(token), iv);
        cipher.setAAD(Buffer.from(client.clientId));
        const body = Buffer.concat([cipher.update(JSON.stringify(ctx.body), 'utf8'), cipher.final()]);
        const now = clock.now();
        const record: GraceRecord = {
          clientId: client.clientId,
          grantId: rotated.grantId,
          at: now,
          until: now + grace * 1000,
          iv: iv.toString('base64url'),
          body: body.toString('base64url'),
          tag: cipher.getAuthTag().toString('base64url'),
        };
        await cache.set(recordKey(fingerprint(token)), JSON.stringify(record), grace);
      } catch (error) {
        // The rotation itself succeeded; without the record a retry is judged as reuse, as it
        // would be with no grace window at all. The client must still get its new tokens.
        deps.logger.warn({ err: error }, 'refresh grace: could not keep the rotation answer');
      }
    },
  };
}
export type RefreshGrace = ReturnType<typeof createRefreshGrace>;
