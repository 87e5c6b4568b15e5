/**
 * The baseline: a plain oidc-provider 9 with its default in-memory adapter and one confidential
 * client (client credentials, introspection). Two resource indicators: one for opaque access
 * tokens, one for ES256 JWT access tokens (the algorithm Tessera uses). Prints {"url"} once
 * listening.
 */
import { createServer } from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

import { PLAIN_CLIENT, PLAIN_JWT_RESOURCE, PLAIN_OPAQUE_RESOURCE } from './plain-client.js';

const keys = await Promise.all(
  (['ES256', 'RS256'] as const).map(async (alg) => ({ ...(await exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey)), alg, use: 'sig', kid: alg })),
);

const provider = new Provider('http://127.0.0.1', {
  jwks: { keys },
  clients: [{ ...PLAIN_CLIENT, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => PLAIN_OPAQUE_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) =>
        resource === PLAIN_JWT_RESOURCE
          ? { scope: 'orders:read', audience: PLAIN_JWT_RESOURCE, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } } }
          : { scope: 'orders:read', audience: PLAIN_OPAQUE_RESOURCE, accessTokenFormat: 'opaque', accessTokenTTL: 600 },
    },
  },
});
const server = createServer(provider.callback());
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` })}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
