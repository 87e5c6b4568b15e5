/**
 * oidc-provider's Adapter contract (upsert, find, findByUid, consume, destroy,
 * revokeByGrantId) for Tessera's split adapter: AccessToken is a cached model (cache store
 * with a TTL), Grant and RefreshToken are durable ones (PostgreSQL). Run on every backend.
 */
import { randomBytes } from 'node:crypto';

import type { Adapter, AdapterPayload } from 'oidc-provider';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { ClientSource } from '../../src/oidc/adapter.js';
import { CACHED_MODELS, createAdapterFactory } from '../../src/oidc/adapter.js';
import { createOidcPayloadRepository } from '../../src/storage/oidc-payload-repository.js';
import type { OpenedBackend, TestClock } from '../helpers/backends.js';
import { backends, createTestClock, elapse } from '../helpers/backends.js';

const newId = () => randomBytes(16).toString('base64url');
const epoch = (clock: TestClock) => Math.floor(clock.now() / 1000);

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

  beforeAll(async () => {
    clock = createTestClock();
    backend = await backendFactory.open(clock);
    TesseraAdapter = createAdapterFactory({
      cache: backend.cache,
      payloads: createOidcPayloadRepository(backend.db),
      clientSource: createClientSource(),
      clock,
    });
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

  it('keeps AccessToken in the cache store and Grant and RefreshToken in the database', async () => {
    expect(CACHED_MODELS.has('AccessToken')).toBe(true);
    expect(CACHED_MODELS.has('RefreshToken')).toBe(false);
    expect(CACHED_MODELS.has('Grant')).toBe(false);

    const grantId = newId();
    const at = accessTokenPayload(clock, grantId);
    const rt = refreshTokenPayload(clock, grantId);
    await accessTokens.upsert(at.jti!, at, 600);
    await refreshTokens.upsert(rt.jti!, rt, 86_400);
    await grants.upsert(grantId, grantPayload(clock, grantId), 1_209_600);

    const { rows } = await backend.db.query<{ model: string; id: string; grant_id: string | null }>(
      'SELECT model, id, grant_id FROM oidc_payloads WHERE id = ANY($1) ORDER BY model',
      [[at.jti, rt.jti, grantId]],
    );
    // Durable rows survive a restart of every node; the access token costs no database write.
    expect(rows).toEqual([
      { model: 'Grant', id: grantId, grant_id: null },
      { model: 'RefreshToken', id: rt.jti, grant_id: grantId },
    ]);
  });

  describe.each([
    { model: 'AccessToken', make: accessTokenPayload, expiresIn: 600 },
    { model: 'RefreshToken', make: refreshTokenPayload, expiresIn: 86_400 },
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
      expect(await adapter.findByUid(uid)).toEqual({ ...payload, uid });
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
