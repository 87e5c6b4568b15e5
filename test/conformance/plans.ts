/**
 * The certification plans Tessera is held to, module by module: the OpenID Foundation's Basic OP,
 * Config OP, Dynamic OP and Form Post (basic) OP plans, and plans of the same shape for RFC 7009,
 * RFC 7662 and RFC 7591/7592. Each module says what the certification module asserts and how
 * Tessera stands: `test` (test/e2e/oidc-conformance.test.ts runs it on both backends and
 * asserts what the module asserts), `by-design` (Tessera deliberately differs; the test asserts
 * Tessera's documented behaviour) or `not-applicable` (nothing to run, and why).
 * docs/conformance.md is rendered from this list and the suite's results (test/conformance/render.ts).
 */
export type PlanId = 'basic' | 'formpost' | 'config' | 'dynamic' | 'rfc7009' | 'rfc7662' | 'rfc7591';

export const PLANS: Readonly<Record<PlanId, { title: string; note: string }>> = {
  basic: { title: 'Basic OP (oidcc-basic-certification-test-plan)', note: 'response_type `code`, client_secret_basic, response_mode default' },
  formpost: { title: 'Form Post Basic OP (oidcc-formpost-basic-certification-test-plan)', note: 'the Basic OP modules with `response_mode=form_post`' },
  config: { title: 'Config OP (oidcc-config-certification-test-plan)', note: 'discovery' },
  dynamic: { title: 'Dynamic OP (oidcc-dynamic-certification-test-plan)', note: 'discovery, dynamic registration, private_key_jwt' },
  rfc7009: { title: 'RFC 7009 token revocation', note: 'Tessera\'s own plan, same shape' },
  rfc7662: { title: 'RFC 7662 token introspection', note: 'Tessera\'s own plan, same shape' },
  rfc7591: { title: 'RFC 7591 / RFC 7592 dynamic registration and its management', note: 'Tessera\'s own plan, same shape' },
};

export type Disposition = { kind: 'test' } | { kind: 'by-design'; why: string } | { kind: 'not-applicable'; why: string };

export interface PlanModule {
  id: string;
  plans: readonly PlanId[];
  /** What the module asserts, in a line. */
  asserts: string;
  disposition: Disposition;
}

const test: Disposition = { kind: 'test' };
const byDesign = (why: string): Disposition => ({ kind: 'by-design', why });
const notApplicable = (why: string): Disposition => ({ kind: 'not-applicable', why });

const BASIC: readonly PlanId[] = ['basic', 'formpost'];
const PKCE_NOTE = 'every request carries PKCE S256: Tessera requires it (RFC 9700 §2.1.1; docs/sign-in.md), where the plan\'s requests carry none unless the organization sets `pkce_required_for_confidential_clients` false (module tessera-pkce-required)';

