/**
 * "A stop is a stop" (docs/security.md, "When a principal stops"): every token kind Tessera issues × every way its principal can be
 * stopped, against a real running server on every backend, with tokens obtained through the real
 * protocol (client credentials at /token, authorization code + PKCE through the sign-in pages with
 * openid-client, PATs/SATs through the Management API). After each stop, introspection, the
 * Management API and the token endpoint refuse every token of that principal: on the node that
 * made the change at once, and on a second node (PostgreSQL + Redis) within the documented 1 s.
 * Every other principal's tokens keep working.
 *
 * | token                          | user deactivated | user deleted | role lowered       | service account disabled | service account deleted | client deleted |
 * | ------------------------------ | ---------------- | ------------ | ------------------ | ------------------------ | ----------------------- | -------------- |
 * | code-flow JWT access token     | refused          | refused      | kept (¹)           |                          |                         | refused        |
 * | code-flow opaque access token  | refused          | refused      | kept (¹)           |                          |                         | refused        |
 * | refresh token (+ reuse grace)  | refused          | refused      | kept (¹)           |                          |                         | refused        |
 * | Management API user JWT        | refused          | refused      | narrowed           |                          |                         | refused        |
 * | PAT, PAT of a pair (+ its key) | refused          | refused      | narrowed           |                          |                         | kept (²)       |
 * | client-credentials JWT, opaque | —                | —            | —                  | refused (owning account) | impossible: 409 (³)     | refused        |
 * | client-credentials Mgmt JWT    | —                | —            | —                  | refused (owning account) | impossible: 409 (³)     | refused        |
 * | SAT, SAT of a pair (+ its key) | —                | —            | —                  | refused                  | refused                 | —              |
 *
 * (¹) roles bound Management API scopes only; an API's scopes are not role-bound. (²) a PAT has no
 * client. (³) a service account that owns a client cannot be deleted. Clients have no disabled
 * state of their own (disabling the owning service account is theirs), and organizations cannot be
 * deleted, so neither is a stop here.
 */
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { backends } from '../helpers/backends.js';
import { clientCredentials, createClient, createServiceAccount, expectApi, uniqueName } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, CALLBACK, SERVER_START_TIMEOUT_MS, signIn } from '../helpers/sign-in.js';

