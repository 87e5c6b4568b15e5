/**
 * Management API helpers for tests: create what a test needs through HTTP, exactly as an
 * operator's script would, and fail loudly (with the problem document) when a call does not
 * answer as expected.
 */
import { randomBytes } from 'node:crypto';

import { api } from './server.js';
import type { TestServer } from './server.js';

type Server = Pick<TestServer, 'url'>;

export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Calls the Management API and insists on `status`; returns the parsed body. */
export async function expectApi<T = any>(server: Server, token: string, method: string, path: string, body: unknown, status: number): Promise<T> {
  const response = await api(server, token, method, path, body);
  if (response.status !== status) {
    throw new Error(`${method} ${path}: expected ${status}, got ${response.status}: ${response.text}`);
  }
  return response.body as T;
}

export interface CreatedOrganization {
  id: string;
  name: string;
  managementToken: string;
  owner: { id: string; username: string; password?: string };
}

/** A new organization through the platform token (the bootstrap SAT). */
export async function createOrganization(server: Server, platformToken: string, name = uniqueName('org')): Promise<CreatedOrganization> {
  const body = await expectApi(server, platformToken, 'POST', '/organizations', { name, owner: { username: 'owner' } }, 201);
  return { id: body.id, name: body.name, managementToken: body.management_token, owner: body.owner };
}

export async function createResourceServer(server: Server, token: string, input: Record<string, unknown> = {}) {
  return expectApi(server, token, 'POST', '/resource-servers', {
    identifier: `https://${uniqueName('api')}.example.test`,
    name: 'Test API',
    scopes: ['things:read', 'things:write'],
    ...input,
  }, 201);
}

export async function createServiceAccount(server: Server, token: string, name = uniqueName('robot')) {
  return expectApi(server, token, 'POST', '/service-accounts', { name }, 201);
}

export async function createClient(server: Server, token: string, input: Record<string, unknown>) {
  return expectApi(server, token, 'POST', '/clients', { name: uniqueName('client'), grant_types: ['client_credentials'], ...input }, 201);
}

/** A client-credentials grant at /token with client_secret_basic or client_secret_post. */
export async function clientCredentials(
  server: Server,
  clientId: string,
  secret: string,
  params: Record<string, string>,
  method: 'basic' | 'post' = 'basic',
) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', ...params });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (method === 'basic') headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  else {
    body.set('client_id', clientId);
    body.set('client_secret', secret);
  }
  const response = await fetch(`${server.url}/token`, { method: 'POST', headers, body });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** RFC 7662 introspection with client_secret_basic. */
export async function introspect(server: Server, clientId: string, secret: string, token: string) {
  const response = await fetch(`${server.url}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}
