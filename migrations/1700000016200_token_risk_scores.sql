-- Up Migration
-- The token inventory's risk score of each PAT/SAT, kept on its row so a page of the inventory is
-- an index range (riskiest first) instead of scoring every live token of the organization per
-- request (src/audit/token-inventory.ts). The score is only ever computed by riskScore()
-- (src/audit/risk-score.ts); the database keeps its result and when it may next change:
--
-- - risk_score: the score as of the last scoring; NULL until a token is first scored.
-- - risk_valid_until: until when that score holds for the same facts (riskScore() says when the
--   next time-dependent step comes: idle days, days left, rotation age). '-infinity' means stale:
--   every new row (whichever way it is written) and every row whose facts changed.
-- - risk_epoch: bumped by every invalidation, so a scoring that read a row before a change does
--   not store its outdated score over it (src/storage/token-inventory-repository.ts).
--
-- Facts of the token row and its owner's status are invalidated by the triggers below; facts of
-- the organization (rotation policy, sensitive APIs) by token_risk_contexts, which records what the
-- organization's scores were computed under (and when, should a clock be set back).
-- Every statement may run again (test/integration/adapter.test.ts replays migrations).
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS risk_score smallint;
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS risk_valid_until timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS risk_epoch integer NOT NULL DEFAULT 0;
-- From when a recorded use changes the stored score (riskScore()'s useMattersFrom): before it, the
-- idle points are 0 with or without the use. Recording uses (the usage flush) updates
-- `last_used_at` on many rows, and should not mark their scores stale for nothing: that update
-- would then change an indexed column and could no longer be made in place
-- (migrations/1700000016300_usage_hot_updates.sql). NULL: never scored, any use counts.
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS risk_use_matters_from timestamptz;

-- A page of the inventory: live tokens, riskiest first, ids in byte order as the inventory sorts them.
CREATE INDEX IF NOT EXISTS reference_tokens_risk_idx ON reference_tokens (organization_id, risk_score DESC NULLS LAST, id COLLATE "C") WHERE revoked_at IS NULL;
-- The scores due for recomputation (stale, or past a time-dependent step).
CREATE INDEX IF NOT EXISTS reference_tokens_risk_due_idx ON reference_tokens (organization_id, risk_valid_until) WHERE revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS token_risk_contexts (
  organization_id text PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
  -- The organization-wide inputs of the stored scores (rotation policy, sensitive audiences), as text.
  context         text NOT NULL,
  -- The latest time (the clock the scores were computed on) any stored score was computed for.
  -- A read on a clock well before it (set back) makes the organization's scores stale.
  scored_at       timestamptz NOT NULL DEFAULT '-infinity'
);

-- A change of a fact the score depends on makes the row's score stale.
CREATE OR REPLACE FUNCTION reference_tokens_risk_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.risk_valid_until := '-infinity';
  NEW.risk_epoch := OLD.risk_epoch + 1;
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS reference_tokens_risk_stale ON reference_tokens;
CREATE TRIGGER reference_tokens_risk_stale
  BEFORE UPDATE OF type, user_id, service_account_id, scopes, resources, created_at, issued_at, rotated_at, expires_at, last_used_at, revoked_at ON reference_tokens
  FOR EACH ROW
  WHEN ((OLD.type, OLD.user_id, OLD.service_account_id, OLD.scopes, OLD.resources, OLD.created_at, OLD.issued_at, OLD.rotated_at, OLD.expires_at, OLD.revoked_at)
        IS DISTINCT FROM (NEW.type, NEW.user_id, NEW.service_account_id, NEW.scopes, NEW.resources, NEW.created_at, NEW.issued_at, NEW.rotated_at, NEW.expires_at, NEW.revoked_at)
        OR (OLD.last_used_at IS DISTINCT FROM NEW.last_used_at
            AND (OLD.risk_use_matters_from IS NULL OR NEW.last_used_at IS NULL
                 OR NEW.last_used_at >= OLD.risk_use_matters_from
                 -- Moved back (only an edit does that; recorded uses only move it on): more idle.
                 OR NEW.last_used_at < COALESCE(OLD.last_used_at, OLD.created_at))))
  EXECUTE FUNCTION reference_tokens_risk_stale();

-- An owner deactivated, disabled or reactivated changes the score of each of its tokens.
CREATE OR REPLACE FUNCTION reference_tokens_owner_risk_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'users' THEN
    UPDATE reference_tokens SET risk_valid_until = '-infinity', risk_epoch = risk_epoch + 1 WHERE user_id = NEW.id AND revoked_at IS NULL;
  ELSE
    UPDATE reference_tokens SET risk_valid_until = '-infinity', risk_epoch = risk_epoch + 1 WHERE service_account_id = NEW.id AND revoked_at IS NULL;
  END IF;
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS users_token_risk_stale ON users;
CREATE TRIGGER users_token_risk_stale AFTER UPDATE OF status ON users
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION reference_tokens_owner_risk_stale();
DROP TRIGGER IF EXISTS service_accounts_token_risk_stale ON service_accounts;
CREATE TRIGGER service_accounts_token_risk_stale AFTER UPDATE OF status ON service_accounts
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION reference_tokens_owner_risk_stale();

-- Every introspection answered, per organization and UTC day, whatever the token (PAT, SAT, JWT or
-- opaque access token, refresh token): the activity chart's introspections per day
-- (src/storage/token-activity-repository.ts), written in batches (src/tokens/usage-recorder.ts).
CREATE TABLE IF NOT EXISTS introspection_daily (
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  day             date NOT NULL,
  introspections  bigint NOT NULL,
  PRIMARY KEY (organization_id, day)
);

-- Down Migration
DROP TABLE introspection_daily;
DROP TRIGGER service_accounts_token_risk_stale ON service_accounts;
DROP TRIGGER users_token_risk_stale ON users;
DROP FUNCTION reference_tokens_owner_risk_stale();
DROP TRIGGER reference_tokens_risk_stale ON reference_tokens;
DROP FUNCTION reference_tokens_risk_stale();
DROP TABLE token_risk_contexts;
DROP INDEX reference_tokens_risk_due_idx;
DROP INDEX reference_tokens_risk_idx;
ALTER TABLE reference_tokens DROP COLUMN risk_use_matters_from;
ALTER TABLE reference_tokens DROP COLUMN risk_epoch;
ALTER TABLE reference_tokens DROP COLUMN risk_valid_until;
ALTER TABLE reference_tokens DROP COLUMN risk_score;
