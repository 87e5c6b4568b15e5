-- Up Migration
-- The audit trail (docs/design.md, "Every use leaves a trace"). Append-only: the application only inserts, and deletes whole
-- prefixes for retention. Each organization's rows form a hash chain: `hash` covers the row's
-- content and `prev_hash`, so editing, removing or reordering a row breaks every hash after it.

CREATE TABLE audit_events (
  -- '' for events that belong to no organization (e.g. an unknown client failing to authenticate).
  organization_id text NOT NULL,
  seq             bigint NOT NULL,
  occurred_at     timestamptz NOT NULL,
  actor_type      text NOT NULL,
  actor_id        text,
  actor_name      text,
  action          text NOT NULL,
  target_type     text,
  target_id       text,
  outcome         text NOT NULL CHECK (outcome IN ('success', 'failure')),
  request_id      text,
  ip              text,
  user_agent      text,
  details         jsonb NOT NULL DEFAULT '{}'::jsonb,
  prev_hash       text NOT NULL,
  hash            text NOT NULL,
  PRIMARY KEY (organization_id, seq)
);
CREATE INDEX audit_events_time_idx ON audit_events (organization_id, occurred_at, seq);
CREATE INDEX audit_events_action_idx ON audit_events (organization_id, action, occurred_at);
CREATE INDEX audit_events_actor_idx ON audit_events (organization_id, actor_id, occurred_at);
CREATE INDEX audit_events_target_idx ON audit_events (organization_id, target_id, occurred_at);

-- The end of each organization's chain, locked by the writer so nodes append in turn.
CREATE TABLE audit_chain_heads (
  organization_id text PRIMARY KEY,
  seq             bigint NOT NULL,
  hash            text NOT NULL
);

-- Down Migration
DROP TABLE audit_chain_heads;
DROP TABLE audit_events;
