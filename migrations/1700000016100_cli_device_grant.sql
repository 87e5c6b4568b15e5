-- Up Migration
-- The built-in tessera-cli client may use the device authorization grant (RFC 8628), for
-- `tessera login --device` on a machine without a browser (docs/sign-in.md). New organizations
-- get it from src/domain/cli-client.ts; this gives it to the clients created before, with the
-- same grant types in the same order. Runs again harmlessly (test/integration/adapter.test.ts
-- replays migrations): a client that has the grant already is left alone.
UPDATE clients
   SET metadata = jsonb_set(metadata, '{grant_types}',
         '["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"]'::jsonb),
       updated_at = now()
 WHERE kind = 'cli'
   AND NOT COALESCE(metadata->'grant_types' @> '["urn:ietf:params:oauth:grant-type:device_code"]'::jsonb, false);

-- Down Migration
UPDATE clients
   SET metadata = jsonb_set(metadata, '{grant_types}', '["authorization_code", "refresh_token"]'::jsonb),
       updated_at = now()
 WHERE kind = 'cli';
