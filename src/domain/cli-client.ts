import type { NewClient } from '../storage/client-repository.js';
import { DEVICE_CODE_GRANT } from './client-policy.js';
import { MANAGEMENT_AUDIENCE, ORGANIZATION_SCOPES } from './types.js';

/**
 * `tessera-cli`, the built-in public client of every organization (docs/sign-in.md, "Signing in from the
 * command line"): a user signs in through it, with authorization code + PKCE and a loopback
 * redirect URI on any port (RFC 8252 §7.3), or on a machine without a browser with the device
 * authorization grant (RFC 8628, `tessera login --device`), and gets a Management API access token carrying the
 * scopes their role grants. Scripts, `tessera login` and PAT self-service use it.
 *
 * Client ids are global (one issuer), so each organization's is `tessera-cli.<organization id>`:
 * predictable from the organization id alone, like Keycloak's per-realm `admin-cli`, and shown as
 * `cli_client_id` by `GET /api/v1/organization`.
 *
 * migrations/1700000008000_cli_client.sql backfills existing organizations with the same values;
 * a change here needs a migration that updates the stored rows (the device code grant:
 * migrations/1700000016100_cli_device_grant.sql).
 */
export const CLI_CLIENT_ID_PREFIX = 'tessera-cli.';
export const CLI_CLIENT_NAME = 'Tessera CLI';

export const cliClientId = (organizationId: string) => `${CLI_CLIENT_ID_PREFIX}${organizationId}`;

/**
 * The registered redirect URIs, without a port. The client is `application_type: native`, for
 * which oidc-provider matches a loopback http redirect URI whatever its port (RFC 8252 §7.3):
 * `http://127.0.0.1:{any}/callback` and `http://[::1]:{any}/callback`, nothing else. `localhost`
 * is left out (RFC 8252 §8.3: it may resolve elsewhere).
 */
export const CLI_REDIRECT_URIS = ['http://127.0.0.1/callback', 'http://[::1]/callback'] as const;

/** `openid` names the user; `offline_access` gets a refresh token; the rest are the Management API's. */
export const CLI_SCOPES: readonly string[] = ['openid', 'offline_access', ...ORGANIZATION_SCOPES];

export function cliClient(organizationId: string): NewClient {
  return {
    client_id: cliClientId(organizationId),
    organization_id: organizationId,
    kind: 'cli',
    name: CLI_CLIENT_NAME,
    resource_server_id: null,
    service_account_id: null,
    metadata: {
      application_type: 'native',
      // The device code grant: `tessera login --device` on a machine without a browser (RFC 8628).
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
      response_types: ['code'],
      redirect_uris: [...CLI_REDIRECT_URIS],
      // Public: a command line cannot keep a secret (RFC 8252 §8.4); PKCE protects the code.
      token_endpoint_auth_method: 'none',
    },
    allowed_scopes: [...CLI_SCOPES],
    allowed_resources: [MANAGEMENT_AUDIENCE],
    secret_enc: null,
    registration: false,
  };
}
