-- Up Migration
-- Key-bound PATs and SATs (docs/tokens.md, "Key-bound PATs and SATs"): the RFC 7638 thumbprint
-- (base64url SHA-256, RFC 9449 §6.1 `jkt`) of the key a token is bound to, or NULL for a bearer
-- token. Introspection answers such a token active only when the resource server passes the
-- thumbprint it verified from the request's DPoP proof. Rotation keeps it: it is a column of
-- the token's row, which rotation updates in place. Re-runnable: the upgrade test replays
-- migrations (test/integration/adapter.test.ts).
ALTER TABLE reference_tokens ADD COLUMN IF NOT EXISTS cnf_jkt text;
ALTER TABLE reference_tokens DROP CONSTRAINT IF EXISTS reference_tokens_cnf_jkt_format;
ALTER TABLE reference_tokens ADD CONSTRAINT reference_tokens_cnf_jkt_format CHECK (cnf_jkt IS NULL OR cnf_jkt ~ '^[A-Za-z0-9_-]{43}$');

-- Down Migration
ALTER TABLE reference_tokens DROP CONSTRAINT IF EXISTS reference_tokens_cnf_jkt_format;
ALTER TABLE reference_tokens DROP COLUMN IF EXISTS cnf_jkt;
