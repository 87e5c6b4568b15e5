import type { SeedConfig } from '../config/config.js';
import type { Envelope } from '../keys/envelope.js';
import type { ClientRepository } from '../storage/client-repository.js';
import type { Database } from '../storage/database.js';
import { newId } from '../storage/ids.js';
import type { ResourceServerRepository } from '../storage/resource-server-repository.js';
import { secretContext } from './client-metadata.js';
import { redirectUriProblem } from './client-policy.js';

/**
 * Example resource servers and clients from `config/<env>.json` (development only), created in
 * the given organization when they do not exist yet. Idempotent: a restart changes nothing.
 */
export async function applySeed(
  seed: SeedConfig,
  organizationId: string,
  deps: { db: Database; resourceServers: ResourceServerRepository; clients: ClientRepository; envelope: Envelope; defaultAccessTokenTtl: number },
): Promise<{ created: string[] }> {
  const created: string[] = [];
  for (const rs of seed.resourceServers) {
    if (await deps.resourceServers.findByIdentifier(rs.identifier)) continue;
    await deps.db.transaction(async (tx) => {
      const row = await deps.resourceServers.insert(
        {
          id: newId('rs'),
          organization_id: organizationId,
          identifier: rs.identifier,
          name: rs.name ?? null,
          scopes: rs.scopes.map((name) => ({ name })),
          token_format: rs.token_format,
          access_token_ttl: rs.access_token_ttl ?? deps.defaultAccessTokenTtl,
          sensitive: rs.sensitive,
          dpop_required: rs.dpop_required,
        },
        tx,
      );
      await deps.clients.insert(
        {
          client_id: rs.introspection_client_id,
          organization_id: organizationId,
          kind: 'introspection',
          name: `${rs.name ?? rs.identifier} (introspection)`,
          resource_server_id: row.id,
          service_account_id: null,
          metadata: { grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' },
          allowed_scopes: [],
          allowed_resources: [],
          secret_enc: deps.envelope.seal(rs.introspection_client_secret, secretContext(rs.introspection_client_id)),
          registration: false,
        },
        tx,
      );
    });
    created.push(rs.identifier);
  }
  for (const client of seed.clients) {
    // The same redirect rule as every other way of making a client (src/domain/client-policy.ts).
    for (const field of ['redirect_uris', 'post_logout_redirect_uris'] as const) {
      client[field].forEach((uri, i) => {
        const problem = redirectUriProblem(uri);
        if (problem) throw new Error(`seed client ${client.client_id}: ${field}.${i}: ${problem}`);
      });
    }
    if (await deps.clients.findById(client.client_id)) continue;
    await deps.clients.insert({
      client_id: client.client_id,
      organization_id: organizationId,
      kind: 'oauth',
      name: client.name ?? client.client_id,
      resource_server_id: null,
      service_account_id: null,
      metadata: {
        grant_types: client.grant_types,
        response_types: client.response_types ?? (client.grant_types.includes('authorization_code') ? ['code'] : []),
        redirect_uris: client.redirect_uris,
        post_logout_redirect_uris: client.post_logout_redirect_uris,
        token_endpoint_auth_method: client.token_endpoint_auth_method,
      },
      allowed_scopes: client.scopes,
      allowed_resources: client.resources,
      secret_enc: client.client_secret ? deps.envelope.seal(client.client_secret, secretContext(client.client_id)) : null,
      registration: false,
    });
    created.push(client.client_id);
  }
  return { created };
}
