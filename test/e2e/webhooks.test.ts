/**
 * Webhooks (docs/webhooks.md) against a running Tessera, on every backend: endpoints managed
 * through the Management API, messages signed per Standard Webhooks and verified by a receiver
 * with the same library, retries with backoff from the PostgreSQL outbox (the test clock moves
 * time), a delivery that outlives the server that queued it, the delivery log, secrets encrypted
 * at rest, and targets on internal addresses refused. The receiver listens on 127.0.0.1, which
 * the operator allows with TESSERA_OUTBOUND_ALLOWED_HOSTS; 10.0.0.1 and 169.254.169.254 stay
 * refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { clientCredentials, expectApi } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';
import type { WebhookReceiver } from '../helpers/webhook-receiver.js';

const START_TIMEOUT_MS = 180_000;
const OVERRIDES = { ...EXAMPLE_SEED, webhooks: { retrySchedule: [5, 10] } };
const ENV = { TESSERA_OUTBOUND_ALLOWED_HOSTS: '127.0.0.1' };

for (const backend of backends) {
  describe(`webhooks on ${backend.name}`, () => {
    const clock = createTestClock();
    let server: TestServer;
    let receiver: WebhookReceiver;
    let endpoint: { id: string; secret: string };
    let org: string;
    let userId: string;

    const admin = (method: string, path: string, body?: unknown) => api(server, server.managementToken, method, path, body);
    const pat = async (name: string) =>
      server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name, userId, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: 30 * 86400, createdBy: 'test' });
    const deliveries = async (endpointId = endpoint.id, query = '') => (await admin('GET', `/webhooks/${endpointId}/deliveries${query}`)).body.items as any[];
    /** Lets the outbox write what was recorded, then runs the delivery job once. */
    const deliverNow = async () => {
      await server.tessera.audit.flush();
      await server.tessera.scheduler.webhooks.run();
    };

    beforeAll(async () => {
      receiver = await startWebhookReceiver();
      server = await startTestServer(backend.name, { clock, overrides: OVERRIDES, env: ENV });
      org = server.bootstrap.organization_id;
      userId = (await server.tessera.repos.users.insert({ id: newId('usr'), organization_id: org, username: `dev-${Date.now()}`, email: null, name: null, role: 'member', password_hash: null })).id;
      endpoint = await expectApi(server, server.managementToken, 'POST', '/webhooks', { url: receiver.url, events: ['token.revoked', 'token.leak_reported', 'client.previous_secret_used'], description: 'security' }, 201);
      receiver.secret = endpoint.secret;
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
      await receiver?.close();
    });

    it('creates an endpoint with a whsec_ secret shown once and stored encrypted', async () => {
      expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      const got = await admin('GET', `/webhooks/${endpoint.id}`);
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({ id: endpoint.id, url: receiver.url, events: ['token.revoked', 'token.leak_reported', 'client.previous_secret_used'], enabled: true });
      expect(JSON.stringify(got.body)).not.toContain(endpoint.secret);
      expect((await admin('GET', '/webhooks')).body.items.map((e: any) => e.id)).toContain(endpoint.id);
      const { rows } = await server.tessera.db.query<{ secret_enc: string }>('SELECT secret_enc FROM webhook_endpoints WHERE id = $1', [endpoint.id]);
      expect(rows[0]!.secret_enc.startsWith('v1.')).toBe(true);
      expect(rows[0]!.secret_enc).not.toContain(endpoint.secret.slice(6, 20));
    });

    it('sends token.revoked, signed per Standard Webhooks, and logs the delivery', async () => {
      const token = await pat('revoke-me');
      expect((await admin('DELETE', `/tokens/${token.row.id}?reason=compromised`)).status).toBe(204);
      await expect.poll(async () => (await deliverNow(), receiver.received.some((m) => m.type === 'token.revoked' && m.data.target.id === token.row.id)), { timeout: 5000 }).toBe(true);
      const message = receiver.received.find((m) => m.type === 'token.revoked' && m.data.target.id === token.row.id);
      expect(message!.verified).toBe(true);
      expect(message!.data).toMatchObject({ organization_id: org, target: { type: 'reference_token', id: token.row.id }, details: { reason: 'compromised' } });
      await expect.poll(async () => (await deliveries()).find((d) => d.message_id === message!.id)?.status, { timeout: 5000 }).toBe('delivered');
      expect((await deliveries()).find((d) => d.message_id === message!.id)).toMatchObject({ event_type: 'token.revoked', status: 'delivered', attempts: 1, last_status_code: 204, next_attempt_at: null });
    });

    it('carries leak reports and the use of a previous client secret to the organization', async () => {
      const leaked = await pat('leaked');
      await fetch(`${server.url}/api/v1/tokens/leaks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: [leaked.token] }) });
      await expect.poll(async () => {
        await deliverNow();
        return receiver.received.filter((m) => m.data.target?.id === leaked.row.id).map((m) => m.type).sort();
      }, { timeout: 5000 }).toEqual(['token.leak_reported', 'token.revoked']);

      const rotated = await admin('POST', '/clients/worker/secret', {});
      expect(rotated.status).toBe(200);
      expect((await clientCredentials(server, 'worker', 'worker-secret-0123456789abcdef', { resource: 'https://orders.test' })).status).toBe(200);
      await expect.poll(async () => {
        await deliverNow();
        return receiver.received.some((m) => m.type === 'client.previous_secret_used' && m.verified);
      }, { timeout: 5000 }).toBe(true);
    });

    it('retries with backoff from the outbox, under the same webhook-id, and gives up after the schedule', async () => {
      receiver.answer = 500;
      const sent = (tokenId: string) => receiver.received.filter((m) => m.data.target?.id === tokenId);
      const logged = async (messageId: string) => (await deliveries()).find((d) => d.message_id === messageId);
      const first = await pat('retry');
      await admin('DELETE', `/tokens/${first.row.id}`);
      // The job runs on its own too: wait until the attempt is recorded, whoever made it.
      await expect.poll(async () => (await deliverNow(), sent(first.row.id).length), { timeout: 5000 }).toBe(1);
      const id = sent(first.row.id)[0]!.id;
      await expect.poll(async () => (await logged(id))?.attempts, { timeout: 5000 }).toBe(1);
      let entry = await logged(id);
      expect(entry).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 500, last_error: 'answered 500' });
      expect(Date.parse(entry.next_attempt_at) - Date.parse(entry.last_attempt_at)).toBe(5000);
      // Not due yet: nothing is sent.
      await deliverNow();
      expect(sent(first.row.id)).toHaveLength(1);
      // Due after 5 s: sent again under the same id; still failing, next in 10 s.
      clock.advance(5000);
      await expect.poll(async () => (await deliverNow(), (await logged(id))?.attempts), { timeout: 5000 }).toBe(2);
      expect((await logged(id)).status).toBe('pending');
      clock.advance(10_000);
      await expect.poll(async () => (await deliverNow(), (await logged(id))?.status), { timeout: 5000 }).toBe('failed');
      entry = await logged(id);
      expect(entry).toMatchObject({ status: 'failed', attempts: 3, next_attempt_at: null });
      expect(sent(first.row.id)).toHaveLength(3);
      expect(new Set(sent(first.row.id).map((m) => m.id))).toEqual(new Set([id]));
      expect((await deliveries(endpoint.id, '?status=failed')).map((d) => d.id)).toContain(entry.id);

      // One that fails once and then gets through.
      const second = await pat('recover');
      await admin('DELETE', `/tokens/${second.row.id}`);
      await expect.poll(async () => (await deliverNow(), sent(second.row.id).length), { timeout: 5000 }).toBe(1);
      const secondId = sent(second.row.id)[0]!.id;
      await expect.poll(async () => (await logged(secondId))?.attempts, { timeout: 5000 }).toBe(1);
      receiver.answer = 204;
      clock.advance(5000);
      await expect.poll(async () => (await deliverNow(), (await logged(secondId))?.status), { timeout: 5000 }).toBe('delivered');
      const tries = sent(second.row.id);
      expect(tries).toHaveLength(2);
      expect(tries[0]!.id).toBe(tries[1]!.id);
      expect(tries.every((t) => t.verified)).toBe(true);
      expect(await logged(secondId)).toMatchObject({ status: 'delivered', attempts: 2 });
    });

    it('keeps a pending delivery across a restart: the next server sends it', async () => {
      receiver.answer = 503;
      const token = await pat('restart');
      await admin('DELETE', `/tokens/${token.row.id}`);
      await expect.poll(async () => (await deliverNow(), receiver.received.filter((m) => m.data.target?.id === token.row.id).length), { timeout: 5000 }).toBe(1);
      await expect.poll(async () => (await deliveries()).some((d) => d.event_type === 'token.revoked' && d.attempts === 1 && d.last_status_code === 503), { timeout: 5000 }).toBe(true);
      await server.running.stop();
      receiver.answer = 204;
      clock.advance(5000);
      const next = await startTestServer(backend.name, { clock, overrides: OVERRIDES, env: ENV, shareStorageWith: server });
      try {
        await expect.poll(() => receiver.received.filter((m) => m.data.target?.id === token.row.id && m.verified).length, { timeout: 10_000, interval: 100 }).toBe(2);
        await expect.poll(async () => ((await api(next, next.managementToken, 'GET', `/webhooks/${endpoint.id}/deliveries`)).body.items as any[]).find((d) => d.event_type === 'token.revoked' && d.attempts === 2 && d.status === 'delivered'), { timeout: 5000 }).toBeDefined();
      } finally {
        await next.stop();
      }
    }, START_TIMEOUT_MS);
  });

  describe(`webhook endpoints refused on ${backend.name}`, () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED });
    }, START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    it('answers bad endpoints with a 422 problem naming the field, and creates nothing', async () => {
      for (const [body, field] of [
        [{ url: 'http://10.0.0.1/hook', events: ['token.revoked'] }, 'url'],
        [{ url: 'http://169.254.169.254/latest/meta-data', events: ['token.revoked'] }, 'url'],
        [{ url: 'http://127.0.0.1:9/hook', events: ['token.revoked'] }, 'url'],
        [{ url: 'http://[::1]/hook', events: ['token.revoked'] }, 'url'],
        [{ url: 'ftp://example.com/hook', events: ['token.revoked'] }, 'url'],
        [{ url: 'https://user:pw@example.com/hook', events: ['token.revoked'] }, 'url'],
        [{ url: 'not a url', events: ['token.revoked'] }, 'url'],
        [{ url: 'https://example.com/hook', events: ['token.stolen'] }, 'events'],
        [{ url: 'https://example.com/hook', events: [] }, 'events'],
      ] as const) {
        const answer = await api(server, server.managementToken, 'POST', '/webhooks', body);
        expect(answer.status, JSON.stringify(body)).toBe(422);
        expect(answer.headers.get('content-type')).toContain('application/problem+json');
        expect(answer.body.errors[0].field, JSON.stringify(body)).toMatch(new RegExp(`^${field}`));
      }
      expect((await api(server, server.managementToken, 'GET', '/webhooks')).body.items).toEqual([]);
    });

    it('needs organization:write to add or change one, and answers 404 for another organization\'s', async () => {
      const { referenceTokenIssuer: issuer, repos } = server.tessera;
      const org = server.bootstrap.organization_id;
      const adminUser = await repos.users.insert({ id: newId('usr'), organization_id: org, username: `admin-${Date.now()}`, email: null, name: null, role: 'admin', password_hash: null });
      const adminPat = (await issuer.issue({ organizationId: org, type: 'pat', name: 'admin', userId: adminUser.id, scopes: ['organization:read', 'tokens:read'], resources: [MANAGEMENT_AUDIENCE], expiresInSeconds: 86400, createdBy: 'test' })).token;
      const refused = await api(server, adminPat, 'POST', '/webhooks', { url: 'https://example.com/hook', events: ['*'] });
      expect(refused.status).toBe(403);
      expect((await api(server, adminPat, 'GET', '/webhooks')).status).toBe(200);
      const created = await expectApi(server, server.managementToken, 'POST', '/webhooks', { url: 'https://example.com/hook', events: ['*'] }, 201);
      const other = await expectApi(server, server.managementToken, 'POST', '/organizations', { name: `other-${Date.now()}`, owner: { username: 'owner' } }, 201);
      expect((await api(server, other.management_token, 'GET', `/webhooks/${created.id}`)).status).toBe(404);
      expect((await api(server, other.management_token, 'DELETE', `/webhooks/${created.id}`)).status).toBe(404);
      const patched = await api(server, server.managementToken, 'PATCH', `/webhooks/${created.id}`, { enabled: false, events: ['token.expiring'] });
      expect(patched.body).toMatchObject({ enabled: false, events: ['token.expiring'] });
      expect((await api(server, server.managementToken, 'PATCH', `/webhooks/${created.id}`, { url: 'http://192.168.1.1/' })).status).toBe(422);
      const rotated = await api(server, server.managementToken, 'POST', `/webhooks/${created.id}/secret`, {});
      expect(rotated.body.secret).toMatch(/^whsec_/);
      expect((await api(server, server.managementToken, 'DELETE', `/webhooks/${created.id}`)).status).toBe(204);
      expect((await api(server, server.managementToken, 'GET', `/webhooks/${created.id}`)).status).toBe(404);
    });

    it('is in the OpenAPI document', async () => {
      const document = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
      expect(Object.keys(document.paths['/api/v1/webhooks']).sort()).toEqual(['get', 'post']);
      expect(Object.keys(document.paths['/api/v1/webhooks/{id}']).sort()).toEqual(['delete', 'get', 'patch']);
      expect(document.paths['/api/v1/webhooks/{id}/deliveries'].get.security).toEqual([{ bearer: ['organization:read'] }]);
      expect(document.paths['/api/v1/webhooks'].post.requestBody.content['application/json'].schema.properties.events.items.enum).toContain('token.expiring');
    });
  });
}
