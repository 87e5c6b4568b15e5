
import type { Envelope } from '../keys/envelope.js';
import { consoleRedirectUris } from './console-client.js';
import type { ClientRecord } from './types.js';

/** Envelope context of a client secret: binds the ciphertext to its client and slot. */
export const secretContext = (clientId: string, slot: 'current' | 'previous' = 'current') => `client-secret:${clientId}:${slot}`;

/**
 * Turns a stored client into the metadata oidc-provider expects (RFC 7591 member names).
 * Tessera's own facts ride along as `tessera_*` extra metadata, so every hook that receives
 * an oidc-provider Client can tell its organization, allowed resources and allowed scopes
 * without a lookup. Allowed scopes are not the engine's `scope` member: that one must name
 * scopes known at start-up, while resource servers and their scopes change at run time.
 */
/** A client as the OpenID engine reads it: RFC 7591 member names, plus Tessera's `tessera_*` members. */
export type EngineClientMetadata = Record<string, unknown>;

export function toProviderMetadata(record: ClientRecord, envelope: Envelope, issuer?: string): EngineClientMetadata {
  const metadata: EngineClientMetadata = {
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    ...record.metadata,
    client_id: record.client_id,
    client_name: record.name ?? undefined,
    tessera_scopes: record.allowed_scopes,
    tessera_organization_id: record.organization_id,
    tessera_kind: record.kind,
    tessera_resources: record.allowed_resources,
    tessera_service_account_id: record.service_account_id ?? undefined,
  };
  // The console client's redirect URI is on this installation's issuer (src/domain/console-client.ts).
  if (record.kind === 'console' && issuer) metadata.redirect_uris = consoleRedirectUris(issuer);
  if (record.secret_enc) metadata.client_secret = envelope.open(record.secret_enc, secretContext(record.client_id));
  return metadata;
}

/** The extra client metadata members above, as oidc-provider must be told about them. */
export const TESSERA_CLIENT_PROPERTIES = ['tessera_organization_id', 'tessera_kind', 'tessera_resources', 'tessera_scopes', 'tessera_service_account_id'];