export const MODULES: readonly PlanModule[] = [
  // Basic OP (and, with form_post, Form Post Basic OP)
  { id: 'oidcc-server', plans: [...BASIC, 'dynamic'], asserts: 'code flow: code at the redirect URI with state and iss, ID token signed, iss/aud/exp/iat/sub/nonce right, c_hash absent or right; token endpoint with client_secret_basic', disposition: test },
  { id: 'oidcc-response-type-missing', plans: BASIC, asserts: 'no response_type: an error (invalid_request or unsupported_response_type), at the redirect URI or on a page, never a code', disposition: test },
  { id: 'oidcc-idtoken-signature', plans: BASIC, asserts: 'ID token signed with an advertised algorithm, by a key of jwks_uri named by kid', disposition: test },
  { id: 'oidcc-idtoken-unsigned', plans: [...BASIC, 'dynamic'], asserts: 'an unsigned ID token (alg none) when the client registered for it', disposition: byDesign('`none` is not in id_token_signing_alg_values_supported; registering `id_token_signed_response_alg: none` is refused with invalid_client_metadata, so the certification module is skipped') },
  { id: 'oidcc-userinfo-get', plans: BASIC, asserts: 'userinfo by GET with a Bearer header: 200 JSON, sub equal to the ID token\'s', disposition: test },
  { id: 'oidcc-userinfo-post-header', plans: BASIC, asserts: 'userinfo by POST with a Bearer header', disposition: test },
  { id: 'oidcc-userinfo-post-body', plans: BASIC, asserts: 'userinfo by POST with access_token in the form body (RFC 6750 §2.2)', disposition: test },
  { id: 'oidcc-ensure-request-without-nonce-succeeds-for-code-flow', plans: BASIC, asserts: 'a code request without nonce succeeds; the ID token has no nonce', disposition: test },
  { id: 'oidcc-scope-profile', plans: BASIC, asserts: 'scope profile releases profile claims (at userinfo or in the ID token)', disposition: test },
  { id: 'oidcc-scope-email', plans: BASIC, asserts: 'scope email releases email', disposition: test },
  { id: 'oidcc-scope-address', plans: BASIC, asserts: 'scope address releases address', disposition: notApplicable('Tessera keeps no postal address; `address` is not in scopes_supported, and an unknown scope is ignored (the module is then skipped by the suite)') },
  { id: 'oidcc-scope-phone', plans: BASIC, asserts: 'scope phone releases phone_number', disposition: notApplicable('Tessera keeps no phone number; `phone` is not in scopes_supported, and an unknown scope is ignored (the module is then skipped by the suite)') },
  { id: 'oidcc-scope-all', plans: BASIC, asserts: 'openid profile email address phone together: the supported scopes\' claims are released, the request succeeds', disposition: test },
  { id: 'oidcc-ensure-other-scope-order-succeeds', plans: BASIC, asserts: 'scopes in another order (email openid) succeed', disposition: test },
  { id: 'oidcc-display-page', plans: BASIC, asserts: 'display=page is accepted', disposition: test },
  { id: 'oidcc-display-popup', plans: BASIC, asserts: 'display=popup is accepted', disposition: test },
  { id: 'oidcc-prompt-login', plans: BASIC, asserts: 'prompt=login shows the login page again for a signed-in user; the second auth_time is later', disposition: test },
  { id: 'oidcc-prompt-none-not-logged-in', plans: BASIC, asserts: 'prompt=none without a session: login_required at the redirect URI, with state', disposition: test },
  { id: 'oidcc-prompt-none-logged-in', plans: BASIC, asserts: 'prompt=none with a session: a code without any page; same sub', disposition: test },
  { id: 'oidcc-max-age-1', plans: BASIC, asserts: 'max_age=1 after more than a second: the login page again, auth_time in the ID token and later', disposition: test },
  { id: 'oidcc-max-age-10000', plans: BASIC, asserts: 'max_age=10000: no login page; auth_time in the ID token, unchanged', disposition: test },
  { id: 'oidcc-ensure-request-with-unknown-parameter-succeeds', plans: BASIC, asserts: 'an unknown parameter is ignored', disposition: test },
  { id: 'oidcc-id-token-hint', plans: BASIC, asserts: 'prompt=none with id_token_hint of the signed-in user: a code, same sub', disposition: test },
  { id: 'oidcc-login-hint', plans: BASIC, asserts: 'login_hint is accepted (Tessera fills in the username)', disposition: test },
  { id: 'oidcc-ui-locales', plans: BASIC, asserts: 'ui_locales is accepted', disposition: test },
  { id: 'oidcc-claims-locales', plans: BASIC, asserts: 'claims_locales is accepted', disposition: test },
  { id: 'oidcc-ensure-request-with-acr-values-succeeds', plans: BASIC, asserts: 'acr_values is accepted (a voluntary request)', disposition: test },
  { id: 'oidcc-codereuse', plans: BASIC, asserts: 'a code used twice: invalid_grant the second time', disposition: test },
  { id: 'oidcc-codereuse-30seconds', plans: BASIC, asserts: 'a code used again later: invalid_grant, and the access token of the first use stops working', disposition: test },
  { id: 'oidcc-ensure-registered-redirect-uri', plans: BASIC, asserts: 'an unregistered redirect_uri: an error page, no redirect', disposition: test },
  { id: 'oidcc-ensure-post-request-succeeds', plans: BASIC, asserts: 'the authorization request by POST (a form from another site, in a real browser) succeeds, single sign-on included', disposition: test },
  { id: 'oidcc-server-client-secret-post', plans: BASIC, asserts: 'oidcc-server with client_secret_post at the token endpoint', disposition: test },
  { id: 'oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported', plans: BASIC, asserts: 'request_uri (a URL to fetch) works, or is refused as request_uri_not_supported', disposition: byDesign('request_uri_parameter_supported is false: a URL is never fetched for a request; request_uri is for PAR (RFC 9126) only, and another value is refused with invalid_request_uri at the redirect URI') },
  { id: 'oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported', plans: BASIC, asserts: 'an unsigned request object works, or is refused as request_not_supported', disposition: test },
  { id: 'oidcc-claims-essential', plans: BASIC, asserts: 'claims={"userinfo":{"name":{"essential":true}}}: name is released at userinfo', disposition: test },
  { id: 'oidcc-ensure-request-object-with-redirect-uri', plans: [...BASIC, 'dynamic'], asserts: 'the redirect_uri inside a request object is the one used', disposition: notApplicable('request objects are not supported (request_parameter_supported is false); the module runs only after a request object was accepted') },
  { id: 'oidcc-refresh-token', plans: [...BASIC, 'dynamic'], asserts: 'offline_access with prompt=consent: a refresh token; refreshing gives a new access token and ID token with the same sub; a refresh token is rotated', disposition: test },
  { id: 'oidcc-ensure-request-with-valid-pkce-succeeds', plans: BASIC, asserts: 'PKCE S256 succeeds; a wrong verifier is refused', disposition: test },
  { id: 'tessera-pkce-required', plans: BASIC, asserts: 'a request without PKCE', disposition: byDesign(PKCE_NOTE) },
  // Config OP (and the Dynamic plan's copy of it)
  { id: 'oidcc-discovery-endpoint-verification', plans: ['config', 'dynamic'], asserts: 'discovery: issuer equal to the URL it came from, endpoints, jwks_uri with usable keys, scopes_supported with openid, response_types with code, subject_types, RS256 for ID tokens, claims_parameter_supported and claims_supported right; endpoints https', disposition: test },
  // Dynamic OP
  { id: 'oidcc-idtoken-rs256', plans: ['dynamic'], asserts: 'a client registered with id_token_signed_response_alg RS256 gets RS256 ID tokens', disposition: test },
  { id: 'oidcc-userinfo-rs256', plans: ['dynamic'], asserts: 'a client registered with userinfo_signed_response_alg RS256 gets a signed userinfo JWT', disposition: test },
  { id: 'oidcc-ensure-redirect-uri-in-authorization-request', plans: ['dynamic'], asserts: 'no redirect_uri in the request: an error page, no redirect', disposition: test },
  { id: 'oidcc-redirect-uri-query-ok', plans: ['dynamic'], asserts: 'a redirect URI registered with a query, used with the same query, succeeds', disposition: test },
  { id: 'oidcc-redirect-uri-query-mismatch', plans: ['dynamic'], asserts: 'the same URI with another query: an error page, no redirect', disposition: test },
  { id: 'oidcc-redirect-uri-query-added', plans: ['dynamic'], asserts: 'a query added to a URI registered without: an error page, no redirect', disposition: test },
  { id: 'oidcc-redirect-uri-regfrag', plans: ['dynamic'], asserts: 'registering a redirect URI with a fragment is refused (invalid_redirect_uri)', disposition: test },
  { id: 'oidcc-registration-logo-uri', plans: ['dynamic'], asserts: 'logo_uri is registered and returned', disposition: test },
  { id: 'oidcc-registration-policy-uri', plans: ['dynamic'], asserts: 'policy_uri is registered and returned', disposition: test },
  { id: 'oidcc-registration-tos-uri', plans: ['dynamic'], asserts: 'tos_uri is registered and returned', disposition: test },
  { id: 'oidcc-registration-jwks-uri', plans: ['dynamic'], asserts: 'a client registered with jwks_uri authenticates with private_key_jwt', disposition: byDesign('Tessera fetches a jwks_uri only from a public address (docs/security.md, "Outbound fetches"); registration with a jwks_uri on an internal address is refused with invalid_client_metadata unless the operator allows the host') },
  { id: 'oidcc-registration-sector-uri', plans: ['dynamic'], asserts: 'a sector_identifier_uri listing the redirect URIs is accepted', disposition: notApplicable('subject_types_supported is `public` only: a sector identifier only matters for pairwise subjects') },
  { id: 'oidcc-registration-sector-bad', plans: ['dynamic'], asserts: 'a sector_identifier_uri not listing the redirect URIs is refused', disposition: notApplicable('subject_types_supported is `public` only: a sector identifier only matters for pairwise subjects') },
  { id: 'oidcc-server-rotate-keys', plans: ['dynamic'], asserts: 'after the OP rotates its signing key, ID tokens verify against the new jwks_uri', disposition: byDesign('a new key is published `keys.publishBeforeSignSeconds` (5 min) before it signs (docs/operations.md, "Staleness windows"), so no verifier meets an unknown kid; the module\'s operator-triggered immediate rotation is not offered') },
  { id: 'oidcc-refresh-token-rp-key-rotation', plans: ['dynamic'], asserts: 'a private_key_jwt client that rotates its jwks_uri keys keeps refreshing', disposition: notApplicable('needs a jwks_uri the OP fetches, which Tessera fetches only from public addresses (oidcc-registration-jwks-uri)') },
  { id: 'oidcc-request-uri-unsigned', plans: ['dynamic'], asserts: 'an unsigned request object by request_uri', disposition: byDesign('request_uri_parameter_supported is false (see oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported)') },
  { id: 'oidcc-request-uri-signed-rs256', plans: ['dynamic'], asserts: 'a signed request object by request_uri', disposition: byDesign('request_uri_parameter_supported is false (see oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported)') },
  { id: 'oidcc-ensure-client-assertion-with-iss-aud-succeeds', plans: ['dynamic'], asserts: 'private_key_jwt with aud equal to the issuer succeeds', disposition: test },
  { id: 'tessera-registration-needs-initial-access-token', plans: ['dynamic', 'rfc7591'], asserts: 'open registration (no initial access token)', disposition: byDesign('registration takes an initial access token (RFC 7591 §3); without one the answer is 401 invalid_token. A certification run registers with one') },
  // RFC 7009
  { id: 'rfc7009-revoke-access-token', plans: ['rfc7009'], asserts: 'the client the access token was issued to revokes it: 200, and it is inactive at introspection', disposition: test },
  { id: 'rfc7009-revoke-refresh-token', plans: ['rfc7009'], asserts: 'revoking a refresh token: 200, and refreshing with it fails with invalid_grant', disposition: test },
  { id: 'rfc7009-other-client', plans: ['rfc7009'], asserts: 'another client\'s request: 200 and nothing revoked (§2.2: no hint whether the token exists)', disposition: test },
  { id: 'rfc7009-unknown-token', plans: ['rfc7009'], asserts: 'an unknown or garbage token: 200 (§2.2)', disposition: test },
  { id: 'rfc7009-wrong-hint', plans: ['rfc7009'], asserts: 'a wrong token_type_hint still revokes (§2.1: the server searches further)', disposition: test },
  { id: 'rfc7009-client-authentication', plans: ['rfc7009'], asserts: 'no or wrong client credentials: 401 invalid_client (§2.2.1)', disposition: test },
  { id: 'rfc7009-method', plans: ['rfc7009'], asserts: 'only POST (§2.1): GET is 405', disposition: test },
  // RFC 7662
  { id: 'rfc7662-active-token', plans: ['rfc7662'], asserts: 'an active token for the caller: active true with scope, client_id, exp, iat, sub, aud, iss, token_type', disposition: test },
  { id: 'rfc7662-inactive-token', plans: ['rfc7662'], asserts: 'expired, revoked or unknown: exactly {"active": false}', disposition: test },
  { id: 'rfc7662-not-for-caller', plans: ['rfc7662'], asserts: 'a token for another API: {"active": false} (§2.2: the server may limit what a caller learns)', disposition: test },
  { id: 'rfc7662-client-authentication', plans: ['rfc7662'], asserts: 'the caller must authenticate (§2.1): 401 invalid_client otherwise', disposition: test },
  { id: 'rfc7662-refresh-token', plans: ['rfc7662'], asserts: 'a refresh token is active for the client holding it, inactive for anyone else', disposition: test },
  { id: 'rfc7662-method', plans: ['rfc7662'], asserts: 'only POST (§2.1): GET is 405', disposition: test },
  // RFC 7591 / 7592
  { id: 'rfc7591-register', plans: ['rfc7591'], asserts: 'registration: 201 with client_id, client_secret, client_id_issued_at, the metadata as registered, registration_access_token and registration_client_uri', disposition: test },
  { id: 'rfc7591-invalid-redirect-uri', plans: ['rfc7591'], asserts: 'an invalid redirect URI: 400 invalid_redirect_uri', disposition: test },
  { id: 'rfc7591-invalid-metadata', plans: ['rfc7591'], asserts: 'invalid metadata: 400 invalid_client_metadata', disposition: test },
  { id: 'rfc7592-read', plans: ['rfc7591'], asserts: 'GET registration_client_uri with the registration access token: 200, the registered metadata; without it 401', disposition: test },
  { id: 'rfc7592-update', plans: ['rfc7591'], asserts: 'PUT with the registration access token replaces the metadata: 200', disposition: test },
  { id: 'rfc7592-delete', plans: ['rfc7591'], asserts: 'DELETE with the registration access token: 204; afterwards the client and the token are unknown', disposition: test },
];
