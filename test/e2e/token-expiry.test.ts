/**
 * Expiry that does not surprise (docs/tokens.md), on every backend: `token.expiring` audit events
 * and webhooks at 30, 7 and 1 days before a PAT/SAT expires, exactly once per threshold however
 * often the job runs, only thresholds shorter than the token's lifetime; and introspection
 * telling a resource server's automation the remaining lifetime (`expires_in`). The test clock
 * moves time; the receiver verifies what is sent at the start, before the clock has moved.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { newId } from '../../src/storage/ids.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { expectApi, introspect } from '../helpers/management.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';
import type { WebhookReceiver } from '../helpers/webhook-receiver.js';

const DAY = 86_400_000;

for (const backend of backends) {
  describe(`expiry warnings on ${backend.name}`, () => {
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    const clock = createTestClock(t0);
    let server: TestServer;
    let receiver: WebhookReceiver;
    let org: string;
    const ids: Record<string, string> = {};
    let monthToken = '';

    /** Runs the job twice, as two ticks (or two nodes) would: the second must find nothing new. */
    const runJob = async () => {
      const first = await server.tessera.tokenService.warnExpiring();
      const second = await server.tessera.tokenService.warnExpiring();
      expect(second).toBe(0);
      return first;
    };
    const warnings = async () => {
      await server.tessera.audit.flush();
      const rows = await server.tessera.auditRepository.list({ organizationId: org, action: 'token.expiring', limit: 100 });
      const names = new Map(Object.entries(ids).map(([name, id]) => [id, name]));
      return rows.map((r) => `${names.get(r.target_id!) ?? r.target_id}:${r.details.threshold_days}`);
    };

    beforeAll(async () => {
      receiver = await startWebhookReceiver();
      server = await startTestServer(backend.name, { clock, overrides: EXAMPLE_SEED, env: { TESSERA_OUTBOUND_ALLOWED_HOSTS: '127.0.0.1' } });
      org = server.bootstrap.organization_id;
      const endpoint = await expectApi(server, server.managementToken, 'POST', '/webhooks', { url: receiver.url, events: ['token.expiring'] }, 201);
      receiver.secret = endpoint.secret;
      const user = await server.tessera.repos.users.insert({ id: newId('usr'), organization_id: org, username: `dev-${t0}`, email: null, name: null, role: 'member', password_hash: null });
      const issue = async (name: string, days: number, issuedAt = t0) => {
        clock.set(issuedAt);
        const issued = await server.tessera.referenceTokenIssuer.issue({ organizationId: org, type: 'pat', name, userId: user.id, scopes: ['orders:read'], resources: ['https://orders.test'], expiresInSeconds: days * 86400, createdBy: 'test' });
        clock.set(t0);
        ids[name] = issued.row.id;
        return issued;
      };
      await issue('long', 90);
      monthToken = (await issue('month', 45)).token;
      await issue('week', 6);
      // Issued 11 days ago for 40 days: 29 left now.
      await issue('soon', 40, t0 - 11 * DAY);
      // Issued 35 days ago for 40 days: 5 left now, within both 30 and 7.
      await issue('stale', 40, t0 - 35 * DAY);
    }, 180_000);
    afterAll(async () => {
      await server?.stop();
      await receiver?.close();
    });

    it('warns once per threshold, the tightest one crossed, never for a threshold longer than the token lives', async () => {
      // t0: `soon` is within 30 days; `stale` within 30 and 7 at once, and is warned for 7 only;
      // `week` is within 7 and 30 but lives less than either, so neither applies to it.
      expect(await runJob()).toBe(2);
      expect(await warnings()).toEqual(['stale:7', 'soon:30']);
      // Sent as signed webhooks before the clock moves on (a message stamped days ahead is stale to a receiver).
      const sent = () => receiver.received.filter((m) => m.type === 'token.expiring').map((m) => `${m.data.details.name}:${m.data.details.threshold_days}:${m.verified}`).sort();
      await expect.poll(async () => (await server.tessera.audit.flush(), await server.tessera.scheduler.webhooks.run(), sent()), { timeout: 5000 }).toEqual(['soon:30:true', 'stale:7:true']);
      expect(receiver.received.find((m) => m.data.target.id === ids.soon)!.data).toMatchObject({ organization_id: org, actor: { type: 'system' }, details: { token_kind: 'pat', expires_at: new Date(t0 + 29 * DAY).toISOString() } });
      const steps: [number, number][] = [[4.5, 1], [5.5, 1], [15.5, 1], [22.5, 1], [28.5, 1], [38.5, 1], [44.5, 1], [60.5, 1], [83.5, 1], [89.5, 1], [91, 0]];
      for (const [days, count] of steps) {
        clock.set(t0 + days * DAY);
        expect(await runJob(), `day ${days}`).toBe(count);
      }
      expect(await warnings()).toEqual(['stale:7', 'soon:30', 'stale:1', 'week:1', 'month:30', 'soon:7', 'soon:1', 'month:7', 'month:1', 'long:30', 'long:7', 'long:1']);
      const first = (await server.tessera.auditRepository.list({ organizationId: org, action: 'token.expiring', targetId: ids.month!, limit: 1 }))[0]!;
      expect(first.details).toMatchObject({ threshold_days: 30, expires_at: new Date(t0 + 45 * DAY).toISOString(), token_kind: 'pat', name: 'month' });
      clock.set(t0);
    });

    it('tells introspection the remaining lifetime in expires_in', async () => {
      clock.set(t0);
      const answer = await introspect(server, 'orders-rs', 'orders-rs-secret-0123456789', monthToken);
      expect(answer.body).toMatchObject({ active: true, expires_in: 45 * 86400 });
      clock.set(t0 + 10 * DAY + 5000);
      const later = await introspect(server, 'orders-rs', 'orders-rs-secret-0123456789', monthToken);
      expect(later.body.expires_in).toBe(35 * 86400 - 5);
      expect(later.body.exp).toBe(Math.floor((t0 + 45 * DAY) / 1000));
      clock.set(t0);
    });

    it('takes the thresholds from organization policy', async () => {
      const bad = await api(server, server.managementToken, 'PATCH', '/organization', { policy: { expiry_warning_days: [-1] } });
      expect(bad.status).toBe(422);
      const changed = await api(server, server.managementToken, 'PATCH', '/organization', { policy: { expiry_warning_days: [14] } });
      expect(changed.status, changed.text).toBe(200);
      expect(changed.body.policy.expiry_warning_days).toEqual([14]);
    });
  });
}
