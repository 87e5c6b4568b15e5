-- Up Migration
-- Webhooks (docs/webhooks.md): endpoints per organization, and a durable outbox of deliveries.
-- A delivery is written in PostgreSQL before it is sent and stays until it was delivered or ran
-- out of attempts, so a restart (or a node's death mid-send) loses none: the next run picks up
-- what is due, and a send that was cut off is retried once its lease runs out.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id              text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  url             text NOT NULL,
  description     text,
  -- Event types it receives (`token.revoked`, …), or ["*"] for all.
  events          jsonb NOT NULL,
  -- The Standard Webhooks signing secret (whsec_…), encrypted with the KEK like client secrets.
  secret_enc      text NOT NULL,
  enabled         boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_organization_idx ON webhook_endpoints (organization_id, created_at, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id               text PRIMARY KEY,
  -- The message id (`webhook-id`): the same on every attempt, so a receiver can drop repeats.
  message_id       text NOT NULL,
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  organization_id  text NOT NULL,
  event_type       text NOT NULL,
  -- The exact JSON sent (and signed), so every attempt sends the same bytes.
  payload          text NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  last_attempt_at  timestamptz,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL,
  delivered_at     timestamptz
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at, id);

-- Down Migration
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
