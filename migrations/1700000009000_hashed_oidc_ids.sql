-- Up Migration
-- docs/design.md, "No secret at rest, none in a log": an oidc-provider model whose id is a bearer credential (refresh token, code,
-- access token, registration access token, ...) is kept under sha256(id), base64url without
-- padding, exactly as storedId() in src/oidc/model-keys.ts derives it, and its payload no longer
-- repeats the id as `jti`. Rows written before this release are converted here, so refresh tokens
-- issued before the upgrade keep working.
--
-- Only a row whose jti equals its id is converted: that is what the previous layout wrote, and it
-- makes a second run harmless. RegistrationAccessToken rows were already kept under the digest;
-- they only lose the jti.
--
-- The cache store (Redis, or the in-process store) needs no conversion here: what the adapter
-- keeps there (opaque access tokens, codes, PAR requests) lives minutes and expires with its TTL.
-- Until then a node finds such a record under its old key and moves it to the new one on first
-- use, for the longest access-token lifetime after it starts (legacyKeysUntil in src/app.ts).
UPDATE oidc_payloads
   SET id = translate(rtrim(encode(sha256(convert_to(id, 'UTF8')), 'base64'), '='), '+/', '-_'),
       payload = payload - 'jti'
 WHERE model IN ('AccessToken', 'ClientCredentials', 'AuthorizationCode', 'RefreshToken', 'PushedAuthorizationRequest',
                 'InitialAccessToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode')
   AND payload->>'jti' = id;

UPDATE oidc_payloads
   SET payload = payload - 'jti'
 WHERE model = 'RegistrationAccessToken' AND payload ? 'jti';

-- Down Migration
-- Nothing to undo that can be undone: a digest cannot be turned back into its token. A release
-- before this one does not find the converted rows; their holders sign in or register again.
