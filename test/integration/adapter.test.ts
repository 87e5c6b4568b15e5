/**
 * oidc-provider's Adapter contract (upsert, find, findByUid, consume, destroy,
 * revokeByGrantId) for Tessera's split adapter: AccessToken, ClientCredentials, codes and PAR
 * requests are cached models (cache store with a TTL), Grant, RefreshToken and registration
 * access tokens durable ones (PostgreSQL). Run on every backend.
 *
 * docs/design.md, "No secret at rest, none in a log": a model whose id is a bearer credential is stored under the id's SHA-256 and
 * without the id in its payload, so nothing a client could present is at rest; records of the
 * layout before that are converted by a migration (durable) or adopted on first use (cached).
 */
import { hash, randomBytes } from 'node:crypto';

import type { Adapter, AdapterPayload } from 'oidc-provider';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { AdapterDependencies, AdapterFactory, ClientSource } from '../../src/oidc/adapter.js';
import { CACHED_MODELS, createAdapterFactory } from '../../src/oidc/adapter.js';
import { HASHED_ID_MODELS, modelKey } from '../../src/oidc/model-keys.js';
import { migrate } from '../../src/storage/migrate.js';
import { createOidcPayloadRepository } from '../../src/storage/oidc-payload-repository.js';
import type { OpenedBackend, TestClock } from '../helpers/backends.js';
import { backends, createTestClock, elapse } from '../helpers/backends.js';
import { containing, storedText } from '../helpers/stored-text.js';

// The engine's ids are 256 bits of nanoid; 16 bytes keep the fixtures short.
const newId = () => randomBytes(16).toString('base64url');
const epoch = (clock: TestClock) => Math.floor(clock.now() / 1000);
/** SHA-256, base64url without padding: computed here independently of the code under test. */
const sha256 = (value: string) => hash('sha256', value, 'base64url');
const withoutJti = ({ jti: _jti, ...rest }: AdapterPayload) => rest;

/** The dependency, not the thing under test: a fixed client list. */
function createClientSource(): ClientSource & { clients: Map<string, AdapterPayload> } {
  const clients = new Map<string, AdapterPayload>([['app-1', { client_id: 'app-1', redirect_uris: ['https://app.example.test/cb'] }]]);
  return {
    clients,
    async find(clientId) {
      return clients.get(clientId);
    },
  };
}

function accessTokenPayload(clock: TestClock, grantId: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
  const iat = epoch(clock);
  return {
    kind: 'AccessToken',
    jti: newId(),
    accountId: 'usr_alice',
    clientId: 'app-1',
    grantId,
    gty: 'authorization_code',
    scope: 'openid orders:read',
    aud: 'https://api.example.test/orders',
    iat,
    exp: iat + 600,
    extra: { org: 'org_1' },
    ...extra,
  } as AdapterPayload;
}

function refreshTokenPayload(clock: TestClock, grantId: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
  const iat = epoch(clock);
  return {
    kind: 'RefreshToken',
    jti: newId(),
    accountId: 'usr_alice',
    clientId: 'app-1',
    grantId,
    gty: 'authorization_code',
    scope: 'openid offline_access orders:read',
    rotations: 0,
    iat,
    exp: iat + 86_400,
    iiat: iat,
    ...extra,
  } as AdapterPayload;
}

/** Another token-like model (code, PAR request, client-credentials or registration token). */
function tokenPayload(kind: string) {
  return (clock: TestClock, grantId: string, extra: Partial<AdapterPayload> = {}): AdapterPayload => {
    const iat = epoch(clock);
    return {
      kind,
      jti: newId(),
      clientId: 'app-1',
      ...(kind === 'AuthorizationCode' ? { grantId, accountId: 'usr_alice', codeChallenge: newId(), codeChallengeMethod: 'S256', redirectUri: 'https://app.example.test/cb' } : {}),
      ...(kind === 'PushedAuthorizationRequest' ? { request: `eyJhbGciOiJub25lIn0.${newId()}.` } : {}),
      ...(kind === 'ClientCredentials' ? { scope: 'orders:read', aud: 'https://api.example.test/orders', extra: { org_id: 'org_1' } } : {}),
      iat,
      exp: iat + 600,
      ...extra,
    } as AdapterPayload;
  };
}

