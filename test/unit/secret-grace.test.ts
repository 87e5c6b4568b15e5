import { hash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ClientDirectory, ClientView } from '../../src/domain/client-directory.js';
import { readFormBody } from '../../src/http/form-body.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { createClientAuthenticator } from '../../src/oidc/client-authenticator.js';
import { createSecretGrace } from '../../src/oidc/secret-grace.js';
import { createTestClock } from '../helpers/test-clock.js';

/**
 * The /token pre-step alone: what the engine behind it receives. Only the exact previous
 * secret, inside its grace period, is replaced by the current one; anything else passes
 * untouched, so the engine alone judges it.
 */
describe('client secret grace pre-step', () => {
  const clock = createTestClock();
  const view = {
    record: { client_id: 'c1', organization_id: 'org', name: 'c1' },
    metadata: { client_id: 'c1', client_secret: 'current-secret' },
    previousSecret: 'previous-secret',
    previousSecretExpiresAt: clock.now() + 60_000,
    secretDigest: hash('sha256', 'current-secret', 'buffer'),
    previousSecretDigest: hash('sha256', 'previous-secret', 'buffer'),
    active: true,
  } as unknown as ClientView;
  const audited: AuditEvent[] = [];
  const audit = { record: (event: AuditEvent) => void audited.push(event) };
  const directory = { get: async (id: string) => (id === 'c1' ? view : undefined), invalidate() {} } as unknown as ClientDirectory;
  let url: string;
  const server = (() => {
    const app = new Koa();
    const authenticator = createClientAuthenticator({ clients: directory, clock, issuer: 'https://issuer.test', replay: { unique: async () => true }, audit });
    app.use(createSecretGrace({ clients: directory, authenticator }));
    // Stands in for the engine: reports the credentials it was handed.
    app.use(async (ctx) => {
      const params = await readFormBody(ctx.req);
      const basic = ctx.get('authorization').replace(/^Basic /i, '');
      ctx.body = { basic: basic ? Buffer.from(basic, 'base64').toString() : null, client_secret: params.getAll('client_secret') };
    });
    return createServer(app.callback());
  })();

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const post = async (form: Record<string, string>, basic?: string, path = '/token') => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(basic ? { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } : {}) },
      body: new URLSearchParams(form),
    });
    return response.json() as Promise<{ basic: string | null; client_secret: string[] }>;
  };

  it('hands the engine the current secret for the previous one, by basic and by post', async () => {
    expect((await post({ grant_type: 'client_credentials' }, 'c1:previous-secret')).basic).toBe('c1:current-secret');
    expect((await post({ grant_type: 'client_credentials', client_id: 'c1', client_secret: 'previous-secret' })).client_secret).toEqual(['current-secret']);
    expect((await post({ token: 'x' }, 'c1:previous-secret', '/token/introspection')).basic).toBe('c1:current-secret');
    // Every use is audited, by the authenticator every endpoint shares.
    expect(audited.map((e) => [e.action, (e.details as { method: string }).method])).toEqual([
      ['client.previous_secret_used', 'client_secret_basic'],
      ['client.previous_secret_used', 'client_secret_post'],
      ['client.previous_secret_used', 'client_secret_basic'],
    ]);
  });

  it('passes everything else untouched', async () => {
    expect((await post({}, 'c1:current-secret')).basic).toBe('c1:current-secret');
    expect((await post({}, 'c1:wrong')).basic).toBe('c1:wrong');
    expect((await post({}, 'c2:previous-secret')).basic).toBe('c2:previous-secret');
    expect((await post({ client_id: 'c1', client_secret: 'wrong' })).client_secret).toEqual(['wrong']);
    // Repeated parameters are the engine's to refuse (RFC 6749 §3.2), not ours to pick from.
    const repeated = await fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=c1&client_secret=previous-secret&client_secret=previous-secret' });
    expect((await repeated.json()).client_secret).toEqual(['previous-secret', 'previous-secret']);
    expect((await post({}, 'c1:previous-secret', '/other')).basic).toBe('c1:previous-secret');
  });

  it('stops at the end of the grace period', async () => {
    clock.advance(60_000);
    expect((await post({}, 'c1:previous-secret')).basic).toBe('c1:previous-secret');
    expect((await post({ client_id: 'c1', client_secret: 'previous-secret' })).client_secret).toEqual(['previous-secret']);
  });
});
