-- Up Migration
-- The built-in client `tessera-console` of every organization (docs/console.md;
-- src/domain/console-client.ts), behind the web console at /console. New organizations get it
-- when they are created; this backfills the ones created before, with the same values the code
-- writes. Its redirect URI depends on the issuer, so the client directory adds it at load time.
ALTER TABLE clients DROP CONSTRAINT IF EXISTS clients_kind_check;
ALTER TABLE clients ADD CONSTRAINT clients_kind_check CHECK (kind IN ('oauth', 'introspection', 'cli', 'console'));

INSERT INTO clients (client_id, organization_id, kind, name, metadata, allowed_scopes, allowed_resources, registration)
SELECT 'tessera-console.' || o.id, o.id, 'console', 'Tessera Console',
       '{"grant_types": ["authorization_code", "refresh_token"],
         "response_types": ["code"],
         "token_endpoint_auth_method": "none"}'::jsonb,
       '["openid", "offline_access", "organization:read", "organization:write", "users:read", "users:write",
         "service-accounts:read", "service-accounts:write", "clients:read", "clients:write",
         "resource-servers:read", "resource-servers:write", "tokens:read", "tokens:write", "audit:read"]'::jsonb,
       '["urn:tessera:management"]'::jsonb,
       false
  FROM organizations o
 WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.organization_id = o.id AND c.kind = 'console')
ON CONFLICT (client_id) DO NOTHING;

-- One console client per organization.
CREATE UNIQUE INDEX IF NOT EXISTS clients_one_console_per_organization ON clients (organization_id) WHERE kind = 'console';

-- Down Migration
DROP INDEX clients_one_console_per_organization;
DELETE FROM clients WHERE kind = 'console';
ALTER TABLE clients DROP CONSTRAINT IF EXISTS clients_kind_check;
ALTER TABLE clients ADD CONSTRAINT clients_kind_check CHECK (kind IN ('oauth', 'introspection', 'cli'));
