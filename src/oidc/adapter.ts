import type { Adapter, AdapterPayload } from 'oidc-provider';

import { hash } from 'node:crypto';

import type { Clock } from '../clock.js';
import type { Envelope } from '../keys/envelope.js';
import type { CacheStore } from '../storage/cache.js';
import { isPlausibleId } from '../storage/ids.js';
import type { OidcPayloadRepository } from '../storage/oidc-payload-repository.js';
import { HASHED_ID_MODELS, LEGACY_ID, modelKey, storedId, storedKey } from './model-keys.js';
import { engineSafe } from './unavailable.js';

// The introspection fast path and opaque-token revocation read the cache store through it.
export { modelKey } from './model-keys.js';

/**
 * oidc-provider's storage contract (see its adapter documentation: upsert, find, findByUid,
 * findByUserCode, consume, destroy, revokeByGrantId), split by lifetime:
 * - short-lived models live in the cache store with a TTL, so they cost no database write;
 * - Grant, RefreshToken and registration tokens live in PostgreSQL, because losing them would
 *   sign people out or break integrations;
 * - Client is read from Tessera's own `clients` table through `clientSource`.
 * `revokeByGrantId` reaches both halves (RFC 6749 §4.1.2, §10.4: revoking a grant revokes
 * every token issued from it).
 *
 * Models whose id is a bearer credential are kept under sha256(id) and without `jti` in the
 * payload (src/oidc/model-keys.ts, docs/design.md, "No secret at rest, none in a log"); `find` gives the engine back the jti it looked up
 * with, which BaseModel.find needs to instantiate the token.
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
  /**
   * Until when (epoch ms) a record missing under its hashed id is looked for under its raw id,
   * the layout before ids were hashed; absent, never. Records of the old layout are moved to the
   * new one on first use. app.ts opens this window for the longest access-token lifetime after
   * start-up: see the comment there.
   */
  legacyKeysUntil?: number;
  /**
   * Seals the device code that a user code leads to (RFC 8628 device flow): the engine looks a
   * device code up by the user code and saves it again under its id, which is stored only hashed,
   * so the user-code index keeps the id encrypted with the KEK. Without it, no user-code lookup.
   */
  envelope?: Pick<Envelope, 'seal' | 'open'>;
}

const grantKey = (grantId: string) => `oidc:grant:${grantId}`;
const uidKey = (model: string, uid: string) => `oidc:${model}:uid:${uid}`;
/** The user code is kept only as its SHA-256 too: it is what a user types to approve a device. */
const userCodeKey = (model: string, code: string) => `oidc:${model}:usercode:${hash('sha256', code, 'base64url')}`;
const userCodeContext = (model: string) => `oidc:${model}:usercode`;

/** A stored payload: for a hashed model without `jti`, which is the bearer credential itself. */
function storable(model: string, payload: AdapterPayload): AdapterPayload {
  if (!HASHED_ID_MODELS.has(model) || !('jti' in payload || 'userCode' in payload)) return payload;
  // A device's user code is what approves it: like the id, kept only in the hashed index.
  const { jti: _credential, userCode: _userCode, ...rest } = payload;
  return rest;
}

/** What the engine expects back from find: BaseModel.find instantiates the payload as stored, jti included. */
function found(model: string, id: string, payload: AdapterPayload): AdapterPayload {
  return HASHED_ID_MODELS.has(model) ? { ...payload, jti: id } : payload;
}

/** A factory oidc-provider can construct per model, plus the legacy-layout adoption app.ts needs for opaque tokens. */
export interface AdapterFactory {
  new (name: string): Adapter;
  /**
   * Moves a record of `model` kept under its raw id (the layout before ids were hashed) to its
   * hashed id, while the legacy window is open. True when there was one to move.
   */
  adoptLegacy(model: string, id: string): Promise<boolean>;
}

