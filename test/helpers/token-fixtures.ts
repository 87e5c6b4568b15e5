/**
 * A whole Tessera on real PostgreSQL + Redis (or the embedded backends), served over HTTP, with
 * an injected clock; plus fixtures the Management API of this branch cannot create yet (users,
 * service accounts, resource servers with introspection credentials), written through the
 * repositories.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';

import { createTessera } from '../../src/app.js';
import type { Tessera } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { secretContext } from '../../src/domain/client-metadata.js';
import type { Role } from '../../src/domain/types.js';
import { MANAGEMENT_AUDIENCE } from '../../src/domain/types.js';
import { createLogger } from '../../src/http/logger.js';
import type { Envelope } from '../../src/keys/envelope.js';
import type { Database } from '../../src/storage/database.js';
import { newId } from '../../src/storage/ids.js';

export const TEST_KEK = randomBytes(32).toString('base64');
export const TEST_COOKIE_KEYS = `${randomBytes(24).toString('hex')},${randomBytes(24).toString('hex')}`;

export interface RunningTessera {
  tessera: Tessera;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

export async function startTessera(options: {
  clock: Clock;
  databaseUrl?: string;
  schema?: string;
  redisUrl?: string;
  redisPrefix?: string;
  dataDir?: string;
  overrides?: Record<string, unknown>;
}): Promise<RunningTessera> {
  const config = loadConfig(
    {
      NODE_ENV: 'test',
      PORT: '0',
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      TESSERA_KEK: TEST_KEK,
      TESSERA_COOKIE_KEYS: TEST_COOKIE_KEYS,
      TESSERA_DATA_DIR: options.dataDir,
      TESSERA_ISSUER: 'http://127.0.0.1:3999',
    },
    { overrides: options.overrides },
  );
  const logger = createLogger({ level: 'silent' });
  const tessera = await createTessera({ config, logger, clock: options.clock, schema: options.schema, redisPrefix: options.redisPrefix });
  const server = createServer(tessera.handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    tessera,
    server,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await tessera.close();
    },
  };
}

export interface ResourceServerFixture {
  id: string;
  identifier: string;
  clientId: string;
  clientSecret: string;
  basic: string;
}

/** A resource server with its introspection credentials, as POST /api/v1/resource-servers creates them. */
export async function createResourceServer(
  deps: { db: Database; envelope: Envelope },
  organizationId: string,
  options: { scopes: string[]; sensitive?: boolean; identifier?: string; tokenFormat?: 'jwt' | 'opaque' },
): Promise<ResourceServerFixture> {
  const id = newId('rs');
  const identifier = options.identifier ?? `https://api.example.test/${randomBytes(4).toString('hex')}`;
  const clientId = `rs-${randomBytes(4).toString('hex')}`;
  const clientSecret = randomBytes(24).toString('base64url');
  await deps.db.query(
    `INSERT INTO resource_servers (id, organization_id, identifier, name, scopes, token_format, access_token_ttl, sensitive)
     VALUES ($1, $2, $3, $4, $5, $6, 600, $7)`,
    [id, organizationId, identifier, identifier, JSON.stringify(options.scopes.map((name) => ({ name }))), options.tokenFormat ?? 'jwt', options.sensitive ?? false],
  );
  await deps.db.query(
    `INSERT INTO clients (client_id, organization_id, kind, name, resource_server_id, metadata, secret_enc)
     VALUES ($1, $2, 'introspection', $3, $4, $5, $6)`,
    [clientId, organizationId, `${identifier} (introspection)`, id, JSON.stringify({ grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' }), deps.envelope.seal(clientSecret, secretContext(clientId))],
  );
  return { id, identifier, clientId, clientSecret, basic: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}` };
}

export async function createUser(db: Database, organizationId: string, role: Role): Promise<{ id: string; username: string }> {
  const id = newId('usr');
  const username = `${role}-${randomBytes(3).toString('hex')}`;
  await db.query('INSERT INTO users (id, organization_id, username, role) VALUES ($1, $2, $3, $4)', [id, organizationId, username, role]);
  return { id, username };
}

export async function createServiceAccount(db: Database, organizationId: string): Promise<{ id: string; name: string }> {
  const id = newId('sa');
  const name = `sa-${randomBytes(3).toString('hex')}`;
  await db.query('INSERT INTO service_accounts (id, organization_id, name) VALUES ($1, $2, $3)', [id, organizationId, name]);
  return { id, name };
}

export async function createOrganization(db: Database): Promise<string> {
  const id = newId('org');
  await db.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [id, `org-${randomBytes(3).toString('hex')}`]);
  return id;
}

/** A PAT for the Management API issued directly (what a user would get through self-service). */
export async function managementPat(tessera: Tessera, organizationId: string, userId: string, scopes: string[], expiresInDays = 30): Promise<string> {
  const issued = await tessera.referenceTokenIssuer.issue({
    organizationId,
    type: 'pat',
    name: 'test management PAT',
    userId,
    scopes,
    resources: [MANAGEMENT_AUDIENCE],
    expiresInSeconds: expiresInDays * 86400,
    createdBy: 'test',
  });
  return issued.token;
}