function grantPayload(clock: TestClock, grantId: string): AdapterPayload {
  const iat = epoch(clock);
  return {
    kind: 'Grant',
    jti: grantId,
    accountId: 'usr_alice',
    clientId: 'app-1',
    openid: { scope: 'openid offline_access' },
    resources: { 'https://api.example.test/orders': 'orders:read' },
    iat,
    exp: iat + 1_209_600,
  } as AdapterPayload;
}

describe.each(backends)('oidc-provider adapter on $name', (backendFactory) => {
  let backend: OpenedBackend;
  let clock: TestClock;
  let TesseraAdapter: new (name: string) => Adapter;
  let accessTokens: Adapter;
  let refreshTokens: Adapter;
  let grants: Adapter;
  let dependencies: AdapterDependencies;

  beforeAll(async () => {
    clock = createTestClock();
    backend = await backendFactory.open(clock);
    dependencies = {
      cache: backend.cache,
      payloads: createOidcPayloadRepository(backend.db),
      clientSource: createClientSource(),
      clock,
    };
    // As a node runs once the legacy window is over: every record in the hashed layout.
    TesseraAdapter = createAdapterFactory(dependencies);
  });
  afterAll(async () => {
    await backend?.close();
  });
  beforeEach(() => {
    // A fresh adapter per model and test, as oidc-provider constructs one per model.
    accessTokens = new TesseraAdapter('AccessToken');
    refreshTokens = new TesseraAdapter('RefreshToken');
    grants = new TesseraAdapter('Grant');
  });

  it('keeps AccessToken in the cache store and Grant and RefreshToken in the database, tokens under their SHA-256 only', async () => {
    expect(CACHED_MODELS.has('AccessToken')).toBe(true);
    expect(CACHED_MODELS.has('RefreshToken')).toBe(false);
    expect(CACHED_MODELS.has('Grant')).toBe(false);

    const grantId = newId();
    const at = accessTokenPayload(clock, grantId);
    const rt = refreshTokenPayload(clock, grantId);
    await accessTokens.upsert(at.jti!, at, 600);
    await refreshTokens.upsert(rt.jti!, rt, 86_400);
    await grants.upsert(grantId, grantPayload(clock, grantId), 1_209_600);

    const { rows } = await backend.db.query<{ model: string; id: string; grant_id: string | null; payload: AdapterPayload }>(
      'SELECT model, id, grant_id, payload FROM oidc_payloads WHERE id = $1 OR grant_id = $1 ORDER BY model',
      [grantId],
    );
    // Durable rows survive a restart of every node; the access token costs no database write.
    // The refresh token's row is named by its digest, and its payload no longer repeats it.
    expect(rows.map(({ model, id, grant_id }) => ({ model, id, grant_id }))).toEqual([
      { model: 'Grant', id: grantId, grant_id: null },
      { model: 'RefreshToken', id: sha256(rt.jti!), grant_id: grantId },
    ]);
    expect(rows[1]!.payload).toEqual(withoutJti(rt));

    // The cache store holds the access token under its digest, and nothing under its value.
    expect(await backend.cache.get(`oidc:AccessToken:${at.jti}`)).toBeNull();
    expect(JSON.parse((await backend.cache.get(`oidc:AccessToken:${sha256(at.jti!)}`))!)).toEqual(withoutJti(at));
    expect(modelKey('AccessToken', at.jti!)).toBe(`oidc:AccessToken:${sha256(at.jti!)}`);
    // Nothing stored anywhere (every table; every Redis key and value) contains either token.
    expect(containing(await storedText(backend), { access_token: at.jti!, refresh_token: rt.jti! })).toEqual([]);
  });

  describe.each([
    { model: 'AccessToken', make: accessTokenPayload, expiresIn: 600 },
    { model: 'ClientCredentials', make: tokenPayload('ClientCredentials'), expiresIn: 600 },
    { model: 'AuthorizationCode', make: tokenPayload('AuthorizationCode'), expiresIn: 60 },
    { model: 'PushedAuthorizationRequest', make: tokenPayload('PushedAuthorizationRequest'), expiresIn: 60 },
    { model: 'RefreshToken', make: refreshTokenPayload, expiresIn: 86_400 },
    { model: 'RegistrationAccessToken', make: tokenPayload('RegistrationAccessToken'), expiresIn: 0 },
    { model: 'Grant', make: (clock: TestClock, grantId: string) => grantPayload(clock, grantId), expiresIn: 1_209_600 },
  ])('$model', ({ model, make, expiresIn }) => {
    let adapter: Adapter;
    beforeEach(() => {
      adapter = new TesseraAdapter(model);
    });
    const fresh = () => {
      const grantId = newId();
      const payload = make(clock, grantId);
      return { id: (model === 'Grant' ? grantId : payload.jti)!, payload };
    };
    const hashed = HASHED_ID_MODELS.has(model);
    /** What findByUid returns: the engine asks it of Sessions only; a hashed model's raw id is stored nowhere. */
    const byUid = (payload: AdapterPayload) => (hashed ? withoutJti(payload) : payload);

    if (hashed) {
      it('stores the id, which is the bearer credential, only as its SHA-256, and finds the record by the id', async () => {
        const { id, payload } = fresh();
        await adapter.upsert(id, payload, expiresIn);
        expect(containing(await storedText(backend), { [model]: id })).toEqual([]);
        if (CACHED_MODELS.has(model)) {
          expect(await backend.cache.get(`oidc:${model}:${id}`)).toBeNull();
          expect(JSON.parse((await backend.cache.get(`oidc:${model}:${sha256(id)}`))!)).toEqual(withoutJti(payload));
        } else {
          const { rows } = await backend.db.query<{ id: string; payload: AdapterPayload }>('SELECT id, payload FROM oidc_payloads WHERE model = $1 AND id = $2', [model, sha256(id)]);
          expect(rows).toEqual([{ id: sha256(id), payload: withoutJti(payload) }]);
        }
        // The engine instantiates the model from what find returns: jti comes back from the id.
        expect(await adapter.find(id)).toEqual(payload);
      });

      it('does not take the stored digest for the credential', async () => {
        const { id, payload } = fresh();
        await adapter.upsert(id, payload, expiresIn);
        // Even while records of the old layout are still looked for under their raw id.
        const Transitional = createAdapterFactory({ ...dependencies, legacyKeysUntil: clock.now() + 600_000 });
        for (const reader of [adapter, new Transitional(model)]) expect(await reader.find(sha256(id))).toBeUndefined();
        expect(await Transitional.adoptLegacy(model, sha256(id))).toBe(false);
        expect(await adapter.find(id)).toEqual(payload);
      });
    }

    it('find returns exactly what upsert stored, and nothing for an unknown id', async () => {
      const { id, payload } = fresh();
      await adapter.upsert(id, payload, expiresIn);
      expect(await adapter.find(id)).toEqual(payload);
      expect(await adapter.find(newId())).toBeUndefined();
    });

    it('upsert of an existing id replaces the payload', async () => {
      const { id, payload } = fresh();
      await adapter.upsert(id, payload, expiresIn);
      const changed = { ...payload, scope: 'openid', extra: { changed: true } } as AdapterPayload;
      await adapter.upsert(id, changed, expiresIn);
      expect(await adapter.find(id)).toEqual(changed);
    });

    it('keeps models apart: the same id under another model is another record', async () => {
      const { id, payload } = fresh();
      await adapter.upsert(id, payload, expiresIn);
      const other = new TesseraAdapter(model === 'AccessToken' ? 'RefreshToken' : 'AccessToken');
      expect(await other.find(id)).toBeUndefined();
    });

    it('findByUid finds the record by its uid', async () => {
      const { id, payload } = fresh();
      const uid = newId();
      await adapter.upsert(id, { ...payload, uid }, expiresIn);
      expect(await adapter.findByUid(uid)).toEqual(byUid({ ...payload, uid }));
      expect(await adapter.findByUid(newId())).toBeUndefined();
    });

    it('consume marks the record consumed at the current time and keeps the rest of it', async () => {
      const { id, payload } = fresh();
      const uid = newId();
      await adapter.upsert(id, { ...payload, uid }, expiresIn);
      clock.advance(5_000);
      await adapter.consume(id);
      const found = await adapter.find(id);
      expect(found).toEqual({ ...payload, uid, consumed: epoch(clock) });
      // A refresh token presented again must look consumed however it is looked up (reuse detection).
      expect((await adapter.findByUid(uid))?.consumed).toBe(epoch(clock));
      // Consuming something that does not exist is not an error.
      await expect(adapter.consume(newId())).resolves.toBeUndefined();
    });

    it('destroy removes the record, and only that record', async () => {
      const a = fresh();
      const b = fresh();
      await adapter.upsert(a.id, a.payload, expiresIn);
      await adapter.upsert(b.id, b.payload, expiresIn);
      await adapter.destroy(a.id);
      expect(await adapter.find(a.id)).toBeUndefined();
      expect(await adapter.find(b.id)).toEqual(b.payload);
      await expect(adapter.destroy(newId())).resolves.toBeUndefined();
    });

    if (CACHED_MODELS.has(model)) {
      it('expires after expiresIn, and consume does not extend its life', async () => {
        const kept = fresh();
        const expiring = fresh();
        const consumed = fresh();
        await adapter.upsert(kept.id, kept.payload, 600);
        await adapter.upsert(expiring.id, expiring.payload, 1);
        await adapter.upsert(consumed.id, consumed.payload, 1);
        await adapter.consume(consumed.id);
        expect(await adapter.find(expiring.id)).toEqual(expiring.payload);
        await elapse(backend, clock, 1_200);
        expect(await adapter.find(expiring.id)).toBeUndefined();
        expect(await adapter.find(consumed.id)).toBeUndefined();
        expect(await adapter.find(kept.id)).toEqual(kept.payload);
      });
    } else {
      it('expires after expiresIn on the injected clock, and without expiresIn lives on', async () => {
        const expiring = fresh();
        const forever = fresh();
        const uid = newId();
        await adapter.upsert(expiring.id, { ...expiring.payload, uid }, 60);
        await adapter.upsert(forever.id, forever.payload, 0);
        clock.advance(59_000);
        expect(await adapter.find(expiring.id)).toEqual({ ...expiring.payload, uid });
        expect(await adapter.findByUid(uid)).toEqual(byUid({ ...expiring.payload, uid }));
        clock.advance(1_001);
        expect(await adapter.find(expiring.id)).toBeUndefined();
        expect(await adapter.findByUid(uid)).toBeUndefined();
        clock.advance(365 * 86_400_000);
        expect(await adapter.find(forever.id)).toEqual(forever.payload);
      });
    }
  });

  describe('revokeByGrantId', () => {
    async function issueGrant() {
      const grantId = newId();
      const ats = [accessTokenPayload(clock, grantId), accessTokenPayload(clock, grantId, { gty: 'refresh_token' })];
      const rts = [refreshTokenPayload(clock, grantId), refreshTokenPayload(clock, grantId, { rotations: 1 })];
      await grants.upsert(grantId, grantPayload(clock, grantId), 1_209_600);
      for (const at of ats) await accessTokens.upsert(at.jti!, at, 600);
      for (const rt of rts) await refreshTokens.upsert(rt.jti!, rt, 86_400);
      return { grantId, ats, rts };
    }

    async function expectAlive(issued: Awaited<ReturnType<typeof issueGrant>>) {
      for (const at of issued.ats) expect(await accessTokens.find(at.jti!)).toEqual(at);
      for (const rt of issued.rts) expect(await refreshTokens.find(rt.jti!)).toEqual(rt);
    }

    async function expectRevoked(issued: Awaited<ReturnType<typeof issueGrant>>) {
      for (const at of issued.ats) expect(await accessTokens.find(at.jti!)).toBeUndefined();
      for (const rt of issued.rts) expect(await refreshTokens.find(rt.jti!)).toBeUndefined();
    }

    it.each(['AccessToken', 'RefreshToken', 'AuthorizationCode'])(
      'called on %s, removes the cached access tokens and the durable refresh tokens of that grant, and nothing of another grant',
      async (model) => {
        const revoked = await issueGrant();
        const other = await issueGrant();
        const code = { ...accessTokenPayload(clock, revoked.grantId), kind: 'AuthorizationCode', jti: newId() } as AdapterPayload;
        const codes = new TesseraAdapter('AuthorizationCode');
        await codes.upsert(code.jti!, code, 60);

        // oidc-provider calls revokeByGrantId on each token model in turn (lib/helpers/revoke.js).
        await new TesseraAdapter(model).revokeByGrantId(revoked.grantId);

        await expectRevoked(revoked);
        expect(await codes.find(code.jti!)).toBeUndefined();
        await expectAlive(other);
        // The Grant itself is oidc-provider's to destroy (revokeGrantPolicy): revoking an
        // access token at the revocation endpoint keeps the grant, so consent is not asked again.
        expect(await grants.find(revoked.grantId)).toEqual(grantPayload(clock, revoked.grantId));
        expect(await grants.find(other.grantId)).toEqual(grantPayload(clock, other.grantId));
      },
    );

    it('reaches tokens issued after a consumed refresh token was rotated, and is harmless when repeated', async () => {
      const issued = await issueGrant();
      await refreshTokens.consume(issued.rts[0]!.jti!);
      const rotated = refreshTokenPayload(clock, issued.grantId, { rotations: 2 });
      await refreshTokens.upsert(rotated.jti!, rotated, 86_400);

      await accessTokens.revokeByGrantId(issued.grantId);
      await accessTokens.revokeByGrantId(issued.grantId);

      await expectRevoked(issued);
      expect(await refreshTokens.find(rotated.jti!)).toBeUndefined();
    });

    it('leaves nothing of the grant behind: a token issued later under the same grant is revoked on its own terms', async () => {
      const issued = await issueGrant();
      await accessTokens.revokeByGrantId(issued.grantId);
      const later = accessTokenPayload(clock, issued.grantId);
      await accessTokens.upsert(later.jti!, later, 600);
      expect(await accessTokens.find(later.jti!)).toEqual(later);
      await refreshTokens.revokeByGrantId(issued.grantId);
      expect(await accessTokens.find(later.jti!)).toBeUndefined();
    });
  });

  describe('records of the layout before ids were hashed', () => {
    /** A node started after the upgrade, within the longest access-token lifetime. */
    let Transitional: AdapterFactory;
    beforeEach(() => {
      Transitional = createAdapterFactory({ ...dependencies, legacyKeysUntil: clock.now() + 600_000 });
    });

    /** What the previous release wrote for a cached model: the raw id in the key and as jti. */
    async function legacyCached(model: string, payload: AdapterPayload, ttl = 3_600) {
      const key = `oidc:${model}:${payload.jti}`;
      await backend.cache.set(key, JSON.stringify(payload), ttl);
      if (payload.grantId) await backend.cache.addToSet(`oidc:grant:${payload.grantId}`, key, ttl);
    }

    /** What the previous release wrote for a refresh token: a row named by the token. */
    async function legacyRefreshToken(payload: AdapterPayload) {
      await backend.db.query(
        'INSERT INTO oidc_payloads (model, id, payload, grant_id, expires_at) VALUES ($1, $2, $3, $4, $5)',
        ['RefreshToken', payload.jti, JSON.stringify(payload), payload.grantId, new Date(clock.now() + 86_400_000)],
      );
    }

    it('finds an opaque access token issued before the upgrade and moves it under its digest', async () => {
      const grantId = newId();
      const at = accessTokenPayload(clock, grantId);
      await legacyCached('AccessToken', at);

      expect(await new Transitional('AccessToken').find(at.jti!)).toEqual(at);
      // Moved: the raw value is gone from the store, the record lives on under the digest.
      expect(await backend.cache.get(`oidc:AccessToken:${at.jti}`)).toBeNull();
      expect(JSON.parse((await backend.cache.get(`oidc:AccessToken:${sha256(at.jti!)}`))!)).toEqual(withoutJti(at));
      expect(await accessTokens.find(at.jti!)).toEqual(at);
      // Its grant still reaches it.
      await accessTokens.revokeByGrantId(grantId);
      expect(await new Transitional('AccessToken').find(at.jti!)).toBeUndefined();
    });

    it('lets the introspection path adopt an opaque token, and consume and destroy act on old records too', async () => {
      const cc = tokenPayload('ClientCredentials')(clock, newId());
      await legacyCached('ClientCredentials', cc);
      expect(await Transitional.adoptLegacy('AccessToken', cc.jti!)).toBe(false);
      expect(await Transitional.adoptLegacy('ClientCredentials', cc.jti!)).toBe(true);
      expect(await backend.cache.get(modelKey('ClientCredentials', cc.jti!))).not.toBeNull();

      const code = tokenPayload('AuthorizationCode')(clock, newId());
      await legacyCached('AuthorizationCode', code, 60);
      const codes = new Transitional('AuthorizationCode');
      await codes.consume(code.jti!);
      expect(await codes.find(code.jti!)).toEqual({ ...code, consumed: epoch(clock) });
      expect(await backend.cache.get(`oidc:AuthorizationCode:${code.jti}`)).toBeNull();

      const at = accessTokenPayload(clock, newId());
      await legacyCached('AccessToken', at);
      await new Transitional('AccessToken').destroy(at.jti!);
      expect(await new Transitional('AccessToken').find(at.jti!)).toBeUndefined();
      expect(await backend.cache.get(`oidc:AccessToken:${at.jti}`)).toBeNull();
    });

    it('finds a refresh token row a node of the previous release wrote, and converts it', async () => {
      const grantId = newId();
      const rt = refreshTokenPayload(clock, grantId);
      await legacyRefreshToken(rt);
      const adapter = new Transitional('RefreshToken');
      expect(await adapter.find(rt.jti!)).toEqual(rt);
      const { rows } = await backend.db.query<{ id: string; payload: AdapterPayload }>('SELECT id, payload FROM oidc_payloads WHERE grant_id = $1', [grantId]);
      expect(rows).toEqual([{ id: sha256(rt.jti!), payload: withoutJti(rt) }]);
      clock.advance(1_000);
      await adapter.consume(rt.jti!);
      expect((await refreshTokens.find(rt.jti!))?.consumed).toBe(epoch(clock));

      // Consumed before it was ever found again: reuse detection still sees it consumed, and
      // destroy reaches an old row as well.
      const other = refreshTokenPayload(clock, grantId, { rotations: 1 });
      await legacyRefreshToken(other);
      await adapter.consume(other.jti!);
      expect((await adapter.find(other.jti!))?.consumed).toBe(epoch(clock));
      const third = refreshTokenPayload(clock, grantId, { rotations: 2 });
      await legacyRefreshToken(third);
      await adapter.destroy(third.jti!);
      expect(await adapter.find(third.jti!)).toBeUndefined();
      const { rows: left } = await backend.db.query<{ id: string }>('SELECT id FROM oidc_payloads WHERE grant_id = $1', [grantId]);
      expect(left.map((r) => r.id).sort()).toEqual([sha256(rt.jti!), sha256(other.jti!)].sort());
    });

    it('looks under old keys only within the window, and never for a model whose ids are not hashed', async () => {
      const at = accessTokenPayload(clock, newId());
      await legacyCached('AccessToken', at);
      const rt = refreshTokenPayload(clock, newId());
      await legacyRefreshToken(rt);
      // A node without a window (or past it) does not know them.
      expect(await accessTokens.find(at.jti!)).toBeUndefined();
      expect(await refreshTokens.find(rt.jti!)).toBeUndefined();
      clock.advance(600_001);
      expect(await new Transitional('AccessToken').find(at.jti!)).toBeUndefined();
      expect(await new Transitional('RefreshToken').find(rt.jti!)).toBeUndefined();
      expect(await Transitional.adoptLegacy('AccessToken', at.jti!)).toBe(false);
      // Left as they were: nothing looked at them.
      expect(await backend.cache.get(`oidc:AccessToken:${at.jti}`)).not.toBeNull();
      expect(await Transitional.adoptLegacy('Grant', newId())).toBe(false);
    });
  });

  describe('migration 1700000009000_hashed_oidc_ids', () => {
    it('converts durable rows of the previous layout, so refresh tokens issued before the upgrade keep working', async () => {
      // The database as it was before the upgrade: the migration not yet recorded (it changes
      // data only), nor any later one (migrations run in order; later ones are written to run
      // again harmlessly), and rows as the previous release wrote them.
      await backend.db.query("DELETE FROM tessera_migrations WHERE name >= '1700000009000_hashed_oidc_ids'");
      const grantId = newId();
      const grant = grantPayload(clock, grantId);
      const live = refreshTokenPayload(clock, grantId);
      const used = refreshTokenPayload(clock, grantId);
      const rat = tokenPayload('RegistrationAccessToken')(clock, grantId);
      const insert = (model: string, id: string, payload: AdapterPayload, consumedAt: Date | null = null) =>
        backend.db.query('INSERT INTO oidc_payloads (model, id, payload, grant_id, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6)', [
          model,
          id,
          JSON.stringify(payload),
          model === 'RefreshToken' ? grantId : null,
          new Date(clock.now() + 86_400_000),
          consumedAt,
        ]);
      await insert('Grant', grantId, grant);
      await insert('RefreshToken', live.jti!, live);
      await insert('RefreshToken', used.jti!, used, new Date(epoch(clock) * 1000));
      // Registration access tokens were already named by their digest, but kept the jti.
      await insert('RegistrationAccessToken', sha256(rat.jti!), rat);

      expect((await migrate(backend.db))[0]).toBe('1700000009000_hashed_oidc_ids');

      const { rows } = await backend.db.query<{ model: string; id: string; payload: AdapterPayload; consumed: boolean }>(
        'SELECT model, id, payload, consumed_at IS NOT NULL AS consumed FROM oidc_payloads WHERE id = ANY($1) ORDER BY model, consumed',
        [[grantId, sha256(live.jti!), sha256(used.jti!), sha256(rat.jti!)]],
      );
      expect(rows).toEqual([
        // A grant id is no credential: untouched, jti included.
        { model: 'Grant', id: grantId, payload: grant, consumed: false },
        { model: 'RefreshToken', id: sha256(live.jti!), payload: withoutJti(live), consumed: false },
        { model: 'RefreshToken', id: sha256(used.jti!), payload: withoutJti(used), consumed: true },
        { model: 'RegistrationAccessToken', id: sha256(rat.jti!), payload: withoutJti(rat), consumed: false },
      ]);
      expect(containing(await storedText(backend), { live: live.jti!, used: used.jti!, rat: rat.jti! })).toEqual([]);

      // The adapter finds them by the values the clients hold, with no window needed.
      expect(await refreshTokens.find(live.jti!)).toEqual(live);
      expect((await refreshTokens.find(used.jti!))?.consumed).toBe(epoch(clock));
      expect(await new TesseraAdapter('RegistrationAccessToken').find(rat.jti!)).toEqual(rat);
      expect(await grants.find(grantId)).toEqual(grant);
    });
  });

  describe('Client', () => {
    it('reads clients from the client source and never stores them itself', async () => {
      const clients = new TesseraAdapter('Client');
      expect(await clients.find('app-1')).toEqual({ client_id: 'app-1', redirect_uris: ['https://app.example.test/cb'] });
      expect(await clients.find('unknown')).toBeUndefined();
      // Clients are managed through the Management API; the source here has no upsert.
      await expect(clients.upsert('app-2', { client_id: 'app-2' }, 0)).rejects.toThrow();
      expect(await clients.find('app-2')).toBeUndefined();
    });
  });
});