export function createAdapterFactory(deps: AdapterDependencies): AdapterFactory {
  const { cache, payloads, clientSource, clock } = deps;
  const initialAccessTokens = deps.initialAccessTokens;
  const nowSeconds = () => Math.floor(clock.now() / 1000);
  const now = () => new Date(clock.now());
  /**
   * Whether `id` may still be kept under its raw value by the layout before ids were hashed:
   * only during the legacy window, only for a hashed model, only for a value shaped like an id
   * the engine generates.
   */
  const mayBeLegacy = (model: string, id: string) =>
    deps.legacyKeysUntil !== undefined && clock.now() < deps.legacyKeysUntil && HASHED_ID_MODELS.has(model) && LEGACY_ID.test(id);

  class CacheAdapter implements Adapter {
    constructor(private readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const stored = storedId(this.name, id);
      await cache.set(storedKey(this.name, stored), JSON.stringify(storable(this.name, payload)), expiresIn);
      await this.index(id, payload, expiresIn);
    }

    /**
     * Secondary keys: the grant's member list, the uid and user-code lookups. They name the stored
     * id, except the user-code lookup of a hashed model, which holds the id sealed with the KEK.
     */
    async index(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const stored = storedId(this.name, id);
      if (payload.grantId && GRANTABLE_MODELS.has(this.name)) await cache.addToSet(grantKey(payload.grantId), storedKey(this.name, stored), expiresIn);
      if (payload.uid) await cache.set(uidKey(this.name, payload.uid), stored, expiresIn);
      if (typeof payload.userCode === 'string' && deps.envelope) {
        const target = HASHED_ID_MODELS.has(this.name) ? deps.envelope.seal(id, userCodeContext(this.name)) : id;
        await cache.set(userCodeKey(this.name, payload.userCode), target, expiresIn);
      }
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const value = await cache.get(modelKey(this.name, id));
      if (value) return found(this.name, id, JSON.parse(value) as AdapterPayload);
      if (await this.adoptLegacy(id)) return this.find(id);
      return undefined;
    }

    /**
     * A record of the layout before ids were hashed, kept under `oidc:<model>:<raw id>` with the
     * id as `jti` in its payload, is moved to the hashed key for the rest of its life, so every
     * later read, consume, destroy and grant revocation acts on one record.
     */
    async adoptLegacy(id: string): Promise<boolean> {
      if (!mayBeLegacy(this.name, id)) return false;
      const legacyKey = storedKey(this.name, id);
      const value = await cache.get(legacyKey);
      if (!value) return false;
      const payload = JSON.parse(value) as AdapterPayload;
      // Only a record of the old layout names its own id. A hashed record has no jti, so a
      // digest read out of the store and presented as a token is never taken for one.
      if (payload.jti !== id) return false;
      const remaining = typeof payload.exp === 'number' ? payload.exp - nowSeconds() : 0;
      if (remaining <= 0) return false;
      const stored = storedId(this.name, id);
      // NX: a record another node adopted (and perhaps consumed) meanwhile is never overwritten.
      if (await cache.setIfAbsent(storedKey(this.name, stored), JSON.stringify(storable(this.name, payload)), remaining)) {
        await this.index(id, payload, remaining);
      }
      await cache.del(legacyKey);
      return true;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const stored = await cache.get(uidKey(this.name, uid));
      if (!stored) return undefined;
      if (!HASHED_ID_MODELS.has(this.name)) return this.find(stored);
      // The engine looks up only Sessions by uid. A hashed model's raw id is nowhere in storage,
      // so its record comes back without jti.
      const value = await cache.get(storedKey(this.name, stored));
      return value ? (JSON.parse(value) as AdapterPayload) : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      // The engine saves the device code again under the jti it gets back here, and only a
      // digest of it is stored: the index gives the id back, sealed with the KEK (see `index`).
      if (!deps.envelope) return undefined;
      const target = await cache.get(userCodeKey(this.name, userCode));
      if (!target) return undefined;
      let id: string;
      try {
        id = HASHED_ID_MODELS.has(this.name) ? deps.envelope.open(target, userCodeContext(this.name)) : target;
      } catch {
        return undefined;
      }
      // Found through the digest of the code, so this is its record: the engine compares the code it holds.
      const found = await this.find(id);
      return found && HASHED_ID_MODELS.has(this.name) ? { ...found, userCode } : found;
    }

    async consume(id: string): Promise<void> {
      const key = modelKey(this.name, id);
      let value = await cache.get(key);
      if (!value && (await this.adoptLegacy(id))) value = await cache.get(key);
      if (!value) return;
      await cache.replaceKeepTtl(key, JSON.stringify({ ...(JSON.parse(value) as AdapterPayload), consumed: nowSeconds() }));
    }

    async destroy(id: string): Promise<void> {
      await this.adoptLegacy(id);
      await cache.del(modelKey(this.name, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeGrant(grantId);
    }
  }

  class DatabaseAdapter implements Adapter {
    constructor(private readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? new Date(clock.now() + expiresIn * 1000) : null;
      await payloads.upsert(this.name, storedId(this.name, id), storable(this.name, payload) as Record<string, unknown>, expiresAt);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!isPlausibleId(id)) return undefined;
      const stored = storedId(this.name, id);
      if (!mayBeLegacy(this.name, id)) {
        const payload = (await payloads.find(this.name, stored, now())) as AdapterPayload | undefined;
        return payload && found(this.name, id, payload);
      }
      // In the legacy window one query looks for both layouts, so a miss costs no more than after it.
      const row = await payloads.findOrLegacy(this.name, stored, id, now());
      if (!row) return undefined;
      if (row.legacy) await payloads.adoptLegacyId(this.name, id, stored);
      return found(this.name, id, row.payload as AdapterPayload);
    }

    /**
     * migrations/1700000009000_hashed_oidc_ids.sql converts the rows that exist when it runs; a
     * row a node of the previous release writes after that (during a rolling upgrade) is
     * converted here when it is first used within the legacy window. consume and destroy reach
     * such a row in the same statement as the hashed one.
     */
    async adoptLegacy(id: string): Promise<boolean> {
      if (!mayBeLegacy(this.name, id)) return false;
      return payloads.adoptLegacyId(this.name, id, storedId(this.name, id));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!isPlausibleId(uid)) return undefined;
      return (await payloads.findByUid(this.name, uid, now())) as AdapterPayload | undefined;
    }

    async findByUserCode(): Promise<AdapterPayload | undefined> {
      return undefined;
    }

    async consume(id: string): Promise<void> {
      if (!isPlausibleId(id)) return;
      await payloads.consume(this.name, storedId(this.name, id), now(), mayBeLegacy(this.name, id) ? id : undefined);
    }

    async destroy(id: string): Promise<void> {
      if (!isPlausibleId(id)) return;
      await payloads.destroy(this.name, storedId(this.name, id), mayBeLegacy(this.name, id) ? id : undefined);
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

  const innerAdapter = (name: string): Adapter => {
    if (name === 'Client') return new ClientAdapter();
    if (name === 'InitialAccessToken' && initialAccessTokens) return new InitialAccessTokenAdapter();
    if (CACHED_MODELS.has(name)) return new CacheAdapter(name);
    return new DatabaseAdapter(name);
  };

  return class TesseraAdapter implements Adapter {
    private readonly inner: Adapter;

    constructor(name: string) {
      this.inner = innerAdapter(name);
    }

    static async adoptLegacy(model: string, id: string): Promise<boolean> {
      if (!mayBeLegacy(model, id)) return false;
      const inner = innerAdapter(model);
      return inner instanceof CacheAdapter || inner instanceof DatabaseAdapter ? inner.adoptLegacy(id) : false;
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
