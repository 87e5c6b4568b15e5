/**
 * What the token-exchange and DPoP tests share: the grant and token type names, a client allowed
 * the exchange, the example seed with extra clients, a form POST with headers of its choosing,
 * and hand-made DPoP proofs (RFC 9449 §4.2), right or wrong as a test needs them.
 */
import { randomUUID } from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { JWK } from 'jose';

import { EXAMPLE_SEED } from './seed.js';

export const EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const ORDERS = 'https://orders.test';
export const BILLING = 'https://billing.test';

export const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** A confidential client of the default organization allowed token exchange for both example APIs. */
export const EXCHANGER = { id: 'exchanger', secret: 'exchanger-secret-0123456789abcdef' };
export const exchangerClient = (scopes: string[] = ['orders:read', 'orders:write', 'billing:read']) => ({
  client_id: EXCHANGER.id,
  client_secret: EXCHANGER.secret,
  name: 'Exchanger',
  grant_types: [EXCHANGE_GRANT],
  token_endpoint_auth_method: 'client_secret_basic',
  scopes,
  resources: [ORDERS, BILLING],
});

/** The example seed (two APIs, the worker) with more clients. */
export const seedWith = (...clients: Record<string, unknown>[]) => ({ seed: { ...EXAMPLE_SEED.seed, clients: [...EXAMPLE_SEED.seed.clients, ...clients] } });

/** POSTs a urlencoded form with the given headers; the answer's status, parsed JSON body and headers. */
export async function postForm(url: string, path: string, form: Record<string, string> | string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

export interface ProofKey {
  privateKey: CryptoKey;
  jwk: JWK;
  thumbprint: string;
}
export async function proofKey(): Promise<ProofKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  return { privateKey: privateKey as CryptoKey, jwk, thumbprint: await calculateJwkThumbprint(jwk) };
}
/** A DPoP proof JWT (RFC 9449 §4.2), right by default, wrong where the test says. */
export function proof(key: ProofKey, claims: { htu: string; htm?: string; iat?: number; jti?: string; nonce?: string }): Promise<string> {
  return new SignJWT({ htm: claims.htm ?? 'POST', htu: claims.htu, iat: claims.iat ?? Math.floor(Date.now() / 1000), jti: claims.jti ?? randomUUID(), ...(claims.nonce ? { nonce: claims.nonce } : {}) })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .sign(key.privateKey);
}
