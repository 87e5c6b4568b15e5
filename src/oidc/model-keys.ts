import { hash } from 'node:crypto';

/**
 * Where oidc-provider's models are kept, derived in one place for the adapter and for every
 * reader that goes around it (the introspection fast path, opaque-token revocation).
 *
 * docs/design.md, "No secret at rest, none in a log": for these models the id the engine hands the adapter is itself the bearer
 * credential (the access token, the refresh token, the code, the request_uri, the registration
 * access token), so it is stored only as sha256(id). A copy of PostgreSQL or Redis then holds
 * nothing a client could present. The adapter also drops `jti` (the id again) from the stored
 * payload and puts it back on `find`, from the value the engine looked up with.
 *
 * Not hashed, because their id is not a credential on its own: Session and Interaction (their
 * ids travel in cookies signed with TESSERA_COOKIE_KEYS, and the interaction id in the URL),
 * Grant (named inside every token's payload), ReplayDetection, Client.
 */
export const HASHED_ID_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'ClientCredentials',
  'AuthorizationCode',
  'RefreshToken',
  'PushedAuthorizationRequest',
  'RegistrationAccessToken',
  // Stored through the adapter only when no InitialAccessTokenSource is given (src/oidc/adapter.ts).
  'InitialAccessToken',
  // The device authorization grant (RFC 8628): the device code is the device's credential.
  'DeviceCode',
  // Features Tessera leaves off; hashed all the same, so turning one on cannot store raw values.
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * The stored id of a model: the SHA-256 of the id, base64url without padding, for the models
 * above, and the id itself for the others. migrations/1700000009000_hashed_oidc_ids.sql computes
 * the same digest in SQL for the rows written before it.
 */
export function storedId(model: string, id: string): string {
  return HASHED_ID_MODELS.has(model) ? hash('sha256', id, 'base64url') : id;
}

/** Cache-store key of a model under its stored id. */
export const storedKey = (model: string, stored: string) => `oidc:${model}:${stored}`;

/** Cache-store key of an oidc-provider model, looked up by the value the engine or a client holds. */
export const modelKey = (model: string, id: string) => storedKey(model, storedId(model, id));

/**
 * Ids the engine generated before ids were hashed: nanoid, base64url alphabet. Only such a
 * value is ever looked up under its own name (see `adoptLegacy` in src/oidc/adapter.ts).
 */
export const LEGACY_ID = /^[\w-]{1,128}$/;
