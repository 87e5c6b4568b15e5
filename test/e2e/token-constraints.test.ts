/**
 * Constraints per token and usage telemetry (docs/tokens.md), on every backend: `not_before` and
 * `allowed_ips` given at issue, enforced at introspection (the address when the resource server
 * passes `client_ip`) and at the Management API (the caller's address); and the last addresses
 * and user agents a token was used from, each token written at most once a minute.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { newId } from '../../src/storage/ids.js';
import { backends, createTestClock } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { api, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const HOUR = 3_600_000;
const ORDERS_RS = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;

for (const backend of backends) {
  describe(`token constraints on ${backend.name}`, () => {
    const clock = createTestClock();
    let server: TestServer;
    let accountId: string;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { clock, overrides: EXAMPLE_SEED });
      accountId = (await server.tessera.repos.serviceAccounts.insert({ id: newId('sa'), organization_id: server.bootstrap.organization_id, name: `bot-${Date.now()}`, description: null, platform_admin: false })).id;
    }, 180_000);
    afterAll(async () => {
      await server?.stop();
    });

    const issue = (extra: Record<string, unknown>, scopes = ['orders:read'], resources = ['https://orders.test']) =>
      api(server, server.managementToken, 'POST', '/tokens', { type: 'sat', service_account_id: accountId, name: 'constrained', scopes, resources, expires_in: 30 * 86400, ...extra });
    const introspect = async (token: string, extra: Record<string, string> = {}) => {
      const response = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { authorization: ORDERS_RS, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, ...extra }) });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    };

    it('refuses the token before not_before, and from addresses outside allowed_ips when the resource server passes client_ip', async () => {
      const issued = await issue({ not_before: new Date(clock.now() + HOUR).toISOString(), allowed_ips: ['203.0.113.0/24', '2001:db8::/32'] });
      expect(issued.status, issued.text).toBe(201);
      expect(issued.body).toMatchObject({ not_before: new Date(clock.now() + HOUR).toISOString(), allowed_ips: ['203.0.113.0/24', '2001:db8::/32'] });
      expect((await introspect(issued.body.token)).body.active).toBe(false);
      clock.advance(HOUR);
      expect((await introspect(issued.body.token)).body.active).toBe(true);
      expect((await introspect(issued.body.token, { client_ip: '203.0.113.7', client_user_agent: 'deploy-script/2.1' })).body.active).toBe(true);
      expect((await introspect(issued.body.token, { client_ip: '2001:db8::42' })).body.active).toBe(true);
      expect((await introspect(issued.body.token, { client_ip: '198.51.100.1' })).body).toEqual({ active: false });
      const garbage = await introspect(issued.body.token, { client_ip: 'not-an-address' });
      expect(garbage.status).toBe(400);
      expect(garbage.body.error).toBe('invalid_request');
    });

    it('keeps the last addresses and user agents, each token written at most once a minute', async () => {
      const issued = await issue({});
      const seen = async () => ((await api(server, server.managementToken, 'GET', `/tokens/${issued.body.id}`)).body.seen_from as any[]).map((s) => `${s.ip} ${s.user_agent}`);
      await introspect(issued.body.token, { client_ip: '203.0.113.1', client_user_agent: 'first' });
      await introspect(issued.body.token, { client_ip: '203.0.113.2', client_user_agent: 'second' });
      await expect.poll(seen, { timeout: 3000 }).toEqual(['203.0.113.1 first']);
      clock.advance(61_000);
      await introspect(issued.body.token, { client_ip: '203.0.113.3', client_user_agent: 'third' });
      await expect.poll(seen, { timeout: 3000 }).toEqual(['203.0.113.3 third', '203.0.113.1 first']);
      for (let i = 4; i <= 9; i += 1) {
        clock.advance(61_000);
        await introspect(issued.body.token, { client_ip: `203.0.113.${i}` });
      }
      await expect.poll(async () => (await seen()).length, { timeout: 3000 }).toBe(5);
      expect((await seen())[0]).toBe('203.0.113.9 null');
    });

    it('applies allowed_ips at the Management API with the caller\'s address', async () => {
      const local = await issue({ allowed_ips: ['127.0.0.0/8', '::1/128'] }, ['tokens:read'], [MANAGEMENT_AUDIENCE]);
      const remote = await issue({ allowed_ips: ['203.0.113.0/24'] }, ['tokens:read'], [MANAGEMENT_AUDIENCE]);
      expect((await api(server, local.body.token, 'GET', '/tokens')).status).toBe(200);
      const refused = await api(server, remote.body.token, 'GET', '/tokens');
      expect(refused.status).toBe(401);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
    });

    it('refuses malformed constraints with a 422 naming the field', async () => {
      for (const [body, field] of [
        [{ allowed_ips: ['10.0.0.0/33'] }, 'allowed_ips'],
        [{ allowed_ips: ['not an address'] }, 'allowed_ips'],
        [{ allowed_ips: [] }, 'allowed_ips'],
        [{ not_before: 'tomorrow' }, 'not_before'],
      ] as const) {
        const answer = await issue(body);
        expect(answer.status, JSON.stringify(body)).toBe(422);
        expect(answer.body.errors[0].field).toMatch(new RegExp(`^${field}`));
      }
    });
  });
}
