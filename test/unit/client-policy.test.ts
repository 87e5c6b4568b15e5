import { describe, expect, it } from 'vitest';

import { checkClientShape, checkScopesAndResources, redirectUriProblem, resourceIdentifierProblem } from '../../src/domain/client-policy.js';
import type { ResourceServer } from '../../src/domain/types.js';

describe('client policy', () => {
  it('accepts https redirect URIs and http only on loopback (RFC 8252 §7.3)', () => {
    for (const ok of ['https://app.example.test/cb', 'http://127.0.0.1:8080/cb', 'http://[::1]/cb', 'http://localhost:1234/cb']) expect(redirectUriProblem(ok), ok).toBeUndefined();
    for (const bad of ['http://app.example.test/cb', 'https://app.example.test/cb#frag', 'javascript:alert(1)', 'com.example.app:/cb', '/relative', 'https://user:pw@app.example.test/cb', 'http://127.0.0.1.evil.test/cb']) {
      expect(redirectUriProblem(bad), bad).toEqual(expect.any(String));
    }
  });

  it('accepts absolute https, http and urn identifiers, and reserves urn:tessera:*', () => {
    for (const ok of ['https://api.example.test', 'https://api.example.test/v1', 'http://internal.test', 'urn:example:orders']) expect(resourceIdentifierProblem(ok), ok).toBeUndefined();
    for (const bad of ['urn:tessera:management', 'URN:TESSERA:anything', 'api.example.test', 'https://api.example.test/#x', 'ftp://x.test', 'mailto:a@b.test']) {
      expect(resourceIdentifierProblem(bad), bad).toEqual(expect.any(String));
    }
  });

  it('checks the combination of grant types, authentication method and keys', () => {
    const base = { grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', redirect_uris: [] as string[] };
    expect(checkClientShape(base)).toEqual([]);
    expect(checkClientShape({ ...base, token_endpoint_auth_method: 'none' }).map((p) => p.field)).toEqual(['grant_types']);
    expect(checkClientShape({ ...base, grant_types: ['refresh_token'] }).map((p) => p.field)).toContain('grant_types');
    expect(checkClientShape({ ...base, token_endpoint_auth_method: 'private_key_jwt' }).map((p) => p.field)).toEqual(['jwks']);
    expect(checkClientShape({ ...base, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'secret' }] } }).map((p) => p.field)).toEqual(['jwks.keys.0']);
    expect(checkClientShape({ ...base, jwks: { keys: [{ kty: 'EC' }] } }).map((p) => p.field)).toEqual(['jwks']);
    expect(checkClientShape({ ...base, grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1/cb'] })).toEqual([]);
  });

  it('holds post-logout redirect URIs to the redirect URI rule', () => {
    const base = { grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['https://app.example.test/cb'] };
    expect(checkClientShape({ ...base, post_logout_redirect_uris: ['https://app.example.test/bye', 'http://127.0.0.1:8080/', 'http://localhost/'] })).toEqual([]);
    expect(checkClientShape({ ...base, post_logout_redirect_uris: ['https://app.example.test/bye', 'http://app.example.test/bye', 'https://app.example.test/#x'] })).toEqual([
      { field: 'post_logout_redirect_uris.1', message: expect.stringMatching(/loopback/) },
      { field: 'post_logout_redirect_uris.2', message: expect.stringMatching(/fragment/) },
    ]);
  });

  it('allows OpenID scopes, scopes of listed APIs of the organization, and Management scopes up to the caller\'s', async () => {
    const apis: Record<string, Pick<ResourceServer, 'organization_id' | 'scopes'>> = {
      'https://mine.test': { organization_id: 'org_a', scopes: [{ name: 'orders:read' }, { name: 'clients:write' }] },
      'https://theirs.test': { organization_id: 'org_b', scopes: [{ name: 'secret:read' }] },
    };
    const check = (scopes: string[], resources: string[], principal: string[] = []) =>
      checkScopesAndResources({
        organizationId: 'org_a', scopes, resources, principalScopes: new Set(principal),
        findResourceServer: async (identifier) => apis[identifier] as ResourceServer | undefined,
      });
    expect(await check(['openid', 'orders:read'], ['https://mine.test'])).toEqual([]);
    expect((await check(['secret:read'], ['https://theirs.test'])).map((p) => p.field)).toEqual(['resources.0', 'scopes.0']);
    expect((await check(['orders:read'], []))[0]!.field).toBe('scopes.0');
    // A same-named API scope is fine for that API, but grants nothing on the Management API.
    expect(await check(['clients:write'], ['https://mine.test'])).toEqual([]);
    expect((await check(['clients:write'], ['https://mine.test', 'urn:tessera:management']))[0]!.message).toBe('exceeds the scopes of the caller');
    expect(await check(['clients:write'], ['urn:tessera:management'], ['clients:write'])).toEqual([]);
    expect((await check(['organizations:admin'], ['urn:tessera:management'], ['organizations:admin']))[0]!.field).toBe('scopes.0');
  });
});
