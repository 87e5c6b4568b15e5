-- Up Migration
-- What the web console's pages read (docs/console.md, "Pages"; page times in
-- docs/performance.md, "Console pages"), kept fast at 10,000 tokens and 100,000 audit events:
--
-- * One owner's tokens in creation order (My tokens, a service account's SATs): the owner's
--   column followed by the listing's sort key, so a page is an index range, not a filtered
--   walk over the organization's tokens. They replace the owner-only indexes, whose leading
--   column they keep.
-- * Live tokens by expiry (the expiring-per-week chart).
-- * PAT and SAT uses per day (the uses-per-day chart): the batched usage write adds each
--   batch's counts to its day, so the chart reads at most one row a day.
-- * Audit events per organization, day and action (the issued-per-day chart): the audit
--   writer's append adds each batch's counts in the same statement, so the chart reads one row
--   a day however busy the trail; filled here from the rows already written. Retention removes
--   rows, not these counts: they say what happened that day.
CREATE INDEX IF NOT EXISTS reference_tokens_user_list_idx ON reference_tokens (user_id, created_at, id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS reference_tokens_service_account_list_idx ON reference_tokens (service_account_id, created_at, id) WHERE service_account_id IS NOT NULL;
DROP INDEX IF EXISTS reference_tokens_user_idx;
DROP INDEX IF EXISTS reference_tokens_service_account_idx;
CREATE INDEX IF NOT EXISTS reference_tokens_live_org_expiry_idx ON reference_tokens (organization_id, expires_at) WHERE revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS reference_token_usage_daily (
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  day             date NOT NULL,
  uses            bigint NOT NULL,
  PRIMARY KEY (organization_id, day)
);

CREATE TABLE IF NOT EXISTS audit_daily_counts (
  organization_id text NOT NULL,
  day             date NOT NULL,
  action          text NOT NULL,
  events          bigint NOT NULL,
  PRIMARY KEY (organization_id, action, day)
);
INSERT INTO audit_daily_counts (organization_id, day, action, events)
SELECT organization_id, (occurred_at AT TIME ZONE 'UTC')::date, action, count(*)
  FROM audit_events
 GROUP BY 1, 2, 3
ON CONFLICT (organization_id, action, day) DO UPDATE SET events = EXCLUDED.events;

-- Down Migration
DROP TABLE audit_daily_counts;
DROP TABLE reference_token_usage_daily;
DROP INDEX reference_tokens_live_org_expiry_idx;
CREATE INDEX IF NOT EXISTS reference_tokens_service_account_idx ON reference_tokens (service_account_id) WHERE service_account_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS reference_tokens_user_idx ON reference_tokens (user_id) WHERE user_id IS NOT NULL;
DROP INDEX reference_tokens_service_account_list_idx;
DROP INDEX reference_tokens_user_list_idx;
