-- Up Migration
-- When the expiry of a PAT/SAT was written to the audit trail. A token stops working at
-- expires_at on its own (checked on every use); this only lets the background job record each
-- expiry once, as a revocation with reason "expired", so the trail says why a token ended.
ALTER TABLE reference_tokens ADD COLUMN expiry_recorded_at timestamptz;
-- Tokens already expired when this runs are not reported late.
UPDATE reference_tokens SET expiry_recorded_at = now() WHERE revoked_at IS NULL AND expires_at <= now();
CREATE INDEX reference_tokens_expiry_pending ON reference_tokens (expires_at) WHERE revoked_at IS NULL AND expiry_recorded_at IS NULL;

-- Down Migration
DROP INDEX reference_tokens_expiry_pending;
ALTER TABLE reference_tokens DROP COLUMN expiry_recorded_at;
