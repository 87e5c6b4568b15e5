/**
 * An error in the OAuth wire format (RFC 6749 §5.2): `error` and `error_description` go to the
 * client; `detail` is for the log only and never reaches the response.
 */
export class OAuthError extends Error {
  override name = 'OAuthError';

  constructor(
    readonly status: number,
    readonly error: string,
    readonly errorDescription: string,
    readonly headers: Record<string, string> = {},
    readonly detail?: string,
  ) {
    super(`${error}: ${errorDescription}`);
  }

  toJSON() {
    return { error: this.error, error_description: this.errorDescription };
  }
}

/** Same body and status as oidc-provider's InvalidClientAuth, so both paths look alike. */
export const invalidClient = (usedBasic: boolean, realm: string, detail?: string) =>
  new OAuthError(
    401,
    'invalid_client',
    'client authentication failed',
    // RFC 6749 §5.2: when the client used the Authorization header, the 401 carries a challenge,
    // with the error in it as the engine writes it (RFC 6750 §3 parameters).
    usedBasic ? { 'www-authenticate': `Basic realm="${realm}", error="invalid_client", error_description="client authentication failed"` } : {},
    detail,
  );

export const invalidRequest = (description: string) => new OAuthError(400, 'invalid_request', description);

/** RFC 6749 §5.2-style answer when a dependency is down: retryable, never a guess (issue: faults). */
export const temporarilyUnavailable = () =>
  new OAuthError(503, 'temporarily_unavailable', 'the service is temporarily unavailable, retry later', { 'retry-after': '1' });
