-- Up Migration
-- Reference token lifecycle (rotation, token pairs, reuse detection, idle revocation, usage).

-- The lifetime a token was issued with: a token pair's renewal repeats it, capped by policy.
ALTER TABLE reference_tokens ADD COLUMN lifetime_seconds integer;
ALTER TABLE reference_tokens ADD COLUMN rotation_count integer NOT NULL DEFAULT 0;

-- Ownership changes find every token of an owner at once.
CREATE INDEX reference_tokens_user_idx ON reference_tokens (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX reference_tokens_service_account_idx ON reference_tokens (service_account_id) WHERE service_account_id IS NOT NULL;
-- The idle-revocation job scans live tokens by last activity.
CREATE INDEX reference_tokens_idle_idx ON reference_tokens (COALESCE(last_used_at, rotated_at, created_at)) WHERE revoked_at IS NULL;

-- Secrets and rotation keys that have been replaced or consumed. Presenting one again (after the
-- grace period, for a secret) is reuse: the token family is revoked, as a stolen copy is in play.
CREATE TABLE reference_token_retired_hashes (
  hash       bytea PRIMARY KEY,
  token_id   text NOT NULL REFERENCES reference_tokens(id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('secret', 'rotation_key')),
  retired_at timestamptz NOT NULL
);
CREATE INDEX reference_token_retired_hashes_token_idx ON reference_token_retired_hashes (token_id);

-- Use per token and resource server, written in batches from each node's in-memory counters.
CREATE TABLE reference_token_usage (
  token_id     text NOT NULL REFERENCES reference_tokens(id) ON DELETE CASCADE,
  resource     text NOT NULL,
  use_count    bigint NOT NULL DEFAULT 0,
  last_used_at timestamptz NOT NULL,
  PRIMARY KEY (token_id, resource)
);

-- Down Migration
DROP TABLE reference_token_usage;
DROP TABLE reference_token_retired_hashes;
DROP INDEX reference_tokens_idle_idx;
DROP INDEX reference_tokens_service_account_idx;
DROP INDEX reference_tokens_user_idx;
ALTER TABLE reference_tokens DROP COLUMN rotation_count;
ALTER TABLE reference_tokens DROP COLUMN lifetime_seconds;