const ORDERS = 'https://orders.test';
const BILLING = 'https://billing.test';
const ORDERS_RS = basic('orders-rs', 'orders-rs-secret-0123456789');
const BILLING_RS = basic('billing-rs', 'billing-rs-secret-0123456789');
const PASSWORD = 'correct horse battery staple';
/** docs/operations.md, "Staleness windows": what one node changes, every other node honours within this. */
const STALENESS_BOUND_MS = 1000;

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function postForm(url: string, path: string, form: Record<string, string>, authorization?: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** One way of using a token; `works` says whether that use is still honoured on the node at `url`. */
interface Probe {
  name: string;
  works(url: string): Promise<boolean>;
  /** Only after the stop: the use would change the token (a refresh rotates it, a rotation key is consumed). */
  afterOnly?: boolean;
}

const introspected = (token: string, caller: string) => async (url: string) => (await postForm(url, '/token/introspection', { token }, caller)).body.active === true;
const managementAnswers = (token: string, path: string) => async (url: string) => (await api({ url }, token, 'GET', path)).status === 200;

interface SignedInUser {
  id: string;
  username: string;
  clientId: string;
  clientAuth: string;
  jwt: string;
  opaque: string;
  /** Rotated once: `rotatedRefresh` is inside its reuse grace window, `refresh` is current. */
  rotatedRefresh: string;
  refresh: string;
  management: string;
  pat: string;
  pairPat: string;
  pairKey: string;
}

interface MachineClient {
  clientId: string;
  jwt: string;
  opaque: string;
  management: string;
}

interface Sat {
  sat: string;
  pairSat: string;
  pairKey: string;
}

function userProbes(u: SignedInUser, options: { pats: boolean } = { pats: true }): Probe[] {
  const probes: Probe[] = [
    { name: 'code-flow JWT access token at introspection', works: introspected(u.jwt, ORDERS_RS) },
    { name: 'code-flow opaque access token at introspection', works: introspected(u.opaque, BILLING_RS) },
    { name: 'Management API user JWT', works: managementAnswers(u.management, '/tokens?limit=1') },
    { name: 'refresh token at introspection by its client', works: introspected(u.refresh, u.clientAuth) },
    {
      name: 'rotated refresh token replayed inside the reuse grace window',
      works: async (url) => (await postForm(url, '/token', { grant_type: 'refresh_token', refresh_token: u.rotatedRefresh, resource: ORDERS }, u.clientAuth)).status === 200,
    },
    {
      name: 'refresh token at /token',
      afterOnly: true,
      works: async (url) => (await postForm(url, '/token', { grant_type: 'refresh_token', refresh_token: u.refresh, resource: ORDERS }, u.clientAuth)).status === 200,
    },
  ];
  if (options.pats) probes.push(...patProbes(u));
  return probes;
}

function patProbes(u: SignedInUser): Probe[] {
  return [
    { name: 'PAT at introspection', works: introspected(u.pat, ORDERS_RS) },
    { name: 'PAT at the Management API', works: managementAnswers(u.pat, '/tokens?limit=1') },
    { name: 'PAT of a pair at introspection', works: introspected(u.pairPat, ORDERS_RS) },
    { name: 'rotation key of a PAT pair', afterOnly: true, works: rotationKeyWorks(u.pairKey) },
  ];
}

function machineProbes(m: MachineClient): Probe[] {
  return [
    { name: 'client-credentials JWT at introspection', works: introspected(m.jwt, ORDERS_RS) },
    { name: 'client-credentials opaque token at introspection', works: introspected(m.opaque, BILLING_RS) },
    { name: 'client-credentials JWT at the Management API', works: managementAnswers(m.management, '/users?limit=1') },
  ];
}

function satProbes(s: Sat): Probe[] {
  return [
    { name: 'SAT at introspection', works: introspected(s.sat, ORDERS_RS) },
    { name: 'SAT at the Management API', works: managementAnswers(s.sat, '/users?limit=1') },
    { name: 'SAT of a pair at introspection', works: introspected(s.pairSat, ORDERS_RS) },
    { name: 'rotation key of a SAT pair', afterOnly: true, works: rotationKeyWorks(s.pairKey) },
  ];
}

function rotationKeyWorks(key: string) {
  return async (url: string) => (await fetch(`${url}/api/v1/tokens/rotate`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' })).status === 200;
}

for (const backend of backends) {
  describe(`a stop is a stop on ${backend.name}`, () => {
    let server: TestServer;
    /** A second node on the same storage (PostgreSQL + Redis only: the embedded default is one process). */
    let second: TestServer | undefined;
    let nodes: string[];
    let admin: string;
    const users: Record<'deactivated' | 'deleted' | 'demoted' | 'viaDeletedClient' | 'control', SignedInUser> = {} as never;
    const machines: Record<'ownedByDisabledAccount' | 'deleted' | 'control', MachineClient> = {} as never;
    const sats: Record<'disabledAccount' | 'deletedAccount', Sat> = {} as never;
    const ids: Record<string, string> = {};

    /** A client of the organization that signs users in, for every API of this test and the Management API. */
    async function webClient() {
      const created = await createClient(server, admin, {
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [CALLBACK],
        scopes: ['openid', 'offline_access', 'orders:read', 'billing:read', 'tokens:read', 'tokens:write', 'users:read'],
        resources: [ORDERS, BILLING, MANAGEMENT_AUDIENCE],
      });
      const config = await client.discovery(new URL(server.url), created.client_id, undefined, client.ClientSecretBasic(created.client_secret), { execute: [client.allowInsecureRequests] });
      return { clientId: created.client_id as string, auth: basic(created.client_id, created.client_secret), config };
    }

    async function machineClient(serviceAccountId?: string): Promise<MachineClient> {
      const created = await createClient(server, admin, {
        scopes: ['orders:read', 'billing:read', 'users:read'],
        resources: [ORDERS, BILLING, MANAGEMENT_AUDIENCE],
        ...(serviceAccountId ? { service_account_id: serviceAccountId } : {}),
      });
      const token = async (resource: string, scope: string) => {
        const answer = await clientCredentials(server, created.client_id, created.client_secret, { resource, scope });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        return answer.body.access_token as string;
      };
      return { clientId: created.client_id, jwt: await token(ORDERS, 'orders:read'), opaque: await token(BILLING, 'billing:read'), management: await token(MANAGEMENT_AUDIENCE, 'users:read') };
    }

    async function issue(token: string, body: Record<string, unknown>) {
      return expectApi(server, token, 'POST', '/tokens', { name: uniqueName('t'), expires_in: 3600, ...body }, 201);
    }

    async function satsOf(serviceAccountId: string): Promise<Sat> {
      const body = { type: 'sat', service_account_id: serviceAccountId, scopes: ['orders:read', 'users:read'], resources: [ORDERS, MANAGEMENT_AUDIENCE] };
      const sat = await issue(admin, body);
      const pair = await issue(admin, { ...body, pair: true });
      return { sat: sat.token, pairSat: pair.token, pairKey: pair.rotation_key };
    }

    /** A user signed in through `web`: three authorization-code grants (one per API) and their own PATs. */
    async function signedInUser(web: Awaited<ReturnType<typeof webClient>>, role: 'member' | 'admin'): Promise<Omit<SignedInUser, 'rotatedRefresh' | 'refresh'> & { firstRefresh: string; config: client.Configuration }> {
      const username = uniqueName('user');
      const id = await addUser(server, { username, password: PASSWORD });
      if (role !== 'member') await expectApi(server, admin, 'PATCH', `/users/${id}`, { role }, 200);
      const b = browserless(server);
      const grant = async (resource: string, scope: string, extra: Record<string, string> = {}) => {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const url = client.buildAuthorizationUrl(web.config, {
          redirect_uri: CALLBACK,
          scope,
          resource,
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          ...extra,
        });
        const { callback } = await signIn(b, url.href, username, PASSWORD);
        return client.authorizationCodeGrant(web.config, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource });
      };
      // OpenID Connect Core §11: offline_access is honoured together with prompt=consent.
      const orders = await grant(ORDERS, 'openid offline_access orders:read', { prompt: 'consent' });
      const billing = await grant(BILLING, 'openid billing:read');
      const managementScope = role === 'admin' ? 'openid tokens:read tokens:write users:read' : 'openid tokens:read tokens:write';
      const management = await grant(MANAGEMENT_AUDIENCE, managementScope);
      expect(orders.refresh_token).toBeTruthy();
      const patScopes = role === 'admin' ? ['tokens:read', 'users:read', 'orders:read'] : ['tokens:read', 'orders:read'];
      const patBody = { type: 'pat', scopes: patScopes, resources: [MANAGEMENT_AUDIENCE, ORDERS] };
      const pat = await issue(management.access_token, patBody);
      const pair = await issue(management.access_token, { ...patBody, pair: true });
      return {
        id,
        username,
        clientId: web.clientId,
        clientAuth: web.auth,
        config: web.config,
        jwt: orders.access_token,
        firstRefresh: orders.refresh_token!,
        opaque: billing.access_token,
        management: management.access_token,
        pat: pat.token,
        pairPat: pair.token,
        pairKey: pair.rotation_key,
      };
    }

    /** Every probe works on every node (this also puts the tokens, users and clients in each node's caches). */
    async function expectWorking(probes: Probe[]): Promise<void> {
      for (const url of nodes) {
        for (const probe of probes) {
          if (probe.afterOnly) continue;
          expect(await probe.works(url), `${probe.name} on ${url} before the stop`).toBe(true);
        }
      }
    }

    /**
     * Every probe is refused: on the node that made the change from the first request on; on the
     * other node, no request sent later than the staleness bound after the change is honoured.
     */
    async function expectRefused(probes: Probe[], stoppedAt: number): Promise<void> {
      for (const probe of probes) expect(await probe.works(nodes[0]!), `${probe.name} on the node that made the change`).toBe(false);
      for (const url of nodes.slice(1)) {
        for (const probe of probes) {
          for (;;) {
            const sentAt = performance.now();
            if (!(await probe.works(url))) break;
            expect(sentAt - stoppedAt, `${probe.name} on ${url}: still honoured ${Math.round(sentAt - stoppedAt)} ms after the change`).toBeLessThan(STALENESS_BOUND_MS);
          }
        }
      }
    }

    /** Checks the probes work, applies `stop` through the Management API of the first node, checks they are refused. */
    async function stopAndCheck(refused: Probe[], kept: Probe[], stop: () => Promise<void>): Promise<void> {
      await expectWorking([...refused, ...kept]);
      await stop();
      const stoppedAt = performance.now();
      await expectRefused(refused, stoppedAt);
      await expectWorking(kept);
    }

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED });
      if (backend.name === 'postgres+redis') second = await startTestServer(backend.name, { shareStorageWith: server });
      nodes = [server.url, ...(second ? [second.url] : [])];
      admin = server.managementToken;
      // A replay inside the reuse grace window must be checked after the stops, well after the rotation.
      await expectApi(server, admin, 'PATCH', '/organization', { policy: { refresh_reuse_grace_seconds: 60 } }, 200);

      const web = await webClient();
      const doomedWeb = await webClient();
      ids.doomedWeb = doomedWeb.clientId;
      const signedIn = {
        deactivated: await signedInUser(web, 'member'),
        deleted: await signedInUser(web, 'member'),
        demoted: await signedInUser(web, 'admin'),
        viaDeletedClient: await signedInUser(doomedWeb, 'member'),
        control: await signedInUser(web, 'member'),
      };

      const disabledAccount = await createServiceAccount(server, admin);
      const deletedAccount = await createServiceAccount(server, admin);
      ids.disabledAccount = disabledAccount.id;
      ids.deletedAccount = deletedAccount.id;
      machines.ownedByDisabledAccount = await machineClient(disabledAccount.id);
      machines.deleted = await machineClient();
      machines.control = await machineClient();
      sats.disabledAccount = await satsOf(disabledAccount.id);
      sats.deletedAccount = await satsOf(deletedAccount.id);

      // Each refresh token is rotated last, so every replay below is well inside the grace window.
      for (const [name, u] of Object.entries(signedIn)) {
        const { firstRefresh, config, ...rest } = u;
        const rotated = await client.refreshTokenGrant(config, firstRefresh, { resource: ORDERS });
        users[name as keyof typeof users] = { ...rest, rotatedRefresh: firstRefresh, refresh: rotated.refresh_token! };
      }
    }, SERVER_START_TIMEOUT_MS);

    afterAll(async () => {
      await second?.stop();
      await server?.stop();
    });

    it('user deactivated: every token of the user is refused; other users keep theirs', async () => {
      const u = users.deactivated;
      await stopAndCheck(userProbes(u), userProbes(users.control, { pats: false }), async () => {
        await expectApi(server, admin, 'PATCH', `/users/${u.id}`, { status: 'deactivated' }, 200);
      });
    });

    it('user deleted: every token of the user is refused', async () => {
      const u = users.deleted;
      await stopAndCheck(userProbes(u), [], async () => {
        await expectApi(server, admin, 'DELETE', `/users/${u.id}`, undefined, 204);
      });
    });

    it('role lowered: Management API scopes above the new role are refused, the rest of the tokens keep working', async () => {
      const u = users.demoted;
      const adminScopes: Probe[] = [
        { name: 'Management API user JWT: users:read', works: managementAnswers(u.management, '/users?limit=1') },
        { name: 'PAT: users:read at the Management API', works: managementAnswers(u.pat, '/users?limit=1') },
        {
          name: 'PAT: users:read in its introspection answer',
          works: async (url) => String((await postForm(url, '/token/introspection', { token: u.pat }, ORDERS_RS)).body.scope ?? '').split(' ').includes('users:read'),
        },
      ];
      const memberScopes: Probe[] = [
        { name: 'Management API user JWT: tokens:read', works: managementAnswers(u.management, '/tokens?limit=1') },
        { name: 'PAT: tokens:read at the Management API', works: managementAnswers(u.pat, '/tokens?limit=1') },
        { name: 'code-flow JWT access token at introspection', works: introspected(u.jwt, ORDERS_RS) },
        { name: 'code-flow opaque access token at introspection', works: introspected(u.opaque, BILLING_RS) },
      ];
      await stopAndCheck(adminScopes, memberScopes, async () => {
        await expectApi(server, admin, 'PATCH', `/users/${u.id}`, { role: 'member' }, 200);
      });
    });

    it('service account deleted: its SATs are refused; one that still owns a client cannot be deleted', async () => {
      const refused = await api(server, admin, 'DELETE', `/service-accounts/${ids.disabledAccount}`);
      expect(refused.status).toBe(409);
      await stopAndCheck(satProbes(sats.deletedAccount), [...satProbes(sats.disabledAccount), ...machineProbes(machines.ownedByDisabledAccount)], async () => {
        await expectApi(server, admin, 'DELETE', `/service-accounts/${ids.deletedAccount}`, undefined, 204);
      });
    });

    it('service account disabled: its SATs and every token of the clients it owns are refused', async () => {
      await stopAndCheck([...satProbes(sats.disabledAccount), ...machineProbes(machines.ownedByDisabledAccount)], machineProbes(machines.control), async () => {
        await expectApi(server, admin, 'PATCH', `/service-accounts/${ids.disabledAccount}`, { status: 'disabled' }, 200);
      });
    });

    it('client deleted: its client-credentials tokens and the tokens of users who signed in through it are refused; their PATs are not its', async () => {
      const u = users.viaDeletedClient;
      await stopAndCheck([...userProbes(u, { pats: false }), ...machineProbes(machines.deleted)], [...patProbes(u), ...machineProbes(machines.control)], async () => {
        await expectApi(server, admin, 'DELETE', `/clients/${ids.doomedWeb}`, undefined, 204);
        await expectApi(server, admin, 'DELETE', `/clients/${machines.deleted.clientId}`, undefined, 204);
      });
    });

    it('leaves every token of principals that were not stopped working, on every node', async () => {
      await expectWorking([...userProbes(users.control), ...machineProbes(machines.control)]);
    });
  });
}
