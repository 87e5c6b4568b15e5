/**
 * Bad input on the foundation's endpoints gets the wire format of the endpoint and the status
 * that says what is wrong: OAuth JSON (RFC 6749 §5.2) on protocol endpoints, problem+json
 * (RFC 9457) on the Management API, and never a 500. (machine-flows.test.ts covers an unknown
 * grant, a wrong secret, JSON and oversized bodies and garbage at the introspection endpoint.)
 */
import { request } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateToken } from '../../src/tokens/format.js';
import { backends } from '../helpers/backends.js';
import { EXAMPLE_SEED } from '../helpers/seed.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

const WORKER = `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`;
const ORDERS_RS = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
/** Larger than the 56 kB form bound of oidc-provider and of Tessera's own endpoints. */
const OVERSIZED = 60 * 1024;

interface Answer {
  status: number;
  type: string;
  headers: Headers;
  json: any;
  text: string;
}

for (const backend of backends) {
  describe(`bad input on ${backend.name}`, () => {
    let server: TestServer;

    beforeAll(async () => {
      server = await startTestServer(backend.name, { overrides: EXAMPLE_SEED });
    });
    afterAll(async () => {
      await server?.stop();
    });

    async function call(path: string, init: RequestInit = {}): Promise<Answer> {
      const response = await fetch(`${server.url}${path}`, init);
      const text = await response.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, json, text };
    }

    /** RFC 6749 §5.2: a JSON object with `error` (and maybe a description), with this status. */
    function expectOAuthError(answer: Answer, status: number, error: string) {
      expect(answer.status, answer.text).toBe(status);
      expect(answer.type).toMatch(/^application\/json/);
      expect(answer.json).toMatchObject({ error });
      expect(Object.keys(answer.json).every((k) => k === 'error' || k === 'error_description' || k === 'error_uri')).toBe(true);
    }

    function expectProblem(answer: Answer, status: number) {
      expect(answer.status, answer.text).toBe(status);
      expect(answer.type).toMatch(/^application\/problem\+json/);
      expect(answer.json).toMatchObject({ type: 'about:blank', status, title: expect.any(String) });
    }

    it('token endpoint: wrong content types, missing, repeated and unknown parameters, oversized bodies', async () => {
      const post = (body: BodyInit, headers: Record<string, string> = FORM) => call('/token', { method: 'POST', headers: { authorization: WORKER, ...headers }, body });
      expectOAuthError(await post('{"grant_type":"client_credentials"}', { 'content-type': 'application/json' }), 400, 'invalid_request');
      expectOAuthError(await post('grant_type=client_credentials', { 'content-type': 'text/plain' }), 400, 'invalid_request');
      expectOAuthError(await post(''), 400, 'invalid_request');
      expectOAuthError(await post('grant_type=client_credentials&grant_type=client_credentials'), 400, 'invalid_request');
      expectOAuthError(await post('grant_type=urn%3Aexample%3Aunknown'), 400, 'unsupported_grant_type');
      expectOAuthError(await post('grant_type=client_credentials&resource=not%20a%20uri'), 400, 'invalid_target');
      expectOAuthError(await post('grant_type=client_credentials&resource=https%3A%2F%2Forders.test%23fragment'), 400, 'invalid_target');
      expectOAuthError(await post(`grant_type=client_credentials&scope=${'%00'.repeat(10)}`), 400, 'invalid_scope');
      const oversized = await post(`grant_type=client_credentials&padding=${'a'.repeat(OVERSIZED)}`);
      expect([400, 413]).toContain(oversized.status);
      expectOAuthError(oversized, oversized.status, 'invalid_request');
      // Malformed client authentication is a bad request, not a crash.
      const malformedBasic = await call('/token', { method: 'POST', headers: { authorization: 'Basic %%%not-base64', ...FORM }, body: 'grant_type=client_credentials' });
      expectOAuthError(malformedBasic, 400, 'invalid_request');
      const noColon = await call('/token', { method: 'POST', headers: { authorization: `Basic ${Buffer.from('worker').toString('base64')}`, ...FORM }, body: 'grant_type=client_credentials' });
      expectOAuthError(noColon, 400, 'invalid_request');
    });

    it('revocation endpoint: always 200 for tokens it does not know, OAuth errors for bad requests', async () => {
      const revoke = (body: string, headers: Record<string, string> = { authorization: ORDERS_RS, ...FORM }) => call('/token/revocation', { method: 'POST', headers, body });
      expectOAuthError(await revoke(''), 400, 'invalid_request');
      expectOAuthError(await revoke('token=a&token=b'), 400, 'invalid_request');
      expectOAuthError(await revoke('{"token":"x"}', { authorization: ORDERS_RS, 'content-type': 'application/json' }), 400, 'invalid_request');
      const oversized = await revoke(`token=${'a'.repeat(OVERSIZED)}`);
      expect([400, 413]).toContain(oversized.status);
      expectOAuthError(oversized, oversized.status, 'invalid_request');
      expectOAuthError(await revoke('token=x', FORM), 400, 'invalid_request');
      const wrongSecret = await revoke('token=x', { authorization: `Basic ${Buffer.from('orders-rs:wrong').toString('base64')}`, ...FORM });
      expectOAuthError(wrongSecret, 401, 'invalid_client');

      // RFC 7009 §2.2: an invalid or unknown token is not an error.
      const garbage = ['x', generateToken('pat'), generateToken('sat'), generateToken('rk'), 'tsr_pat_short_abc', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', 'eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.AAAA', 'a'.repeat(9000), '\u0000\uffff'];
      for (const token of garbage) {
        const answer = await revoke(new URLSearchParams({ token }).toString());
        expect(answer.status, token.slice(0, 20)).toBe(200);
        const hinted = await revoke(new URLSearchParams({ token, token_type_hint: 'no_such_hint' }).toString());
        expect(hinted.status, token.slice(0, 20)).toBeLessThan(500);
      }
    });

    it('answers other methods on protocol endpoints with 405 and Allow, in OAuth JSON', async () => {
      const cases: [string, string[], string][] = [
        ['/token', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST'],
        ['/token/introspection', ['GET', 'PUT'], 'POST'],
        ['/token/revocation', ['GET', 'DELETE'], 'POST'],
        ['/jwks', ['POST', 'PUT', 'DELETE', 'PATCH'], 'GET, HEAD'],
        ['/.well-known/openid-configuration', ['POST', 'DELETE'], 'GET, HEAD'],
        ['/.well-known/oauth-authorization-server', ['PUT'], 'GET, HEAD'],
      ];
      for (const [path, methods, allow] of cases) {
        for (const method of methods) {
          const answer = await call(path, { method });
          expectOAuthError(answer, 405, 'invalid_request');
          expect(answer.headers.get('allow'), `${method} ${path}`).toBe(allow);
        }
      }
      // The methods that are served still are.
      const head = await call('/jwks', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.type).toMatch(/^application\/jwk-set\+json/);
    });

    it('serves discovery and the JWKS unchanged whatever the query string', async () => {
      const plain = await call('/.well-known/openid-configuration');
      expect(plain.status).toBe(200);
      for (const query of ['?foo=bar', '?x[]=1&x=2', '?%zz', `?pad=${'a'.repeat(4000)}`]) {
        const answer = await call(`/.well-known/openid-configuration${query}`);
        expect(answer.status, query).toBe(200);
        expect(answer.json).toEqual(plain.json);
        const oauth = await call(`/.well-known/oauth-authorization-server${query}`);
        expect(oauth.status, query).toBe(200);
        expect(oauth.json.issuer).toBe(server.config.issuer);
        const jwks = await call(`/jwks${query}`);
        expect(jwks.status, query).toBe(200);
        expect(jwks.json.keys.length).toBeGreaterThan(0);
      }
    });

    it('Management API: unknown paths are 404 and wrong methods 405, in problem+json; bad bodies are 4xx', async () => {
      const auth = { authorization: `Bearer ${server.managementToken}` };
      for (const path of ['/api/v1', '/api/v1/', '/api/v1/nope', '/api/v1/organization/extra', '/api/v1/organizations/%zz', '/api/v1/v2/organization']) {
        expectProblem(await call(path, { headers: auth }), 404);
      }
      for (const method of ['PUT', 'DELETE', 'POST']) {
        const answer = await call('/api/v1/organization', { method, headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
        expectProblem(answer, 405);
        expect(answer.headers.get('allow')).toBe('GET, PATCH');
      }
      const post = (body: string, type = 'application/json') => call('/api/v1/organizations', { method: 'POST', headers: { ...auth, 'content-type': type }, body });
      expectProblem(await post('{"name":'), 400);
      expectProblem(await post('<organization/>', 'application/xml'), 415);
      expectProblem(await post('[]'), 422);
      expectProblem(await post('null'), 422);
      expectProblem(await post(JSON.stringify({ name: 'x', padding: 'a'.repeat(70 * 1024) })), 413);
      // A search query that does not parse is a bad request (400), like a bad cursor.
      expectProblem(await call('/api/v1/audit-events?limit=abc', { headers: auth }), 400);
      expectProblem(await call('/api/v1/audit-events?cursor=%%%', { headers: auth }), 400);
      for (const header of ['Bearer a.b.c', `Bearer ${'a'.repeat(10_000)}`, 'Bearer', WORKER, `Bearer ${generateToken('sat')}`]) {
        expectProblem(await call('/api/v1/organization', { headers: { authorization: header } }), 401);
      }
    });

    it('refuses request heads over the size bound with 431, and keeps serving', async () => {
      const port = Number(new URL(server.url).port);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/token', headers: { ...FORM, 'x-padding': 'a'.repeat(20 * 1024) } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end('grant_type=client_credentials');
      });
      expect(status).toBe(431);
      expect((await call('/healthz')).status).toBe(200);
    });

    it('logged no server error for any of it', () => {
      const errors = server.logs.filter((line) => JSON.parse(line).level === 'error');
      expect(errors).toEqual([]);
    });
  });
}
