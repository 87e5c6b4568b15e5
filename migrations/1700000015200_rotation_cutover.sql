-- Up Migration
-- Rotation with cutover on first use (docs/tokens.md): the previous secret keeps working until
-- the grace period ends or, when the rotation asked for it, until the new secret is first used,
-- whichever comes first. previous_ended_at is that first use; previous_valid_until still bounds
-- reuse detection, so a straggler still holding the old secret is refused, not revoked.
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS previous_ends_on_first_use boolean NOT NULL DEFAULT false;
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS previous_ended_at timestamptz;

-- Down Migration
ALTER TABLE reference_tokens DROP COLUMN previous_ended_at;
ALTER TABLE reference_tokens DROP COLUMN previous_ends_on_first_use;
