-- Up Migration
-- Last use and use count of a client's secret (docs/design.md, "Short by default, long by exception": every long-lived credential has a
-- last use), counted in memory and written in batches like PAT/SAT usage: a successful
-- client_secret_basic/post authentication at /token, introspection or revocation is a use.
ALTER TABLE clients ADD COLUMN secret_last_used_at timestamptz;
ALTER TABLE clients ADD COLUMN secret_use_count bigint NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE clients DROP COLUMN secret_use_count;
ALTER TABLE clients DROP COLUMN secret_last_used_at;
