-- Up Migration
-- The built-in public client `tessera-cli` of every organization (docs/sign-in.md, "Signing in from the
-- command line"; src/domain/cli-client.ts). New organizations get it when they are created;
-- this backfills the ones created before, with the same values the code writes.
INSERT INTO clients (client_id, organization_id, kind, name, metadata, allowed_scopes, allowed_resources, registration)
SELECT 'tessera-cli.' || o.id, o.id, 'cli', 'Tessera CLI',
       '{"application_type": "native",
         "grant_types": ["authorization_code", "refresh_token"],
         "response_types": ["code"],
         "redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/callback"],
         "token_endpoint_auth_method": "none"}'::jsonb,
       '["openid", "offline_access", "organization:read", "organization:write", "users:read", "users:write",
         "service-accounts:read", "service-accounts:write", "clients:read", "clients:write",
         "resource-servers:read", "resource-servers:write", "tokens:read", "tokens:write", "audit:read"]'::jsonb,
       '["urn:tessera:management"]'::jsonb,
       false
  FROM organizations o
 WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.organization_id = o.id AND c.kind = 'cli')
ON CONFLICT (client_id) DO NOTHING;

-- RFC 7591 registration used to accept `application_type: native`, for which the engine matches
-- loopback redirect URIs on any port (RFC 8252 §7.3). That is now the built-in client's alone
-- (src/oidc/sign-in-config.ts refuses it elsewhere): such clients become web clients, whose
-- redirect URIs match exactly as registered, instead of failing to load.
UPDATE clients SET metadata = metadata - 'application_type', updated_at = now()
 WHERE kind <> 'cli' AND metadata->>'application_type' = 'native';

-- One built-in client per organization.
CREATE UNIQUE INDEX clients_one_cli_per_organization ON clients (organization_id) WHERE kind = 'cli';

-- Down Migration
DROP INDEX clients_one_cli_per_organization;
DELETE FROM clients WHERE kind = 'cli';
