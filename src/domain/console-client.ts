import type { NewClient } from '../storage/client-repository.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES } from './types.js';

/**
 * `tessera-console`, the built-in client of every organization behind the web console at
 * `/console` (docs/console.md). The console is a first-party application of Tessera itself: it
 * signs a person in with authorization code + PKCE through the ordinary sign-in pages, and the
 * tokens it gets are kept on the server (backend for frontend), so the client is public
 * (`token_endpoint_auth_method: none`): the secret it would hold would live in the same process
 * that checks it, and PKCE already binds the code to the console's request.
 *
 * Like `tessera-cli` (src/domain/cli-client.ts) its id is known from the organization alone. Its
 * one redirect URI is `<issuer>/console/callback`: the issuer is the installation's, not the
 * organization's, so the stored row carries none and the client directory adds it when it loads
 * the client (`consoleRedirectUris`).
 *
 * migrations/1700000010000_console_client.sql backfills existing organizations with the same
 * values; a change here needs a migration that updates the stored rows.
 */
export const CONSOLE_CLIENT_ID_PREFIX = 'tessera-console.';
export const CONSOLE_CLIENT_NAME = 'Tessera Console';
export const CONSOLE_CALLBACK_PATH = '/console/callback';

export const consoleClientId = (organizationId: string) => `${CONSOLE_CLIENT_ID_PREFIX}${organizationId}`;

/** The redirect URIs of the console client on this installation. */
export const consoleRedirectUris = (issuer: string): string[] => [new URL(CONSOLE_CALLBACK_PATH, issuer.endsWith('/') ? issuer : `${issuer}/`).href];

/** `openid` names the person; `offline_access` keeps the console session alive past one access token. */
export const CONSOLE_SCOPES: readonly string[] = ['openid', 'offline_access', ...ORGANIZATION_SCOPES];

export function consoleClient(organizationId: string): NewClient {
  return {
    client_id: consoleClientId(organizationId),
    organization_id: organizationId,
    kind: 'console',
    name: CONSOLE_CLIENT_NAME,
    resource_server_id: null,
    service_account_id: null,
    metadata: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    allowed_scopes: [...CONSOLE_SCOPES],
    allowed_resources: [MANAGEMENT_AUDIENCE],
    secret_enc: null,
    registration: false,
  };
}
