-- Up Migration
-- Expiry warnings (docs/tokens.md): each PAT/SAT gets a `token.expiring` event once per
-- threshold (30, 7 and 1 days before by default, organization policy expiry_warning_days). A
-- row here is the claim that the warning for that threshold and that expiry was given; a token
-- pair renewed to a new expiry is warned again for it.
CREATE TABLE IF NOT EXISTS reference_token_expiry_warnings (
  token_id       text NOT NULL REFERENCES reference_tokens(id) ON DELETE CASCADE,
  threshold_days double precision NOT NULL,
  expires_at     timestamptz NOT NULL,
  warned_at      timestamptz NOT NULL,
  PRIMARY KEY (token_id, threshold_days, expires_at)
);
-- The job scans live tokens by expiry.
CREATE INDEX IF NOT EXISTS reference_tokens_live_expiry_idx ON reference_tokens (expires_at) WHERE revoked_at IS NULL;

-- Down Migration
DROP INDEX reference_tokens_live_expiry_idx;
DROP TABLE reference_token_expiry_warnings;
