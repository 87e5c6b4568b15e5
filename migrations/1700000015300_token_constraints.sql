-- Up Migration
-- Constraints per PAT/SAT (docs/tokens.md): not before a time, only from some client addresses.
-- Both are checked at every use; an address only where it is known (the Management API, and an
-- introspection whose resource server passes client_ip).
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS not_before timestamptz;
-- CIDR ranges (JSON array of text), or NULL for any address.
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS allowed_ips jsonb;

-- The last client addresses and user agents a token was seen from, at most 5 per token, each
-- written at most once a minute (usage telemetry).
CREATE TABLE IF NOT EXISTS reference_token_sightings (
  token_id   text NOT NULL REFERENCES reference_tokens(id) ON DELETE CASCADE,
  ip         text NOT NULL,
  user_agent text NOT NULL DEFAULT '',
  last_seen  timestamptz NOT NULL,
  PRIMARY KEY (token_id, ip, user_agent)
);

-- Down Migration
DROP TABLE reference_token_sightings;
ALTER TABLE reference_tokens DROP COLUMN allowed_ips;
ALTER TABLE reference_tokens DROP COLUMN not_before;
