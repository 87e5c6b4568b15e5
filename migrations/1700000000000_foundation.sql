-- Up Migration
-- Tessera's durable state. Short-lived state (sessions, codes, opaque access tokens) lives in
-- the cache store instead; see src/storage/cache.ts.

CREATE TABLE organizations (
  id          text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  -- Organization policy (docs/operations.md, "Organization policy"): only the members that differ from the defaults in config/.
  policy      jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id              text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  username        text NOT NULL,
  email           text,
  name            text,
  role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  password_hash   text,
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, username)
);

CREATE TABLE service_accounts (
  id              text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name            text NOT NULL,
  description     text,
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  -- true only for the bootstrap account that may create organizations (organizations:admin).
  platform_admin  boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, name)
);

CREATE TABLE resource_servers (
  id               text PRIMARY KEY,
  organization_id  text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  -- One issuer, so one `aud` must mean one API: identifiers are unique installation-wide.
  identifier       text NOT NULL UNIQUE,
  name             text,
  scopes           jsonb NOT NULL DEFAULT '[]'::jsonb,
  token_format     text NOT NULL DEFAULT 'jwt' CHECK (token_format IN ('jwt', 'opaque')),
  access_token_ttl integer NOT NULL DEFAULT 600 CHECK (access_token_ttl > 0),
  sensitive        boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
  client_id          text PRIMARY KEY,
  organization_id    text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  -- 'oauth': an application; 'introspection': a resource server's introspection credentials;
  -- 'cli': the built-in public tessera-cli client.
  kind               text NOT NULL DEFAULT 'oauth' CHECK (kind IN ('oauth', 'introspection', 'cli')),
  name               text,
  resource_server_id text REFERENCES resource_servers(id) ON DELETE CASCADE,
  service_account_id text REFERENCES service_accounts(id) ON DELETE SET NULL,
  -- oidc-provider client metadata (RFC 7591 names) without the secret.
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
  allowed_scopes     jsonb NOT NULL DEFAULT '[]'::jsonb,
  allowed_resources  jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- The engine compares the secret itself, so it is kept encrypted with the KEK (AES-256-GCM),
  -- never in plain text. The previous secret stays valid until previous_secret_expires_at.
  secret_enc                 text,
  previous_secret_enc        text,
  previous_secret_expires_at timestamptz,
  secret_rotated_at          timestamptz,
  registration               boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_organization_idx ON clients (organization_id, created_at, client_id);
CREATE INDEX clients_resource_server_idx ON clients (resource_server_id);

CREATE TABLE signing_keys (
  kid             text PRIMARY KEY,
  alg             text NOT NULL,
  -- next: published, not yet signing; current: signs; retired: published for verification only.
  state           text NOT NULL CHECK (state IN ('next', 'current', 'retired')),
  public_jwk      jsonb NOT NULL,
  private_jwk_enc text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  promoted_at     timestamptz,
  retired_at      timestamptz,
  -- A retired key is removed from the JWKS once every token it signed has expired.
  remove_after    timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current_per_alg ON signing_keys (alg) WHERE state = 'current';

-- Durable oidc-provider models (Client is served from `clients`; Grant and RefreshToken here).
CREATE TABLE oidc_payloads (
  model       text NOT NULL,
  id          text NOT NULL,
  payload     jsonb NOT NULL,
  grant_id    text,
  uid         text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_payloads_grant_idx ON oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_payloads_expiry_idx ON oidc_payloads (expires_at);

-- Revoked JWT access tokens, kept until they expire (docs/tokens.md, "Revocation").
CREATE TABLE revoked_jtis (
  jti             text PRIMARY KEY,
  organization_id text,
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_jtis_expiry_idx ON revoked_jtis (expires_at);

-- PATs and SATs. Only sha256(token) is ever stored.
CREATE TABLE reference_tokens (
  id                   text PRIMARY KEY,
  organization_id      text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  type                 text NOT NULL CHECK (type IN ('pat', 'sat')),
  name                 text NOT NULL,
  user_id              text REFERENCES users(id) ON DELETE CASCADE,
  service_account_id   text REFERENCES service_accounts(id) ON DELETE CASCADE,
  scopes               jsonb NOT NULL DEFAULT '[]'::jsonb,
  resources            jsonb NOT NULL DEFAULT '[]'::jsonb,
  secret_hash          bytea NOT NULL UNIQUE,
  previous_secret_hash bytea UNIQUE,
  previous_valid_until timestamptz,
  rotation_key_hash    bytea UNIQUE,
  created_by           text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  issued_at            timestamptz NOT NULL DEFAULT now(),
  expires_at           timestamptz NOT NULL,
  rotated_at           timestamptz,
  last_used_at         timestamptz,
  use_count            bigint NOT NULL DEFAULT 0,
  revoked_at           timestamptz,
  revoked_reason       text,
  CHECK ((type = 'pat' AND user_id IS NOT NULL) OR (type = 'sat' AND service_account_id IS NOT NULL))
);
CREATE INDEX reference_tokens_org_idx ON reference_tokens (organization_id, created_at, id);

-- Down Migration
DROP TABLE reference_tokens;
DROP TABLE revoked_jtis;
DROP TABLE oidc_payloads;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE resource_servers;
DROP TABLE service_accounts;
DROP TABLE users;
DROP TABLE organizations;
