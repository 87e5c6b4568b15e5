/** Helpers for the key rotation tests: tokens of the example seed, JWKS reads, polling. */
import { setTimeout as sleep } from 'node:timers/promises';

import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JSONWebKeySet } from 'jose';
import { expect } from 'vitest';

import type { TestServer } from './server.js';

export const WORKER = `Basic ${Buffer.from('worker:worker-secret-0123456789abcdef').toString('base64')}`;
export const ORDERS_RS = `Basic ${Buffer.from('orders-rs:orders-rs-secret-0123456789').toString('base64')}`;
export const PUBLISH_BEFORE_SIGN = 300;

export async function jwtAccessToken(server: Pick<TestServer, 'url'>): Promise<string> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: WORKER, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=orders:read&resource=https%3A%2F%2Forders.test',
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

export async function jwks(server: Pick<TestServer, 'url'>): Promise<JSONWebKeySet> {
  const response = await fetch(`${server.url}/jwks`);
  expect(response.status).toBe(200);
  return (await response.json()) as JSONWebKeySet;
}

export const kids = async (server: Pick<TestServer, 'url'>) => (await jwks(server)).keys.map((k) => k.kid);
export const kidOf = (token: string) => decodeProtectedHeader(token).kid;

export async function introspect(server: Pick<TestServer, 'url'>, token: string) {
  const response = await fetch(`${server.url}/token/introspection`, {
    method: 'POST',
    headers: { authorization: ORDERS_RS, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { active: boolean };
}

/** Verifies `token` the way a resource server does: against the JWKS it fetches now. */
export async function verifiesAgainstJwks(server: Pick<TestServer, 'url' | 'config'>, token: string, at = new Date()) {
  const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks(server)), { issuer: server.config.issuer, audience: 'https://orders.test', currentDate: at });
  return payload;
}

/** Waits until `check` holds (pub/sub and timers are asynchronous), failing with its last answer. */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 4_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!check(value) && Date.now() < deadline) {
    await sleep(100);
    value = await read();
  }
  return value;
}

/** The `kid` of an RFC 9701 signed introspection response (signed by Tessera's own key ring, RS256). */
export async function signedIntrospectionKid(server: Pick<TestServer, 'url'>, token: string): Promise<string | undefined> {
  const response = await fetch(`${server.url}/token/introspection`, {
    method: 'POST',
    headers: { authorization: ORDERS_RS, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' },
    body: new URLSearchParams({ token }),
  });
  expect(response.status).toBe(200);
  return decodeProtectedHeader(await response.text()).kid;
}
