import { X509Certificate } from 'node:crypto';

import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';

/**
 * RFC 8705 certificate-bound access tokens for a deployment whose TLS ends at a proxy in front
 * of Tessera (docs/tokens.md, "mTLS behind a proxy"). The proxy verifies the client's
 * certificate and passes it in one request header (config `mtls.clientCertificateHeader`), as
 * URL-encoded PEM: nginx's `$ssl_client_escaped_cert`, Envoy's XFCC `Cert` element, HAProxy's
 * `%[ssl_c_der,base64]` wrapped as PEM all produce or can be made to produce it. A client
 * registered with `tls_client_certificate_bound_access_tokens` then gets access tokens bound to
 * that certificate (`cnf["x5t#S256"]`, RFC 8705 §3.1), which introspection returns
 * (src/tokens/introspection.ts `senderConstraint`).
 *
 * The header is trusted as the proxy's word: the proxy must set it on every request, and remove
 * any value a client sent. With the option unset the engine's mTLS feature is off and no header
 * is read at all, whatever a client sends.
 */

/** The certificate in a header value, URL-encoded PEM (RFC 3986 percent-encoding); undefined for anything else. */
export function certificateFromHeader(value: string | undefined): X509Certificate | undefined {
  if (!value) return undefined;
  let pem: string;
  try {
    pem = decodeURIComponent(value);
  } catch {
    return undefined;
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

type MtlsFeature = NonNullable<NonNullable<Configuration['features']>['mTLS']>;

/**
 * The engine's `features.mTLS` for the configured header, or undefined when it is off. Only
 * certificate binding of access tokens is enabled: the `tls_client_auth` methods would need
 * Tessera's own client authenticator (src/oidc/client-authenticator.ts, used by introspection
 * and revocation) to take certificates too.
 */
export function mtlsFeature(header: string | null): MtlsFeature | undefined {
  if (header === null) return undefined;
  return {
    enabled: true,
    certificateBoundAccessTokens: true,
    getCertificate: (ctx: KoaContextWithOIDC) => certificateFromHeader(ctx.get(header) || undefined),
  } as MtlsFeature;
}
