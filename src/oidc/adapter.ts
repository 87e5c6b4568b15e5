import { createHash } from 'node:crypto';

import type { Adapter, AdapterPayload } from 'oidc-provider';

import type { Clock } from '../clock.js';
import type { CacheStore } from '../storage/cache.js';
import { isPlausibleId } from '../storage/ids.js';
import { engineSafe } from './unavailable.js';
import type { OidcPayloadRepository } from '../storage/oidc-payload-repository.js';

/**
 * oidc-provider's storage contract (see its adapter documentation: upsert, find, findByUid,
 * findByUserCode, consume, destroy, revokeByGrantId), split by lifetime:
 * - short-lived models live in the cache store with a TTL, so they cost no database write;
 * - Grant, RefreshToken and registration tokens live in PostgreSQL, because losing them would
 *   sign people out or break integrations;
 * - Client is read from Tessera's own `clients` table through `clientSource`.
 * `revokeByGrantId` reaches both halves (RFC 6749 §4.1.2, §10.4: revoking a grant revokes
 * every token issued from it).
 */
export const CACHED_MODELS = new Set([
  'Session',
  'Interaction',
  'AuthorizationCode',
  'PushedAuthorizationRequest',
  'ReplayDetection',
  'AccessToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** Models revoked with their grant (RFC 6749 §4.1.2); an Interaction in progress is not one of them. */
const GRANTABLE_MODELS = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export interface ClientSource {
  find(clientId: string): Promise<AdapterPayload | undefined>;
  upsert?(clientId: string, metadata: AdapterPayload): Promise<void>;
  destroy?(clientId: string): Promise<void>;
}

/** RFC 7591 initial access tokens are issued by the Management API and only read by the engine. */
export interface InitialAccessTokenSource {
  find(value: string): Promise<AdapterPayload | undefined>;
}

export interface AdapterDependencies {
  cache: CacheStore;
  payloads: OidcPayloadRepository;
  clientSource: ClientSource;
  initialAccessTokens?: InitialAccessTokenSource;
  clock: Clock;
}

/**
 * Durable models whose id is the bearer credential itself: stored under sha256(id), so a copy of
 * the database holds no usable registration access token (principle 6).
 */
export const HASHED_ID_MODELS = new Set(['RegistrationAccessToken']);
const storedId = (model: string, id: string) => (HASHED_ID_MODELS.has(model) ? createHash('sha256').update(id).digest('base64url') : id);

/** Cache key of an oidc-provider model; exported because the introspection fast path reads it too. */
export const modelKey = (model: string, id: string) => `oidc:${model}:${id}`;
const grantKey = (grantId: string) => `oidc:grant:${grantId}`;
const uidKey = (model: string, uid: string) => `oidc:${model}:uid:${uid}`;
const userCodeKey = (model: string, code: string) => `oidc:${model}:usercode:${code}`;

export function createAdapterFactory(deps: AdapterDependencies): new (name: string) => Adapter {
  const { cache, payloads, clientSource, clock } = deps;
  const initialAccessTokens = deps.initialAccessTokens;
  const nowSeconds = () => Math.floor(clock.now() / 1000);

  class CacheAdapter implements Adapter {
    constructor(private readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const key = modelKey(this.name, id);
      await cache.set(key, JSON.stringify(payload), expiresIn);
      if (payload.grantId && GRANTABLE_MODELS.has(this.name)) await cache.addToSet(grantKey(payload.grantId), key, expiresIn);
      if (payload.uid) await cache.set(uidKey(this.name, payload.uid), id, expiresIn);
      if (payload.userCode) await cache.set(userCodeKey(this.name, payload.userCode), id, expiresIn);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const value = await cache.get(modelKey(this.name, id));
      return value ? (JSON.parse(value) as AdapterPayload) : undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const id = await cache.get(uidKey(this.name, uid));
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const id = await cache.get(userCodeKey(this.name, userCode));
      return id ? this.find(id) : undefined;
    }

    async consume(id: string): Promise<void> {
      const key = modelKey(this.name, id);
      const value = await cache.get(key);
      if (!value) return;
      await cache.replaceKeepTtl(key, JSON.stringify({ ...(JSON.parse(value) as AdapterPayload), consumed: nowSeconds() }));
    }

    async destroy(id: string): Promise<void> {
      await cache.del(modelKey(this.name, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeGrant(grantId);
    }
  }

  class DatabaseAdapter implements Adapter {
    constructor(private readonly name: string) {}


    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      await payloads.upsert(this.name, storedId(this.name, id), payload as Record<string, unknown>, expiresIn ? new Date(clock.now() + expiresIn * 1000) : null);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!isPlausibleId(id)) return undefined;
      return (await payloads.find(this.name, storedId(this.name, id), new Date(clock.now()))) as AdapterPayload | undefined;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!isPlausibleId(uid)) return undefined;
      return (await payloads.findByUid(this.name, uid, new Date(clock.now()))) as AdapterPayload | undefined;
    }

    async findByUserCode(): Promise<AdapterPayload | undefined> {
      return undefined;
    }

    async consume(id: string): Promise<void> {
      await payloads.consume(this.name, storedId(this.name, id), new Date(clock.now()));
    }

    async destroy(id: string): Promise<void> {
      await payloads.destroy(this.name, storedId(this.name, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeGrant(grantId);
    }
  }

  class ClientAdapter implements Adapter {
    async upsert(id: string, payload: AdapterPayload): Promise<void> {
      if (!clientSource.upsert) throw new Error('clients are managed through the Management API');
      await clientSource.upsert(id, payload);
    }

    find(id: string): Promise<AdapterPayload | undefined> {
      return clientSource.find(id);
    }

    async findByUid(): Promise<undefined> {
      return undefined;
    }

    async findByUserCode(): Promise<undefined> {
      return undefined;
    }

    async consume(): Promise<void> {}

    async destroy(id: string): Promise<void> {
      await clientSource.destroy?.(id);
    }

    async revokeByGrantId(): Promise<void> {}
  }

  class InitialAccessTokenAdapter implements Adapter {
    async upsert(): Promise<void> {
      throw new Error('initial access tokens are issued through the Management API');
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return initialAccessTokens?.find(id);
    }

    async findByUid(): Promise<undefined> {
      return undefined;
    }

    async findByUserCode(): Promise<undefined> {
      return undefined;
    }

    async consume(): Promise<void> {}

    // RFC 7591 lets a token serve several registrations until it expires; revocation is the
    // Management API's.
    async destroy(): Promise<void> {}

    async revokeByGrantId(): Promise<void> {}
  }

  async function revokeGrant(grantId: string): Promise<void> {
    const keys = await cache.members(grantKey(grantId));
    await cache.del(...keys, grantKey(grantId));
    await payloads.revokeByGrantId(grantId);
  }

  return class TesseraAdapter implements Adapter {
    private readonly inner: Adapter;

    constructor(name: string) {
      if (name === 'Client') this.inner = new ClientAdapter();
      else if (name === 'InitialAccessToken' && initialAccessTokens) this.inner = new InitialAccessTokenAdapter();
      else if (CACHED_MODELS.has(name)) this.inner = new CacheAdapter(name);
      else this.inner = new DatabaseAdapter(name);
    }

    // Every call goes through engineSafe: a storage outage becomes 503 temporarily_unavailable.
    upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      return engineSafe(() => this.inner.upsert(id, payload, expiresIn));
    }
    find(id: string) {
      return engineSafe(() => this.inner.find(id));
    }
    findByUid(uid: string) {
      return engineSafe(() => this.inner.findByUid(uid));
    }
    findByUserCode(userCode: string) {
      return engineSafe(() => this.inner.findByUserCode(userCode));
    }
    consume(id: string) {
      return engineSafe(() => this.inner.consume(id));
    }
    destroy(id: string) {
      return engineSafe(() => this.inner.destroy(id));
    }
    revokeByGrantId(grantId: string) {
      return engineSafe(() => this.inner.revokeByGrantId(grantId));
    }
  };
}
