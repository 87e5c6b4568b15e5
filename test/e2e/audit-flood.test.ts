/**
 * Issue 11, defect 8: failed client authentication is something anyone can send, and each one
 * used to be a hash-chained row in the target client's organization. Repeats from one source
 * against one client now cost that organization's trail one row at once and one row with the
 * count when the window (one minute) ends, on every backend, read through the Management API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backends, createTestClock } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { SERVER_START_TIMEOUT_MS } from '../helpers/sign-in.js';

const FAILURES = 500;
const WINDOW_MS = 60_000;
/** A reference token Tessera answers for itself, so the failure is Tessera's to record. */
const SOME_TOKEN = 'tsr_sat_someTokenValueNobodyHolds0123456789abcdefghij_0AbCdE';

for (const backend of backends) {
  describe(`failed client authentication floods no audit trail on ${backend.name}`, () => {
    let server: TestServer;
    const clock = createTestClock();

    beforeAll(async () => {
      // The test configuration's failure limit is out of the way (config/test.json): every attempt is a 401.
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED, clock });
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      await server?.stop();
    });

    const trail = async (query = '') => {
      const response = await api(server, server.managementToken, 'GET', `/audit-events?limit=1000${query}`);
      expect(response.status, response.text).toBe(200);
      return response.body.items as any[];
    };
    /** Failed-authentication events are recorded a moment after the answer (the client's organization is looked up first). */
    const settle = async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await server.tessera.audit.flush();
    };
    /** Lets the window end on the injected clock, and waits for the aggregator's timer to write what it counted. */
    const endWindow = async (action: string, expectedRows: number) => {
      clock.advance(WINDOW_MS + 1000);
      for (let waited = 0; waited < 5000; waited += 100) {
        await settle();
        if ((await trail(`&action=${action}`)).length >= expectedRows) return;
      }
    };

    async function inBatches(count: number, send: (i: number) => Promise<Response>) {
      const statuses: number[] = [];
      for (let i = 0; i < count; i += 25) {
        const batch = await Promise.all(Array.from({ length: Math.min(25, count - i) }, (_, j) => send(i + j)));
        statuses.push(...batch.map((r) => r.status));
        await Promise.all(batch.map((r) => r.arrayBuffer()));
      }
      return statuses;
    }

    it(`writes ${FAILURES} failed introspection authentications of one client as two rows, the second with the count`, async () => {
      const before = (await trail()).length;
      const statuses = await inBatches(FAILURES, (i) =>
        fetch(`${server.url}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`orders-rs:wrong-secret-${i}`).toString('base64')}` },
          body: new URLSearchParams({ token: SOME_TOKEN }),
        }),
      );
      expect(statuses).toEqual(Array(FAILURES).fill(401));
      await settle();
      // The first failure is there at once, in full.
      const first = await trail('&action=client.authentication_failed');
      expect(first).toHaveLength(1);
      expect(first[0]).toMatchObject({ actor: { type: 'client', id: 'orders-rs' }, target: { type: 'client', id: 'orders-rs' }, outcome: 'failure', details: { endpoint: '/token/introspection' } });
      expect(first[0].details.count).toBeUndefined();

      await endWindow('client.authentication_failed', 2);
      const failures = await trail('&action=client.authentication_failed');
      expect(failures).toHaveLength(2);
      const summary = failures[1];
      expect(summary).toMatchObject({
        actor: { type: 'client', id: 'orders-rs' },
        target: { type: 'client', id: 'orders-rs' },
        outcome: 'failure',
        ip: first[0].ip,
        details: { endpoint: '/token/introspection', count: FAILURES - 1, window_seconds: WINDOW_MS / 1000 },
      });
      expect(Date.parse(summary.details.first_seen)).toBeLessThanOrEqual(Date.parse(summary.details.last_seen));
      // The whole trail grew by those two rows and nothing else.
      expect((await trail()).length - before).toBe(2);

      // A new window: the next failure is written at once again.
      const next = await fetch(`${server.url}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('orders-rs:wrong-again').toString('base64')}` },
        body: new URLSearchParams({ token: SOME_TOKEN }),
      });
      expect(next.status).toBe(401);
      await settle();
      expect(await trail('&action=client.authentication_failed')).toHaveLength(3);
    });

    it('folds failed /token requests the same way', async () => {
      const before = (await trail()).length;
      const statuses = await inBatches(100, (i) =>
        fetch(`${server.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`worker:wrong-secret-${i}`).toString('base64')}` },
          body: new URLSearchParams({ grant_type: 'client_credentials' }),
        }),
      );
      expect(statuses).toEqual(Array(100).fill(401));
      await settle();
      const failed = async () => (await trail('&action=client.authentication_failed&actor=worker')).length;
      expect(await failed()).toBe(1);
      await endWindow('client.authentication_failed&actor=worker', 2);
      const rows = await trail('&action=client.authentication_failed&actor=worker');
      expect(rows).toHaveLength(2);
      expect(rows[1].details).toMatchObject({ count: 99, grant_type: 'client_credentials', error: 'invalid_client' });
      // The orders-rs window above ended too and had nothing more to write.
      expect((await trail()).length - before).toBe(2);
    });
  });
}
