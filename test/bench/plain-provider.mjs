/**
 * The baseline: a plain oidc-provider 9 with its default in-memory adapter and one confidential
 * client (client credentials, introspection). Two resource indicators: one for opaque access
 * tokens, one for ES256 JWT access tokens (the algorithm Tessera signs with). Plain JavaScript,
 * run by `node` itself, so no loader slows it. Prints one JSON line once listening: its URL,
 * client and resources.
 */
import { createServer } from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const client = { client_id: 'plain-bench', client_secret: 'plain-bench-secret-0123456789abcdef' };
const jwtResource = 'https://jwt.plain.test';
const opaqueResource = 'https://opaque.plain.test';

const keys = await Promise.all(
  ['ES256', 'RS256'].map(async (alg) => ({ ...(await exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey)), alg, use: 'sig', kid: alg })),
);

const provider = new Provider('http://127.0.0.1', {
  jwks: { keys },
  clients: [{ ...client, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => opaqueResource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) =>
        resource === jwtResource
          ? { scope: 'orders:read', audience: jwtResource, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } } }
          : { scope: 'orders:read', audience: opaqueResource, accessTokenFormat: 'opaque', accessTokenTTL: 600 },
    },
  },
});
const server = createServer(provider.callback());
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${address.port}`, client, jwtResource, opaqueResource })}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
