-- Up Migration
-- A resource server that accepts only DPoP-bound access tokens (RFC 9449): /token refuses a
-- request for it without a DPoP proof (src/oidc/resource-indicators.ts).
ALTER TABLE resource_servers ADD COLUMN IF NOT EXISTS dpop_required boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE resource_servers DROP COLUMN dpop_required;
