-- Up Migration
-- Remembered consent: what a user allowed a client, so signing in again (in a new session, on
-- another device) does not ask again. Each sign-in still gets a grant of its own, so one
-- device's refresh-token family never shares a fate with another's.
CREATE TABLE consents (
  user_id          text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  client_id        text NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
  organization_id  text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  -- OpenID scopes and claims the user allowed (arrays of strings).
  oidc_scopes      jsonb NOT NULL DEFAULT '[]'::jsonb,
  oidc_claims      jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- Scopes allowed per resource server: { "<resource identifier>": ["scope", ...] }.
  resource_scopes  jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_idx ON consents (client_id);

-- Down Migration
DROP TABLE consents;
