import { createHash, randomBytes } from 'node:crypto';

import type { Clock } from '../clock.js';
import type { Envelope } from '../keys/envelope.js';
import type { CacheStore } from '../storage/cache.js';

/**
 * The console's server-side sessions (backend for frontend): the browser holds only a random
 * session id in an HttpOnly cookie; the person's Management API tokens stay here. docs/design.md,
 * "No secret at rest, none in a log": the cache store keys entries by the SHA-256 of the id, and
 * the value is sealed with the key-encryption key and bound to that digest, so neither a copy of
 * Redis nor a copy of the cookie store alone yields a token. Entries carry a TTL; idle and
 * absolute lifetimes are judged on Tessera's clock, so every backend expires a session alike.
 */
export interface ConsoleSession {
  organizationId: string;
  userId: string;
  username: string;
  /** Effective Management API scopes of the access token (narrowed to the person's role). */
  scopes: string[];
  accessToken: string;
  /** Milliseconds since the epoch. */
  accessTokenExpiresAt: number;
  refreshToken: string | undefined;
  createdAt: number;
  lastSeenAt: number;
}

/**
 * What a page shows once after a POST (a new token, a generated password, a client secret):
 * kept here, sealed, under a random id for a few minutes, so the POST can answer with a
 * redirect and a reload of the page that shows it submits nothing again (post/redirect/get).
 */
export interface ShownOnce {
  title: string;
  notice?: string;
  facts?: { label: string; value: string }[];
  secrets: { label: string; value: string }[];
  /** When the credential expires (RFC 3339), and whether it is used as a Bearer token. */
  expiresAt?: string;
  bearer?: boolean;
  /** Until when the replaced secret keeps working (RFC 3339). */
  grace?: string | null;
  back: string;
}

/** A sign-in on its way through /auth: what the callback must find again. */
export interface PendingSignIn {
  state: string;
  codeVerifier: string;
  organizationId: string;
  returnTo: string;
}

export interface ConsoleSessionOptions {
  cache: CacheStore;
  envelope: Envelope;
  clock: Clock;
  /** A session unused this long ends. */
  idleSeconds: number;
  /** A session ends this long after sign-in, however busy. */
  absoluteSeconds: number;
}

/** Ten minutes to sign in, the lifetime of an interaction. */
const PENDING_SECONDS = 600;
/** A secret waits this long for its page to be opened; then it is gone. */
const SHOWN_ONCE_SECONDS = 300;
const digest = (id: string) => createHash('sha256').update(id).digest('base64url');
export const newOpaqueId = () => randomBytes(32).toString('base64url');
const ID_SHAPE = /^[\w-]{43}$/;

export function createConsoleSessions(options: ConsoleSessionOptions) {
  const { cache, envelope, clock } = options;
  const sessionKey = (d: string) => `console:session:${d}`;
  const pendingKey = (d: string) => `console:sign-in:${d}`;
  // Bound to the session: another browser with the same link finds nothing.
  const shownKey = (session: string, d: string) => `console:shown:${digest(session)}:${d}`;

  async function write(id: string, session: ConsoleSession): Promise<void> {
    const d = digest(id);
    const left = Math.min(options.idleSeconds, Math.ceil((session.createdAt + options.absoluteSeconds * 1000 - clock.now()) / 1000));
    if (left <= 0) return;
    await cache.set(sessionKey(d), envelope.seal(JSON.stringify(session), `console-session:${d}`), left);
  }

  return {
    idleSeconds: options.idleSeconds,
    /** Starts a session; returns the id for the cookie. */
    async create(session: Omit<ConsoleSession, 'createdAt' | 'lastSeenAt'>): Promise<string> {
      const id = newOpaqueId();
      const now = clock.now();
      await write(id, { ...session, createdAt: now, lastSeenAt: now });
      return id;
    },
    /** The live session of `id`, or undefined when it is unknown, idle too long or too old. */
    async get(id: string | undefined): Promise<ConsoleSession | undefined> {
      if (!id || !ID_SHAPE.test(id)) return undefined;
      const d = digest(id);
      const sealed = await cache.get(sessionKey(d));
      if (!sealed) return undefined;
      let session: ConsoleSession;
      try {
        session = JSON.parse(envelope.open(sealed, `console-session:${d}`)) as ConsoleSession;
      } catch {
        return undefined;
      }
      const now = clock.now();
      if (now - session.lastSeenAt > options.idleSeconds * 1000 || now - session.createdAt > options.absoluteSeconds * 1000) {
        await cache.del(sessionKey(d));
        return undefined;
      }
      return session;
    },
    /** Saves a changed session (new tokens) and starts a fresh idle period. */
    async touch(id: string, session: ConsoleSession): Promise<void> {
      session.lastSeenAt = clock.now();
      await write(id, session);
    },
    async destroy(id: string | undefined): Promise<void> {
      if (id && ID_SHAPE.test(id)) await cache.del(sessionKey(digest(id)));
    },
    async beginSignIn(pending: PendingSignIn): Promise<string> {
      const id = newOpaqueId();
      const d = digest(id);
      await cache.set(pendingKey(d), envelope.seal(JSON.stringify(pending), `console-sign-in:${d}`), PENDING_SECONDS);
      return id;
    },
    /** Keeps what a page shows once for the session `sessionId`; returns the id of its page. */
    async stashShownOnce(sessionId: string, shown: ShownOnce): Promise<string> {
      const id = newOpaqueId();
      const key = shownKey(sessionId, digest(id));
      await cache.set(key, envelope.seal(JSON.stringify(shown), key), SHOWN_ONCE_SECONDS);
      return id;
    },
    /** What `stashShownOnce` kept under `id`, taken once: the second look finds nothing. */
    async takeShownOnce(sessionId: string, id: string | undefined): Promise<ShownOnce | undefined> {
      if (!id || !ID_SHAPE.test(id) || !ID_SHAPE.test(sessionId)) return undefined;
      const key = shownKey(sessionId, digest(id));
      const sealed = await cache.getDel(key);
      if (!sealed) return undefined;
      try {
        return JSON.parse(envelope.open(sealed, key)) as ShownOnce;
      } catch {
        return undefined;
      }
    },
    /** The pending sign-in of `id`, taken once: a second callback with the same cookie finds nothing. */
    async takeSignIn(id: string | undefined): Promise<PendingSignIn | undefined> {
      if (!id || !ID_SHAPE.test(id)) return undefined;
      const d = digest(id);
      const sealed = await cache.getDel(pendingKey(d));
      if (!sealed) return undefined;
      try {
        return JSON.parse(envelope.open(sealed, `console-sign-in:${d}`)) as PendingSignIn;
      } catch {
        return undefined;
      }
    },
  };
}
export type ConsoleSessions = ReturnType<typeof createConsoleSessions>;
