-- Up Migration
-- Cursors carry created_at as an RFC 3339 string with milliseconds (JavaScript's precision);
-- keyset pagination compares it with the stored value, so stored values must not be finer, or
-- a row created in the same millisecond as the cursor would be served twice.
ALTER TABLE organizations ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
ALTER TABLE service_accounts ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
ALTER TABLE resource_servers ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
ALTER TABLE clients ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
UPDATE organizations SET created_at = date_trunc('milliseconds', created_at);
UPDATE users SET created_at = date_trunc('milliseconds', created_at);
UPDATE service_accounts SET created_at = date_trunc('milliseconds', created_at);
UPDATE resource_servers SET created_at = date_trunc('milliseconds', created_at);
UPDATE clients SET created_at = date_trunc('milliseconds', created_at);

-- Management API listings page by (created_at, id) within one organization.
CREATE INDEX users_organization_idx ON users (organization_id, created_at, id);
CREATE INDEX service_accounts_organization_idx ON service_accounts (organization_id, created_at, id);
CREATE INDEX resource_servers_organization_idx ON resource_servers (organization_id, created_at, id);

-- RFC 7591 initial access tokens, issued by an organization through the Management API. Only
-- sha256(token) is stored (docs/design.md, "No secret at rest, none in a log"). The token may be used until it expires; a client
-- registered with it gets at most `scopes` and `resources`.
CREATE TABLE initial_access_tokens (
  id              text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  token_hash      bytea NOT NULL UNIQUE,
  scopes          jsonb NOT NULL DEFAULT '[]'::jsonb,
  resources       jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_by      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  last_used_at    timestamptz,
  use_count       integer NOT NULL DEFAULT 0
);
CREATE INDEX initial_access_tokens_organization_idx ON initial_access_tokens (organization_id, created_at, id);

-- What a dynamically registered client may widen back to through RFC 7592 updates: the scopes
-- and resources of the initial access token it was registered with, fixed at registration.
ALTER TABLE clients ADD COLUMN registration_limits jsonb;
ALTER TABLE clients ADD COLUMN initial_access_token_id text;

-- Down Migration
ALTER TABLE clients DROP COLUMN initial_access_token_id;
ALTER TABLE organizations ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE service_accounts ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE resource_servers ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE clients ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE clients DROP COLUMN registration_limits;
DROP TABLE initial_access_tokens;
DROP INDEX resource_servers_organization_idx;
DROP INDEX service_accounts_organization_idx;
DROP INDEX users_organization_idx;
